#!/usr/bin/env node
// The TLS rows (npm run bench runs them; alone: node bench/tls.js [--quick] [--out file]):
//   throughput  v1 pipelined 64 conn x window 64, 1 KiB, ack written: a TLS
//               msgserver against a plaintext one, side by side, runs interleaved
//               (msgbench --tls: the native load engine speaks TLS itself)
//   handshakes  connections per second when each connection makes a full TLS
//               handshake (ECDSA P-256 server certificate) and sends one
//               message, beside `openssl speed ecdsap256` signatures per
//               second on one core: a full handshake costs the server one
//               signature, so that is the most a core can do
//   memory      the server's RSS per open idle TLS connection (and per
//               plaintext one), from 1,000 connections that completed HELLO
// The certificates are the test suite's fixtures (test/fixtures/tls: a CA and
// a server certificate for localhost/127.0.0.1, ECDSA P-256).
// Prints a Markdown section; with --out appends it to that file.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { ServerProc, WRAP } = require('./server-proc');
const { runJsonChild } = require('./json-child');

const ROOT = path.resolve(__dirname, '..');
const MSGBENCH = path.join(ROOT, 'dist', 'cli', 'msgbench.js');
const CERTS = path.join(ROOT, 'test', 'fixtures', 'tls');
const CA = path.join(CERTS, 'ca.pem');

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
}
const fmtInt = (n) => Math.round(n).toLocaleString('en-US');

function msgserver(dir, name, withTls) {
  const opts = { port: 0, ackMode: 'written', file: { path: path.join(dir, `${name}.log`) }, limits: { maxConnections: 20000 } };
  if (withTls) opts.tls = { cert: path.join(CERTS, 'server.pem'), key: path.join(CERTS, 'server.key') };
  return new ServerProc(name, [process.execPath, path.join(__dirname, 'msgserver-host.js'), JSON.stringify(opts)]);
}

// msgbench's result; a run with errors or missing ACKs is a failure here.
async function msgbench(args) {
  const argv = [...WRAP.slice(1), process.execPath, MSGBENCH, ...args, '--json', '-q'];
  const r = await runJsonChild(`msgbench ${args.join(' ')}`, WRAP[0], argv, { cwd: ROOT, timeoutMs: 300000 });
  if (r.errors > 0 || r.messagesUnacked > 0) throw new Error(`msgbench ${args.join(' ')}: ${r.errors} error(s): ${(r.errorSamples || []).join('; ')}`);
  return r;
}

// ECDSA P-256 signatures per second on one core, from `openssl speed`.
function opensslSignsPerSecond(seconds) {
  try {
    const out = execFileSync('openssl', ['speed', '-seconds', String(seconds), 'ecdsap256'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    }).toString();
    // "256 bits ecdsa (nistp256)   0.0000s   0.0001s  44210.3  14310.1": sign/s, verify/s
    const m = out.match(/256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)/);
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

// Opens n idle connections that complete HELLO (over TLS when ca is given), keeps them open.
async function openIdle(port, n, ca) {
  const { MessageClient } = require(path.join(ROOT, 'dist', 'index.js'));
  const clients = [];
  for (let i = 0; i < n; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 100); j++) {
      batch.push(MessageClient.connect({ host: '127.0.0.1', port, clientId: j + 1, ...(ca ? { tls: { ca: fs.readFileSync(ca) } } : {}) }));
    }
    clients.push(...(await Promise.all(batch)));
  }
  return clients;
}

async function rssWith(proc, port, n, ca) {
  const before = (await proc.stats()).rssBytes;
  const clients = await openIdle(port, n, ca);
  // Let the server settle (it frees handshake buffers once a connection is idle).
  await new Promise((r) => setTimeout(r, 500));
  const after = (await proc.stats()).rssBytes;
  await Promise.all(clients.map((c) => c.close()));
  return (after - before) / n;
}

async function main() {
  const { values: opt } = parseArgs({ options: { quick: { type: 'boolean' }, out: { type: 'string' } } });
  const runs = opt.quick ? 1 : 3;
  const durationMs = opt.quick ? 400 : 3000;
  // Few enough that every handshake ends well within handshakeTimeoutMs on 2 busy cores.
  const handshakes = opt.quick ? 500 : 2000;
  const idle = opt.quick ? 200 : 1000;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msgs-bench-tls-'));
  const plain = msgserver(dir, 'plain', false);
  const secure = msgserver(dir, 'tls', true);
  const lines = [];
  try {
    const plainPort = await plain.start();
    const tlsPort = await secure.start();
    // Memory first, on fresh servers: after the other rows, new connections
    // would reuse memory their connections freed and show nothing.
    const memPlain = await rssWith(plain, plainPort, idle, null);
    const memTls = await rssWith(secure, tlsPort, idle, CA);
    // As in run.js: each server gets the better of 1 and 2 load-generator
    // threads (the load generator encrypts too, on the same 2 cores).
    const servers = [['plain', plain, plainPort, []], ['tls', secure, tlsPort, ['--tls', '--ca', CA]]];
    const threads = {};
    for (const [k, , port, extra] of servers) {
      const rate = async (t) => (await msgbench(['--port', String(port), '-c', '64', '-w', '64', '-p', '1024', '-t', String(t), '-d', '1000', ...extra])).msgsPerSec;
      const one = await rate(1);
      const two = await rate(2);
      threads[k] = two >= one * 1.03 ? 2 : 1;
    }
    const tput = { plain: [], tls: [] };
    const cpu = { plain: [], tls: [] };
    for (let r = 0; r < runs; r++) {
      for (const [k, proc, port, extra] of servers) {
        const c0 = proc.cpuSeconds();
        const res = await msgbench(['--port', String(port), '-c', '64', '-w', '64', '-p', '1024', '-t', String(threads[k]), '-d', String(durationMs), ...extra, '--client-id', String(1 + r * 1000)]);
        tput[k].push(res.msgsPerSec);
        cpu[k].push(((proc.cpuSeconds() - c0) / res.messagesAcked) * 1e6);
      }
    }
    const hs = { plain: [], tls: [] };
    for (let r = 0; r < runs; r++) {
      for (const [k, port, extra] of [['plain', plainPort, []], ['tls', tlsPort, ['--tls', '--ca', CA]]]) {
        const t0 = process.hrtime.bigint();
        await msgbench(['--port', String(port), '-c', String(handshakes), '-n', '1', '-w', '1', '-t', '2', ...extra]);
        hs[k].push(handshakes / (Number(process.hrtime.bigint() - t0) / 1e9));
      }
    }
    const signs = opensslSignsPerSecond(opt.quick ? 1 : 3);

    const p = median(tput.plain);
    const t = median(tput.tls);
    lines.push('## TLS', '');
    lines.push(`Generated by \`node bench/tls.js${opt.quick ? ' --quick' : ''}\` (also run by \`npm run bench\`): a TLS msgserver and a plaintext one side by side, ${runs} run(s) each, interleaved; medians. Server certificate ECDSA P-256; TLS 1.3.`, '');
    lines.push('| row | plaintext | TLS | TLS / plaintext | target | bounded by |', '|---|---|---|---|---|---|');
    lines.push(`| v1 pipelined 64 conn x window 64, 1 KiB, ack written (load threads: plaintext ${threads.plain}, TLS ${threads.tls}) | ${fmtInt(p)} msgs/s (${median(cpu.plain).toFixed(2)} CPU s per million) | ${fmtInt(t)} msgs/s (${median(cpu.tls).toFixed(2)} CPU s per million) | ${(t / p).toFixed(2)}x | ${t / p >= 0.7 ? 'met' : '**not met**'}: >= 0.7x plaintext | decryption (AES-GCM) of every byte in, encryption of the ACKs, on the same 2 cores as the load generator's encryption |`);
    lines.push(`| connections per second, each a full handshake + 1 message (${fmtInt(handshakes)} connections) | ${fmtInt(median(hs.plain))} conn/s | ${fmtInt(median(hs.tls))} conn/s | ${(median(hs.tls) / median(hs.plain)).toFixed(2)}x | - | the limit of one core is \`openssl speed ecdsap256\`: ${Number.isFinite(signs) ? fmtInt(signs) : '(openssl not found)'} signatures/s${Number.isFinite(signs) ? ` (the TLS handshakes reach ${((median(hs.tls) / signs) * 100).toFixed(0)}% of that)` : ''}; but a whole TLS 1.3 handshake in OpenSSL 3 costs far more than its one signature (the X25519 key share, HKDF, provider lookups: about 1 ms of server CPU here), on both sides, and the load generator's handshakes share the 2 cores |`);
    lines.push(`| server memory per open idle connection (${fmtInt(idle)} connections after HELLO) | ${(memPlain / 1024).toFixed(1)} KiB | ${(memTls / 1024).toFixed(1)} KiB | - | - | OpenSSL's per-session state; read and write buffers are released while idle (SSL_MODE_RELEASE_BUFFERS) |`);
    lines.push('');
  } finally {
    await plain.stop();
    await secure.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const text = lines.join('\n') + '\n';
  if (opt.out) fs.appendFileSync(opt.out, '\n' + text);
  process.stdout.write(text);
}

main().catch((err) => {
  console.error(`bench/tls.js: ${err.stack || err.message}`);
  process.exit(1);
});
