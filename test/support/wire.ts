// Raw protocol v1 frames over any socket (net or tls), for the security
// tests: HELLO with flags, AUTH, MSG, and a reader of what the server sends
// (HELLO_OK, ACK, ERR, the close). Written here from docs/protocol.md so
// these tests do not depend on the client library.
import type { Duplex, Readable } from 'node:stream';

export function hello(clientId: number, flags = 0): Buffer {
  const b = Buffer.alloc(12);
  b.write('MSGS', 0, 'latin1');
  b[4] = 1;
  b[5] = flags;
  b.writeUInt32BE(clientId >>> 0, 8);
  return b;
}

export function auth(token: string | Buffer, mechanism = 1): Buffer {
  const t = typeof token === 'string' ? Buffer.from(token) : token;
  const b = Buffer.alloc(6 + t.length);
  b.writeUInt32BE(2 + t.length, 0);
  b[4] = 0x02;
  b[5] = mechanism;
  t.copy(b, 6);
  return b;
}

export function msg(msgId: number, payload: Buffer | string, name = 'n'): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const nm = Buffer.from(name);
  const b = Buffer.alloc(4 + 10 + nm.length + p.length);
  b.writeUInt32BE(10 + nm.length + p.length, 0);
  b[4] = 0x01;
  b[5] = nm.length;
  b.writeBigUInt64BE(BigInt(msgId), 6);
  nm.copy(b, 14);
  p.copy(b, 14 + nm.length);
  return b;
}

export interface ServerErr {
  code: number;
  reason: string;
}

/** Reads the server's side of one connection as it arrives. */
export class WireReader<S extends Readable = Duplex> {
  helloOk = false;
  acked = 0;
  ackedOk = 0;
  lastAckId = -1n;
  err: ServerErr | null = null;
  closed = false;
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];

  constructor(readonly socket: S) {
    socket.on('data', (d: Buffer) => this.feed(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private feed(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    if (!this.helloOk && !this.err) {
      if (this.buf.length >= 12 && this.buf.subarray(0, 4).toString('latin1') === 'MSGS') {
        this.helloOk = true;
        this.buf = this.buf.subarray(12);
      }
    }
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (this.buf.length < 4 + len) break;
      const type = this.buf[4];
      if (type === 0x81) {
        const count = this.buf.readUInt32BE(8);
        this.acked += count;
        if (this.buf[5] === 0) this.ackedOk += count;
        this.lastAckId = this.buf.readBigUInt64BE(12);
      } else if (type === 0x82) {
        this.err = { code: this.buf[5], reason: this.buf.subarray(6, 4 + len).toString('utf8') };
      }
      this.buf = this.buf.subarray(4 + len);
    }
    this.wake();
  }

  /** Resolves when `cond` holds; rejects after `ms` (with what was seen). */
  until(cond: (r: WireReader<S>) => boolean, ms = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`timed out: helloOk=${this.helloOk} acked=${this.acked} err=${JSON.stringify(this.err)} closed=${this.closed}`));
      }, ms);
      const check = (): void => {
        if (cond(this)) {
          clearTimeout(timer);
          resolve();
        } else if (this.closed) {
          clearTimeout(timer);
          if (cond(this)) resolve();
          else reject(new Error(`closed: helloOk=${this.helloOk} acked=${this.acked} err=${JSON.stringify(this.err)}`));
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }
}
