// A client for the original server's protocol (protocol 'legacy'): packed
// 1160-byte structs, each answered with the 3 bytes "ack", in order. Used by
// `msgclient --legacy`; kept apart from MessageClient because the protocol has
// no handshake, no error frames and no ids in its answers.
import * as net from 'node:net';

import { ConnectionClosedError } from './errors';

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

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d) => this.onData(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new ConnectionClosedError('connection closed by the server')));
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
    for (const byte of d) {
      if (byte !== ACK[this.partial]) {
        this.fail(new Error(`unexpected byte 0x${byte.toString(16)} from the server (expected "ack")`));
        this.socket.destroy();
        return;
      }
      if (++this.partial === ACK.length) {
        this.partial = 0;
        const w = this.waiting.shift();
        if (!w) {
          this.fail(new Error('an "ack" arrived for no message'));
          this.socket.destroy();
          return;
        }
        w.resolve();
      }
    }
  }

  private fail(e: Error): void {
    this.closedError ??= e;
    for (const w of this.waiting.splice(0)) w.reject(this.closedError);
  }
}
