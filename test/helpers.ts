// Shared test utilities: temp dirs, a seeded PRNG, a raw socket that records
// everything the server sends, and frame decoding for it.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { decodeServerFrame, type ServerFrame } from '../dist/format/codec';

/** A port that was free a moment ago (bind port 0 on 127.0.0.1, read it, close): connecting to it is refused. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export function tempDir(prefix = 'msgserver-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Small deterministic PRNG (mulberry32): failures reproduce from the seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (rand() * 256) | 0;
  return b;
}

export interface RawResult {
  data: Buffer;
  frames: ServerFrame[];
  helloOk: boolean;
  /** true when the server closed the connection (EOF or reset). */
  closed: boolean;
}

/**
 * Connects, writes each chunk in order, and collects what the server sends
 * until it closes the connection (or `untilFrames` frames arrived). Bounded by
 * timeoutMs: a server that neither answers nor closes fails the test.
 */
export function rawExchange(
  port: number,
  chunks: Buffer[],
  opts: { timeoutMs?: number; untilFrames?: number } = {},
): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    const got: Buffer[] = [];
    let settled = false;
    const timer = setTimeout(() => finish(new Error('server neither answered nor closed in time')), opts.timeoutMs ?? 10_000);
    const finish = (err: Error | null, closed = false): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) return reject(err);
      resolve(parse(Buffer.concat(got), closed));
    };
    sock.on('connect', () => {
      for (const c of chunks) sock.write(c);
    });
    sock.on('data', (d) => {
      got.push(d);
      if (opts.untilFrames !== undefined && parse(Buffer.concat(got), false).frames.length >= opts.untilFrames) {
        finish(null, false);
      }
    });
    sock.on('error', () => finish(null, true)); // reset counts as closed
    sock.on('close', () => finish(null, true));
  });
}

function parse(data: Buffer, closed: boolean): RawResult {
  const frames: ServerFrame[] = [];
  let off = 0;
  let helloOk = false;
  if (data.length >= 12 && data.subarray(0, 4).toString('latin1') === 'MSGS') {
    helloOk = true;
    off = 12;
  }
  for (;;) {
    const f = decodeServerFrame(data, off);
    if (!f) break;
    frames.push(f);
    off += f.size;
  }
  return { data, frames, helloOk, closed };
}

/** Names of this process's threads, from /proc/self/task/<tid>/comm. */
export function threadNames(): string[] {
  return fs.readdirSync('/proc/self/task').map((t) => {
    try {
      return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  });
}

export function fdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}
