#!/usr/bin/env node
// The TLS figures of docs/security.md, measured on this machine in one run:
//   1. memory per idle TLS connection: the server's RSS (in a child process)
//      before and after N clients completed the handshake and the HELLO and
//      went quiet;
//   2. full TLS handshakes per second against one service thread with an
//      ECDSA P-256 certificate (TLS 1.3, no resumption; clients: openssl
//      s_time, one per core), beside
//      `openssl speed -seconds 3 ecdsap256` (signatures per second: each
//      handshake costs the server one signature, so that is the ceiling).
// Usage: npm run build:ts && npx tsc -p test/tsconfig.json && node scripts/tls-figures.js [idleConnections]
// The clients share the machine: on a small machine they, not the server,
// may be what limits handshakes/s.
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');

const root = path.join(__dirname, '..');
const { makeCerts } = require(path.join(root, 'dist-test', 'support', 'certs.js'));

const N = Number(process.argv[2] ?? 2000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msgserver-tls-figures-'));
const certs = makeCerts(dir);

function startChild(opts) {
  const proc = spawn(process.execPath, [path.join(root, 'dist-test', 'fixtures', 'server-child.js'), JSON.stringify(opts)], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  let next = 1;
  const pending = new Map();
  proc.on('message', (m) => pending.get(m.id)?.(m));
  const ask = (cmd) => new Promise((resolve) => { const id = next++; pending.set(id, resolve); proc.send({ id, cmd }); });
  const port = new Promise((resolve) => {
    let buf = '';
    proc.stdout.on('data', (d) => { buf += d; const m = /\{"listening":(\d+)\}/.exec(buf); if (m) resolve(Number(m[1])); });
  });
  return { proc, port, ask };
}

function hello(id) {
  const b = Buffer.alloc(12);
  b.write('MSGS', 0, 'latin1');
  b[4] = 1;
  b.writeUInt32BE(id, 8);
  return b;
}

function connect(port, ca) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, minVersion: 'TLSv1.3' }, () => resolve(s));
    s.once('error', reject);
  });
}

async function idleMemory() {
  const child = startChild({ port: 0, serviceThreads: 2, file: { path: path.join(dir, 'idle.log') }, tls: { cert: certs.serverCert, key: certs.serverKey }, limits: { maxConnections: N + 100 } });
  const port = await child.port;
  const ca = fs.readFileSync(certs.caCert);
  // Warm up: the first connections allocate what every later one reuses.
  const warm = await Promise.all(Array.from({ length: 50 }, () => connect(port, ca)));
  warm.forEach((s) => s.destroy());
  await new Promise((r) => setTimeout(r, 500));
  const before = (await child.ask('rss')).rss;
  const socks = [];
  for (let i = 0; i < N; i += 100) {
    const wave = await Promise.all(Array.from({ length: Math.min(100, N - i) }, () => connect(port, ca)));
    for (const s of wave) {
      s.on('error', () => {});
      await new Promise((resolve) => { s.once('data', resolve); s.write(hello(1 + socks.length)); });
      socks.push(s);
    }
  }
  await new Promise((r) => setTimeout(r, 1000));
  const after = (await child.ask('rss')).rss;
  for (const s of socks) s.destroy();
  child.proc.kill('SIGTERM');
  await new Promise((r) => child.proc.once('exit', r));
  return { before, after, perConnection: (after - before) / N };
}

// Clients: `openssl s_time -new` (full handshakes, no verification: the
// cheapest client there is), one per core, for `seconds`; the rate is the
// server's own count of completed handshakes over the run.
async function handshakesPerSecond(seconds = 5) {
  const child = startChild({ port: 0, serviceThreads: 1, file: { path: path.join(dir, 'hs.log') }, tls: { cert: certs.serverCert, key: certs.serverKey } });
  const port = await child.port;
  const start0 = (await child.ask('stats')).stats.tlsHandshakes;
  const t0 = Date.now();
  const clients = Math.max(1, os.availableParallelism());
  await Promise.all(Array.from({ length: clients }, () => new Promise((resolve) => {
    const c = spawn('openssl', ['s_time', '-connect', `127.0.0.1:${port}`, '-new', '-time', String(seconds), '-tls1_3'], { stdio: 'ignore' });
    c.on('exit', resolve);
  })));
  const elapsed = (Date.now() - t0) / 1000;
  const st = (await child.ask('stats')).stats;
  child.proc.kill('SIGTERM');
  await new Promise((r) => child.proc.once('exit', r));
  return { perSecond: (st.tlsHandshakes - start0) / elapsed, clients, failures: st.tlsHandshakeFailures, waits: st.tlsHandshakeWaits };
}

function opensslSpeed() {
  const out = execFileSync('openssl', ['speed', '-seconds', '3', 'ecdsap256'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const line = out.split('\n').find((l) => /256 bits ecdsa \(nistp256\)/.test(l));
  const nums = line.trim().split(/\s+/);
  return { sign: Number(nums[nums.length - 2]), verify: Number(nums[nums.length - 1]) };
}

(async () => {
  const mem = await idleMemory();
  console.log(`idle TLS connections: ${N}; server RSS ${(mem.before / 1048576).toFixed(1)} MiB -> ${(mem.after / 1048576).toFixed(1)} MiB: ${(mem.perConnection / 1024).toFixed(1)} KiB per idle TLS connection`);
  const hs = await handshakesPerSecond();
  const speed = opensslSpeed();
  console.log(`full TLS 1.3 handshakes (ECDSA P-256, one service thread, ${hs.clients} openssl s_time clients on the same machine): ${hs.perSecond.toFixed(0)}/s (${hs.failures} failed, ${hs.waits} steps put off); openssl speed ecdsap256: ${speed.sign.toFixed(0)} sign/s, ${speed.verify.toFixed(0)} verify/s`);
  fs.rmSync(dir, { recursive: true, force: true });
})();
