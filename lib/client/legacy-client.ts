// A client for the original server's protocol (protocol 'legacy'): packed
// 1160-byte structs, each answered with the 3 bytes "ack", in order. Used by
// `msgclient --legacy`; kept apart from MessageClient because the protocol has
// no handshake, no error frames and no ids in its answers.
import * as net from 'node:net';

import { ConnectionClosedError, ProtocolMismatchError } from '../errors';
import { decodeServerFrame, ErrCode, errCodeName, MAX_ERR_REASON, ProtocolError } from '../format/codec';

export const LEGACY_FRAME_SIZE = 1160;
export const LEGACY_NAME_SIZE = 128;
export const LEGACY_BUFFER_SIZE = 1024;
const ACK = Buffer.from('ack');

/** Packs one struct: client_id, msg_id (network order), name[128], buffer[1024]. */
export function encodeLegacyFrame(clientId: number, msgId: number, name: string | Uint8Array, text: string | Uint8Array): Buffer {
  const b = Buffer.alloc(LEGACY_FRAME_SIZE);
  b.writeUInt32BE(clientId >>> 0, 0);
  b.writeUInt32BE(msgId >>> 0, 4);
  const n = typeof name === 'string' ? Buffer.from(name) : Buffer.from(name);
  const t = typeof text === 'string' ? Buffer.from(text) : Buffer.from(text);
  if (n.length > LEGACY_NAME_SIZE) throw new RangeError(`name is ${n.length} bytes; the struct holds ${LEGACY_NAME_SIZE}`);
  if (t.length > LEGACY_BUFFER_SIZE) throw new RangeError(`message is ${t.length} bytes; the struct holds ${LEGACY_BUFFER_SIZE}`);
  n.copy(b, 8);
  t.copy(b, 8 + LEGACY_NAME_SIZE);
  return b;
}

export class LegacyClient {
  private readonly waiting: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private partial = 0; // bytes of an "ack" received so far
  private closedError: Error | null = null;
  /** Bytes that are not "ack" but may be a protocol v1 frame (an ERR from a v1 server). */
  private foreign: Buffer | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d) => this.onData(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => {
      this.fail(this.foreign ? this.mismatch(null) : new ConnectionClosedError('connection closed by the server'));
    });
  }

  static connect(opts: { host?: string; port: number }): Promise<LegacyClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: opts.host ?? '127.0.0.1', port: opts.port });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new LegacyClient(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Sends one message; resolves when its "ack" arrives (answers come in order). */
  send(clientId: number, msgId: number, name: string, text: string | Uint8Array): Promise<void> {
    if (this.closedError) return Promise.reject(this.closedError);
    const frame = encodeLegacyFrame(clientId, msgId, name, text);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(frame);
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end();
    });
  }

  private onData(d: Buffer): void {
    if (this.foreign) {
      this.onForeign(d);
      return;
    }
    for (let i = 0; i < d.length; i++) {
      const byte = d[i];
      if (byte !== ACK[this.partial]) {
        // A v1 frame starts with its u32 length, so with a 0 byte: a v1 server
        // answering our struct with ERR BAD_MAGIC.
        if (this.partial === 0 && byte === 0) {
          this.onForeign(d.subarray(i));
          return;
        }
        this.fail(new ProtocolError(ErrCode.MALFORMED, `unexpected byte 0x${byte.toString(16)} from the server (expected "ack")`));
        this.socket.destroy();
        return;
      }
      if (++this.partial === ACK.length) {
        this.partial = 0;
        const w = this.waiting.shift();
        if (!w) {
          this.fail(new ProtocolError(ErrCode.MALFORMED, 'an "ack" arrived for no message'));
          this.socket.destroy();
          return;
        }
        w.resolve();
      }
    }
  }

  /** Gathers a possible v1 frame; once it is whole (or cannot be one), fails with ProtocolMismatchError. */
  private onForeign(d: Buffer): void {
    this.foreign = this.foreign === null ? Buffer.from(d) : Buffer.concat([this.foreign, d]);
    let frame: ReturnType<typeof decodeServerFrame>;
    try {
      frame = decodeServerFrame(this.foreign, 0);
    } catch {
      // Not a v1 frame either.
      this.fail(new ProtocolError(ErrCode.MALFORMED, `unexpected byte 0x0 from the server (expected "ack")`));
      this.socket.destroy();
      return;
    }
    if (frame === null && this.foreign.length < 4 + 2 + MAX_ERR_REASON) return; // more to come
    this.fail(this.mismatch(frame?.type === 'err' ? frame : null));
    this.socket.destroy();
  }

  private mismatch(err: { code: number; reason: string } | null): Error {
    const answer = err === null ? 'what looks like a protocol v1 frame' : `ERR ${errCodeName(err.code)}`;
    return new ProtocolMismatchError(
      `the server speaks protocol v1, not the legacy protocol (it answered ${answer} instead of "ack"): ` +
        "connect to a server with protocol: 'legacy' (--protocol legacy), or speak v1 (MessageClient; msgclient without --legacy)",
      'legacy',
      'v1',
    );
  }

  private fail(e: Error): void {
    this.closedError ??= e;
    for (const w of this.waiting.splice(0)) w.reject(this.closedError);
  }
}
