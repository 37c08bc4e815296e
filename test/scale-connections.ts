// Many connections (npm run test:scale): the server holds N concurrent
// connections, each sending and receiving ACKs, and we report RSS per idle
// connection. N is 20,000, or as many as this process's descriptor limit
// allows (the hard limit cannot be raised without CAP_SYS_RESOURCE); the
// test says which.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';

import { decodeServerFrame, encodeHello, encodeMsg } from '../dist/format/codec';
import { tempDir } from './helpers';

const WANT = Number(process.env.MSGS_SCALE_CONNECTIONS ?? 20_000);

function fdLimit(): number {
  const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  return Number(line!.split(/\s+/)[3]);
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]);
}

/** One connection: HELLO, then `send` sends a message and resolves on its ACK. */
class Conn {
  private buf = Buffer.alloc(0);
  private hello = false;
  private waiting: Array<() => void> = [];
  private nextId = 1n;
  constructor(readonly sock: net.Socket) {
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      if (!this.hello && this.buf.length >= 12) {
        this.hello = true;
        this.buf = this.buf.subarray(12);
      }
      for (;;) {
        const f = this.hello ? decodeServerFrame(this.buf) : null;
        if (!f) break;
        this.buf = this.buf.subarray(f.size);
        assert.equal(f.type, 'ack');
        if (f.type === 'ack') for (let i = 0; i < f.count; i++) this.waiting.shift()?.();
      }
    });
  }
  static open(port: number, id: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('error', reject);
      s.once('connect', () => {
        s.setNoDelay(true);
        s.write(encodeHello(id));
        resolve(new Conn(s));
      });
    });
  }
  send(payload: string): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.sock.write(encodeMsg(this.nextId++, Buffer.alloc(0), Buffer.from(payload)));
    });
  }
}

test('the server holds many concurrent connections, each sending and receiving ACKs', { timeout: 600_000 }, async () => {
  const limit = fdLimit();
  const n = Math.min(WANT, limit - 300);
  console.log(`# descriptor limit ${limit}: ${n} connections${n < WANT ? ` (wanted ${WANT}; the hard limit stops more)` : ''}`);
  const dir = tempDir();
  const opts = JSON.stringify({ port: 0, serviceThreads: 2, file: { path: path.join(dir, 'scale.log') }, limits: { maxConnections: n + 100 } });
  const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'server-child.js'), opts], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => {
    child.stdout.on('data', (d) => {
      for (const l of String(d).split('\n')) if (l.includes('listening')) resolve(JSON.parse(l).listening);
    });
  });
  try {
    // Warm up the server's pools with one busy connection, then measure.
    const warm = await Conn.open(port, 0);
    await Promise.all(Array.from({ length: 1000 }, (_, i) => warm.send(`warm ${i}`)));
    const before = rssKiB(child.pid!);
    const conns: Conn[] = [];
    for (let i = 1; i <= n; i += 500) {
      const batch = await Promise.all(Array.from({ length: Math.min(500, n - i + 1) }, (_, k) => Conn.open(port, i + k)));
      conns.push(...batch);
    }
    // Every connection sends and gets its ACK.
    for (let i = 0; i < conns.length; i += 2000) await Promise.all(conns.slice(i, i + 2000).map((c, k) => c.send(`first ${i + k}`)));
    const idle = rssKiB(child.pid!);
    const perConn = ((idle - before) * 1024) / n;
    console.log(`# RSS ${before} KiB before, ${idle} KiB with ${n} idle connections: ${perConn.toFixed(0)} bytes per idle connection`);
    for (let i = 0; i < conns.length; i += 2000) await Promise.all(conns.slice(i, i + 2000).map((c, k) => c.send(`second ${i + k}`)));
    assert.equal(conns.length, n);
    assert.ok(perConn < 16 * 1024, `${perConn.toFixed(0)} bytes per idle connection`);
    for (const c of conns) c.sock.destroy();
    warm.sock.destroy();
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
});
