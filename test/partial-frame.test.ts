// limits.maxPartialFrameBytes: strangers cannot take the server's memory with
// frames they never finish. The attack: 1,500 connections that each send a
// HELLO and all but the last byte of a 1 MiB MSG. The server (a child
// process, so its RSS is its own) stays within the budget plus a documented
// per-connection overhead, and a good client on the same server keeps its
// ACKs. Then, in-process: waiting connections get SLOW_FRAME after
// frameTimeoutMs, and a connection not yet authenticated holds nothing
// beyond its HELLO and AUTH.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { after, test } from 'node:test';

import { MessageServer } from '../dist/index';
import { tempDir } from './helpers';
import { testCerts } from './support/certs';
import { hello, msg, WireReader } from './support/wire';

const MiB = 1024 * 1024;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** The documented bound on what each held connection may cost beyond the budget (docs/limits.md). */
const PER_CONNECTION_OVERHEAD = 16 * 1024;

interface Child {
  proc: ChildProcess;
  port: number;
  ask: (cmd: string) => Promise<Record<string, any>>;
}

async function startChild(opts: object): Promise<Child> {
  const proc = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'server-child.js'), JSON.stringify(opts)], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const pending = new Map<number, (m: Record<string, any>) => void>();
  let nextId = 1;
  proc.on('message', (m: Record<string, any>) => pending.get(m.id)?.(m));
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    proc.stdout!.on('data', (d) => {
      buf += d;
      const m = /\{"listening":(\d+)\}/.exec(buf);
      if (m) resolve(Number(m[1]));
      const e = /\{"error":.*\}/.exec(buf);
      if (e) reject(new Error(e[0]));
    });
  });
  const ask = (cmd: string): Promise<Record<string, any>> =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      proc.send({ id, cmd });
    });
  return { proc, port, ask };
}

test('the partial-frame attack: 1,500 connections x (1 MiB MSG minus one byte) stay within the budget; a good client keeps its ACKs', { timeout: 180_000 }, async () => {
  const dir = tempDir('msgserver-partial-');
  dirs.push(dir);
  const budget = 64 * MiB; // the default
  const child = await startChild({ port: 0, serviceThreads: 2, file: { path: path.join(dir, 'm.log') }, limits: { maxConnections: 5000, frameTimeoutMs: 120_000 } });
  const sockets: net.Socket[] = [];
  try {
    const base = (await child.ask('rss')).rss as number;
    // One shared buffer: the test process does not hold 1.5 GiB itself.
    const frame = msg(1, Buffer.alloc(MiB, 0x61));
    const attack = Buffer.concat([hello(0), frame.subarray(0, frame.length - 1)]);
    const N = 1500;
    for (let i = 0; i < N; i += 100) {
      const wave = await Promise.all(
        Array.from({ length: Math.min(100, N - i) }, () => new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(child.port, '127.0.0.1', () => resolve(s));
          s.on('error', reject);
        })),
      );
      for (const s of wave) {
        s.removeAllListeners('error');
        s.on('error', () => undefined);
        s.write(attack);
        sockets.push(s);
      }
    }
    // Wait until the server has taken what it will take: the budget is spent
    // and connections wait.
    let stats: Record<string, any> = {};
    const deadline = Date.now() + 60_000;
    for (;;) {
      stats = (await child.ask('stats')).stats;
      if ((stats.partialFrameWaits > 0 && stats.connections >= N) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(stats.connections, N);
    assert.ok(stats.partialFrameWaits > 0, 'connections waited for the budget');
    // A good client on the same server: small frames still get through.
    const good = new WireReader(net.connect(child.port, '127.0.0.1'));
    good.socket.write(hello(77));
    for (let i = 0; i < 200; i++) good.socket.write(msg(i, Buffer.alloc(1024, 0x62)));
    await good.until((x) => x.acked >= 200, 30_000);
    assert.equal(good.ackedOk, 200);
    good.socket.destroy();
    await new Promise((r) => setTimeout(r, 1000)); // let the reads settle before measuring
    stats = (await child.ask('stats')).stats;
    const rss = (await child.ask('rss')).rss as number;
    const grew = rss - base;
    const bound = budget + N * PER_CONNECTION_OVERHEAD + 16 * MiB; // + read chunks and batch blocks of 2 threads
    console.log(`# RSS ${(base / MiB).toFixed(1)} MiB -> ${(rss / MiB).toFixed(1)} MiB (+${(grew / MiB).toFixed(1)} MiB) with ${N} connections holding ${(stats.partialFrameBytes / MiB).toFixed(1)} MiB of partial frames (budget ${budget / MiB} MiB, bound +${(bound / MiB).toFixed(1)} MiB), ${stats.partialFrameWaits} waits`);
    assert.ok(stats.partialFrameBytes <= budget + 2 * 256 * 1024, `partialFrameBytes ${stats.partialFrameBytes}`);
    // Under a sanitizer the RSS is mostly its shadow memory and quarantine,
    // not the server's: the byte counts above still hold, the RSS bound is
    // checked in the plain build.
    if (!/lib[at]san/.test(process.env.LD_PRELOAD ?? '')) assert.ok(grew <= bound, `RSS grew by ${grew} bytes, over ${bound}`);
  } finally {
    for (const s of sockets) s.destroy();
    child.proc.kill('SIGTERM');
    await new Promise((r) => child.proc.once('exit', r));
  }
});

test('waiting for the budget ends in SLOW_FRAME after frameTimeoutMs; the budget is released', { timeout: 60_000 }, async () => {
  const dir = tempDir('msgserver-partial-');
  dirs.push(dir);
  const server = new MessageServer({ port: 0, serviceThreads: 1, file: { path: path.join(dir, 'm.log') }, limits: { maxPartialFrameBytes: 2 * MiB, frameTimeoutMs: 1500 } });
  const { port } = await server.listen();
  try {
    const frame = msg(1, Buffer.alloc(MiB, 0x61));
    const readers = Array.from({ length: 6 }, () => {
      const r = new WireReader(net.connect(port, '127.0.0.1'));
      r.socket.write(Buffer.concat([hello(1), frame.subarray(0, frame.length - 1)]));
      return r;
    });
    await Promise.all(readers.map((r) => r.until((x) => x.closed, 20_000)));
    for (const r of readers) assert.equal(r.err?.code, 11, 'SLOW_FRAME');
    const st = server.stats();
    assert.ok(st.partialFrameWaits > 0);
    assert.equal(st.errors.SLOW_FRAME, 6);
    assert.equal(st.partialFrameBytes, 0);
    // A whole 1 MiB message still fits the budget.
    const ok = new WireReader(net.connect(port, '127.0.0.1'));
    ok.socket.write(Buffer.concat([hello(2), frame]));
    await ok.until((x) => x.acked >= 1);
    ok.socket.destroy();
  } finally {
    await server.close();
  }
});

test('a connection not yet authenticated holds nothing beyond HELLO and AUTH', { timeout: 30_000 }, async () => {
  const dir = tempDir('msgserver-partial-');
  dirs.push(dir);
  const tokens = path.join(dir, 'tokens.json');
  fs.writeFileSync(tokens, JSON.stringify([{ name: 'a', sha256: '0'.repeat(64), clientIds: [[1, 1]] }]));
  const server = new MessageServer({ port: 0, file: { path: path.join(dir, 'm.log') }, auth: { tokensFile: tokens, allowPlaintext: true, required: true } });
  server.on('log', () => undefined);
  const { port } = await server.listen();
  try {
    // An AUTH frame claiming 1 MiB is refused at its length, before any body is kept.
    const big = Buffer.alloc(6);
    big.writeUInt32BE(MiB, 0);
    big[4] = 0x02;
    big[5] = 1;
    const r = new WireReader(net.connect(port, '127.0.0.1'));
    r.socket.write(Buffer.concat([hello(1, 1), big, Buffer.alloc(64 * 1024)]));
    await r.until((x) => x.closed);
    assert.equal(r.err?.code, 6, 'MALFORMED');
    // Unfinished AUTH frames: held within the per-connection allowance, nothing charged.
    const held = Array.from({ length: 20 }, () => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      const a = Buffer.alloc(6 + 1000);
      a.writeUInt32BE(2 + 1024, 0);
      a[4] = 0x02;
      a[5] = 1;
      s.write(Buffer.concat([hello(1, 1), a]));
      return s;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(server.stats().partialFrameBytes, 0);
    for (const s of held) s.destroy();
  } finally {
    await server.close();
  }
});

// ---------------------------------------------------------------------------
// The same attack over TLS: what OpenSSL holds is charged to the budget too.

/** The documented bound on what each TLS connection waiting for its handshake may cost (docs/limits.md). */
const TLS_PER_CONNECTION_OVERHEAD = 32 * 1024;

/** A TLS client over a plain socket this test also writes to directly (raw bytes after the TLS ones). */
function rawTls(port: number, ca: Buffer): Promise<{ tls: tls.TLSSocket; raw: net.Socket; reader: WireReader<tls.TLSSocket> }> {
  const raw = net.connect(port, '127.0.0.1');
  raw.on('error', () => undefined);
  const pipe = new Duplex({
    read() {},
    write(chunk, _enc, cb) {
      raw.write(chunk, () => cb());
    },
    final(cb) {
      raw.end();
      cb();
    },
  });
  raw.on('data', (b) => pipe.push(b));
  raw.on('end', () => pipe.push(null));
  raw.on('close', () => pipe.destroy());
  return new Promise((resolve, reject) => {
    const t = tls.connect({ socket: pipe, servername: 'localhost', ca });
    t.once('secureConnect', () => resolve({ tls: t, raw, reader: new WireReader(t) }));
    t.once('error', reject);
  });
}

async function connectWaves(port: number, n: number, each: (s: net.Socket) => void): Promise<net.Socket[]> {
  const out: net.Socket[] = [];
  for (let i = 0; i < n; i += 100) {
    const wave = await Promise.all(
      Array.from({ length: Math.min(100, n - i) }, () => new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => resolve(s));
        s.on('error', reject);
      })),
    );
    for (const s of wave) {
      s.removeAllListeners('error');
      s.on('error', () => undefined);
      each(s);
      out.push(s);
    }
  }
  return out;
}

test('the TLS handshake attack: 1,500 connections x a ClientHello header declaring 128 KiB stay within the budget; a good TLS client keeps its ACKs', { timeout: 180_000 }, async () => {
  const certs = testCerts();
  const dir = tempDir('msgserver-partial-');
  dirs.push(dir, certs.dir);
  const budget = 64 * MiB; // the default
  const handshakeTimeoutMs = 8000;
  const child = await startChild({
    port: 0, serviceThreads: 2, file: { path: path.join(dir, 'm.log') },
    tls: { cert: certs.serverCert, key: certs.serverKey },
    limits: { maxConnections: 5000, handshakeTimeoutMs },
  });
  let sockets: net.Socket[] = [];
  const ca = fs.readFileSync(certs.caCert);
  const tlsClient = (): Promise<tls.TLSSocket> => new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: child.port, servername: 'localhost', ca });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
  try {
    // A good TLS client, connected before the attack: it keeps its ACKs during it.
    const good = await tlsClient();
    const r = new WireReader(good);
    good.write(hello(77));
    await r.until((x) => x.helloOk);
    const base = (await child.ask('rss')).rss as number;
    // A handshake record whose ClientHello header declares 131,072 bytes.
    const attack = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x02, 0x00, 0x00]);
    const N = 1500;
    const started = Date.now();
    sockets = await connectWaves(child.port, N, (s) => s.write(attack));
    let stats: Record<string, any> = {};
    for (;;) {
      stats = (await child.ask('stats')).stats;
      if ((stats.partialFrameWaits > 0 && stats.connections >= N + 1) || Date.now() - started > handshakeTimeoutMs / 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const rss = (await child.ask('rss')).rss as number;
    const grew = rss - base;
    const bound = budget + N * TLS_PER_CONNECTION_OVERHEAD + 16 * MiB;
    console.log(`# TLS handshakes: RSS ${(base / MiB).toFixed(1)} MiB -> ${(rss / MiB).toFixed(1)} MiB (+${(grew / MiB).toFixed(1)} MiB) with ${stats.connections} connections, ${(stats.partialFrameBytes / MiB).toFixed(1)} MiB charged (budget ${budget / MiB} MiB, bound +${(bound / MiB).toFixed(1)} MiB), ${stats.partialFrameWaits} waits`);
    assert.equal(stats.connections, N + 1);
    assert.ok(stats.partialFrameWaits > 0, 'handshakes waited for the budget');
    assert.ok(stats.partialFrameBytes > 0 && stats.partialFrameBytes <= budget, `partialFrameBytes ${stats.partialFrameBytes}`);
    if (!/lib[at]san/.test(process.env.LD_PRELOAD ?? '')) assert.ok(grew <= bound, `RSS grew by ${grew} bytes, over ${bound}`);
    for (let i = 0; i < 200; i++) good.write(msg(i, Buffer.alloc(1024, 0x62)));
    await r.until((x) => x.acked >= 200, 30_000);
    assert.equal(r.ackedOk, 200);
    good.destroy();
    // New handshakes get room once the stalled ones reach handshakeTimeoutMs.
    const deadline = Date.now() + handshakeTimeoutMs + 20_000;
    while (stats.tlsHandshakeFailures < N && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 250));
      stats = (await child.ask('stats')).stats;
    }
    assert.equal(stats.tlsHandshakeFailures, N);
    const late = await tlsClient();
    const r2 = new WireReader(late);
    late.write(Buffer.concat([hello(78), msg(1, 'after')]));
    await r2.until((x) => x.acked >= 1);
    late.destroy();
    stats = (await child.ask('stats')).stats;
    assert.equal(stats.partialFrameBytes, 0);
  } finally {
    for (const s of sockets) s.destroy();
    child.proc.kill('SIGTERM');
    await new Promise((r) => child.proc.once('exit', r));
  }
});

test('the TLS record attack: 1,500 connections x (a 16 KiB record minus one byte) are charged to the budget and end in SLOW_FRAME', { timeout: 180_000 }, async () => {
  const certs = testCerts();
  const dir = tempDir('msgserver-partial-');
  dirs.push(dir, certs.dir);
  const budget = 64 * MiB;
  const frameTimeoutMs = 30_000;
  const child = await startChild({
    port: 0, serviceThreads: 2, file: { path: path.join(dir, 'm.log') },
    tls: { cert: certs.serverCert, key: certs.serverKey },
    limits: { maxConnections: 5000, frameTimeoutMs, handshakeTimeoutMs: 60_000 },
  });
  const ca = fs.readFileSync(certs.caCert);
  const conns: Awaited<ReturnType<typeof rawTls>>[] = [];
  try {
    const base = (await child.ask('rss')).rss as number;
    // An application-data record header declaring 16,384 bytes, and all its body but the last byte.
    const record = Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x40, 0x00]), Buffer.alloc(16383, 0x55)]);
    const N = 1500;
    for (let i = 0; i < N; i += 100) {
      const wave = await Promise.all(Array.from({ length: Math.min(100, N - i) }, async () => {
        const c = await rawTls(child.port, ca);
        c.tls.on('error', () => undefined);
        c.tls.write(hello(1));
        // Past the budget (some 960 held records), a new connection's
        // handshake and HELLO wait for room: until the first held records
        // end in SLOW_FRAME, frameTimeoutMs after they were sent.
        await c.reader.until((x) => x.helloOk, frameTimeoutMs + 30_000);
        c.raw.write(record);
        return c;
      }));
      conns.push(...wave);
    }
    let stats: Record<string, any> = {};
    const deadline = Date.now() + 30_000;
    for (;;) {
      stats = (await child.ask('stats')).stats;
      if (stats.partialFrameBytes >= budget - 128 * 1024 || stats.partialFrameWaits > 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const rss = (await child.ask('rss')).rss as number;
    const grew = rss - base;
    const bound = budget + N * TLS_PER_CONNECTION_OVERHEAD + 16 * MiB;
    console.log(`# TLS records: RSS ${(base / MiB).toFixed(1)} MiB -> ${(rss / MiB).toFixed(1)} MiB (+${(grew / MiB).toFixed(1)} MiB) with ${stats.connections} connections, ${(stats.partialFrameBytes / MiB).toFixed(1)} MiB charged (budget ${budget / MiB} MiB, bound +${(bound / MiB).toFixed(1)} MiB), ${stats.partialFrameWaits} waits`);
    assert.ok(stats.partialFrameBytes > 0, 'records held by OpenSSL are charged');
    assert.ok(stats.partialFrameBytes <= budget + 2 * 256 * 1024, `partialFrameBytes ${stats.partialFrameBytes}`);
    if (!/lib[at]san/.test(process.env.LD_PRELOAD ?? '')) assert.ok(grew <= bound, `RSS grew by ${grew} bytes, over ${bound}`);
    // The held records time out like unfinished frames.
    const first = conns.slice(0, 50);
    await Promise.all(first.map((c) => c.reader.until((x) => x.err !== null, frameTimeoutMs + 15_000)));
    for (const c of first) assert.equal(c.reader.err?.code, 11, 'SLOW_FRAME');
  } finally {
    for (const c of conns) c.raw.destroy();
    child.proc.kill('SIGTERM');
    await new Promise((r) => child.proc.once('exit', r));
  }
});
