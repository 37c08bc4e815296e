#!/usr/bin/env node
// The benchmark matrix (npm run bench): every row is measured against its
// references side by side in the same command, and reported as ratios:
//   msgserver        bench/msgserver-host.js: a MessageServer from dist/, file in a temp dir on disk
//   written ceiling  bench/ceiling.c --file: one thread, one write() of each chunk read before its ACKs
//   no-file ceiling  bench/ceiling.c: one thread per core, parses and ACKs, writes nothing
//   Node baseline    bench/node-baseline.js: idiomatic `net` + fs.WriteStream
//   direct publisher bench/js-publisher.c (JetStream rows): the official NATS C client,
//                    js_PublishAsync with a Nats-Msg-Id per message, into a stream of its own
// The load comes from msgbench (dist/cli/msgbench.js, the native load
// generator) in its own process. Each row starts its servers, then runs
// msgbench against them in turn, `runs` times (interleaved, so drift in the
// machine's load hits all alike; each run starts with the next server in
// turn, so none always runs after the same file writer), and reports medians, the server's CPU
// seconds per million messages (/proc/<pid>/stat around each run) and what
// bounds the row. Scaling rows (1 .. 10,000 pipelining connections) and the
// idle server's CPU are measured too. Writes bench/BENCHMARKS.md and its
// plots (bench/*.svg, written here by bench/svg.js).
//
// The TLS rows (bench/tls.js, appended as their own section; --only tls runs
// them alone): TLS against plaintext msgserver, handshakes per second beside
// `openssl speed`, memory per idle TLS connection.
//
// The JetStream rows (ids jetstream-*) run several msgserver
// configurations side by side instead of one: (a) written to the file only,
// (b) written + JetStream beside, (c) replicated R1, (d) replicated R3 on a
// 3-node cluster, (e) replicated with no file; the nats-server processes are
// started by the bench (bench/nats.js). Without nats-server or libnats those
// rows are skipped with the reason printed (MSGS_REQUIRE_NATS=1: a failure).
//
//   node bench/run.js [--quick] [--runs n] [--duration-ms ms] [--only regex] [--out file]
//        [--load-threads 1|2|auto] [--burst-connections n] [--idle-ms ms]
//        [--label name] [--addon-before path] [--compare label=path ...]
//        [--compare-options label=json ...]
//
// --only matches a row's id or title (e.g. --only jetstream; --only idle
// for the idle measurement alone, which runs when --only is absent or matches
// "idle"). --quick (CI, about a minute): 1 run of 400 ms per row, a reduced
// matrix; only checks that everything runs and the ratios print.
// Prerequisites: npm run build (dist/ and the addon with the load
// generator) and a C compiler for bench/ceiling.c (and libnats-dev for
// bench/js-publisher.c; without it the direct publisher is skipped).
// MSGSERVER_ADDON=<path to msgserver.node> runs msgserver with that addon
// (e.g. a before/after pair); --label names it in the output.
// --addon-before <path to msgserver.node>: every plain row also runs a second
// msgserver with that addon ("msgserver (before)"), interleaved with the
// others, and prints after/before: an optimisation's before/after pair in one run.
// In the JetStream rows the configurations with a target, (c) and (d), run
// with it too, each into a stream of its own on the same NATS deployment.
// --compare <label>=<path> (repeatable) does the same for more addons, each
// named "msgserver (<label>)"; --addon-before <path> is --compare before=<path>.
// --compare-options <label>=<json> (repeatable) runs this build beside itself
// with the JSON merged into msgserver's options ("file" merged into the
// file options), e.g. 'page cache kept={"file":{"dropCache":false}}': the
// before/after pair of an optimisation that is a setting.
'use strict';
const { spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const nats = require('./nats');
const { ServerProc, WRAP } = require('./server-proc');
const { lineChart } = require('./svg');
const { runJsonChild } = require('./json-child');

const ROOT = path.resolve(__dirname, '..');
const MSGBENCH = path.join(ROOT, 'dist', 'cli', 'msgbench.js');
const CEILING_SRC = path.join(__dirname, 'ceiling.c');
const CEILING_BIN = path.join(ROOT, 'build-bench', 'ceiling');
const PUBLISHER_SRC = path.join(__dirname, 'js-publisher.c');
const PUBLISHER_BIN = path.join(ROOT, 'build-bench', 'js-publisher');
// msgbench names its messages "bench": a record in msgserver's file (and the
// message it publishes to JetStream) is the payload + 8 (length, CRC) + 29
// (seq, time, client id, msg id, name length) + 5 (the name). The direct
// publisher sends messages of that size.
const RECORD_OVERHEAD = 8 + 29 + 5;

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    'duration-ms': { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string' },
    'load-threads': { type: 'string' },
    'burst-connections': { type: 'string' },
    'idle-ms': { type: 'string' },
    label: { type: 'string' },
    'addon-before': { type: 'string' },
    compare: { type: 'string', multiple: true },
    'compare-options': { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h' },
  },
});
if (opt.help) {
  const lines = fs.readFileSync(__filename, 'utf8').split('\n').slice(1);
  console.log(lines.slice(0, lines.findIndex((l) => !l.startsWith('//'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}
const QUICK = opt.quick;
const RUNS = Number(opt.runs ?? (QUICK ? 1 : 3));
const DURATION = Number(opt['duration-ms'] ?? (QUICK ? 400 : 3000));
// --quick keeps to about a minute: bursts of 1,000 connections, two scaling
// rows, the 100 B payload only where it is pipelined, and the legacy rows
// against the written ceiling only.
const BURST_CONNS = Number(opt['burst-connections'] ?? (QUICK ? 1000 : 10000));
// 'auto': before a throughput row's runs, try 1 and 2 load threads against each server and keep its better one.
const LOAD_THREADS = opt['load-threads'] ?? (QUICK ? '1' : 'auto');
const OUT = path.resolve(opt.out ?? path.join(__dirname, 'BENCHMARKS.md'));
// Idle CPU: the server's CPU seconds over this long with nothing to do.
const IDLE_MS = Number(opt['idle-ms'] ?? (QUICK ? 3000 : 10000));
// Scaling rows: pipelining connections. The window shrinks as connections
// grow (8,192 messages in flight at most, at least 2 per connection) so the
// rows compare the cost of connections, not of ever deeper queues.
const SCALE_CONNS = QUICK ? [1, 2048] : [1, 16, 256, 2048, 10000];
const scaleWindow = (c) => Math.max(2, Math.min(64, Math.floor(8192 / c)));

// ---- the matrix ---------------------------------------------------------------

const KIND = {
  pipelined: { conns: 64, window: 64, label: 'pipelined 64 conn x window 64', metric: 'msgs/s' },
  sync: { conns: 100, window: 1, label: 'synchronous 100 conn', metric: 'msgs/s' },
  latency: { conns: 1, window: 1, label: 'latency 1 conn sync', metric: 'p50' },
  burst: { conns: BURST_CONNS, window: 1, messages: 6, label: `burst ${BURST_CONNS.toLocaleString('en-US')} conn x 6 sync`, metric: 'time' },
};
for (const c of SCALE_CONNS) {
  KIND[`scale${c}`] = { conns: c, window: scaleWindow(c), label: `scaling ${c.toLocaleString('en-US')} conn x window ${scaleWindow(c)}`, metric: 'msgs/s', scale: true };
}
const kindOf = (row) => KIND[row.kind];
const isScale = (row) => !!KIND[row.kind].scale;
// Legacy frames are always 1160 bytes; "payload" is the text in them (at most 1023).
const PAYLOADS = { v1: [100, 1024], legacy: [100, 1023] };

function buildRows() {
  const rows = [];
  for (const protocol of ['v1', 'legacy']) {
    for (const kind of ['pipelined', 'sync', 'latency']) {
      for (const payload of PAYLOADS[protocol]) rows.push({ protocol, kind, payload, ackMode: 'written' });
    }
    const big = PAYLOADS[protocol][1];
    rows.push({ protocol, kind: 'pipelined', payload: big, ackMode: 'received' });
    // The same as the written row, with a no-op message hook (policy drop) on msgserver only.
    if (protocol === 'v1') rows.push({ protocol, kind: 'pipelined', payload: big, ackMode: 'written', hook: 'drop' });
    rows.push({ protocol, kind: 'pipelined', payload: big, ackMode: 'durable' });
    rows.push({ protocol, kind: 'burst', payload: 100, ackMode: 'written' });
  }
  for (const c of SCALE_CONNS) rows.push({ protocol: 'v1', kind: `scale${c}`, payload: 1024, ackMode: 'written' });
  if (QUICK) {
    for (let i = rows.length - 1; i >= 0; i--) {
      const r = rows[i];
      if ((r.kind === 'sync' || r.kind === 'latency') && r.payload === 100) rows.splice(i, 1);
      else if (r.protocol === 'legacy') r.baselines = ['wceil'];
    }
  }
  for (const r of rows) {
    r.id = `${r.protocol}-${r.kind}-${r.payload}-${r.ackMode}${r.hook ? '-hook' : ''}`;
    r.title = `${r.protocol} ${KIND[r.kind].label}, payload ${fmtBytes(r.payload)}${r.protocol === 'legacy' ? ' (1160-byte frames)' : ''}, ack ${r.ackMode}${r.hook ? ', msgserver with a no-op message hook (policy drop)' : ''}`;
  }
  // JetStream: one row per shape, msgserver configurations (JS_VARIANTS) side by side.
  // --quick keeps them under ~10 s: no 100 B row, no ceiling or Node baseline beside them.
  const js = [
    { kind: 'pipelined', payload: 1024, variants: ['a', 'b', 'c', 'd', 'e'], baselines: ['wceil', 'ceil', 'node'], publishers: ['r1', 'r3'] },
    { kind: 'pipelined', payload: 100, variants: ['a', 'b', 'c', 'd', 'e'], baselines: ['wceil', 'ceil', 'node'], publishers: ['r1', 'r3'], full: true },
    { kind: 'latency', payload: 1024, variants: ['a', 'c', 'd'], baselines: ['wceil'], publishers: ['r1', 'r3'] },
  ]
    .filter((r) => !(QUICK && r.full))
    .map((r) => (QUICK ? { ...r, baselines: [] } : r));
  for (const r of js) {
    const v = r.variants.map((k) => JS_VARIANTS[k].short).join(' / ');
    rows.push({
      ...r,
      protocol: 'v1',
      group: 'jetstream',
      ackMode: 'written',
      id: `jetstream-v1-${r.kind}-${r.payload}`,
      title: `JetStream: v1 ${KIND[r.kind].label}, payload ${fmtBytes(r.payload)}: ${v}`,
    });
  }
  return rows;
}

// The msgserver configurations of the JetStream rows. nats: which NATS
// deployment the sink uses (r1: one nats-server; r3: a 3-node cluster, stream
// replicas 3). Every (row, configuration) gets its own stream and subjects.
// The configurations run again with each other build of the addon (the ones with a target).
const JS_COMPARED = ['c', 'd'];
const JS_VARIANTS = {
  a: { short: 'written', label: '(a) written, file only', ackMode: 'written' },
  b: { short: 'written+JS', label: '(b) written + JetStream beside (R1; ACK after the file)', ackMode: 'written', nats: 'r1' },
  c: { short: 'replicated R1', label: '(c) replicated, R1 (1 nats-server)', ackMode: 'replicated', nats: 'r1' },
  d: { short: 'replicated R3', label: '(d) replicated, R3 (3-node cluster)', ackMode: 'replicated', nats: 'r3' },
  e: { short: 'replicated R1 no file', label: '(e) replicated, R1, file.enabled false', ackMode: 'replicated', nats: 'r1', noFile: true },
};

// Targets (the performance goals); each is [text, met].
function targetsFor(row, fig, byId) {
  const t = [];
  if (row.group === 'jetstream') {
    for (const [k, pub] of [['c', 'pub1'], ['d', 'pub3']]) {
      const f = fig[k];
      const p = fig[pub];
      if (!f || !p || row.kind !== 'pipelined') continue;
      t.push([`${JS_VARIANTS[k].short} >= 0.9x the direct publisher (${fmtInt(p.msgsPerSec)} msgs/s)`, f.msgsPerSec >= 0.9 * p.msgsPerSec]);
    }
    return t;
  }
  const { ms, wceil } = fig;
  if (!ms) return t;
  if (row.hook) {
    const w = byId.get(`${row.protocol}-pipelined-${row.payload}-written`);
    if (w && w.fig.ms) t.push([`a no-op hook costs < 10% (written row: ${fmtInt(w.fig.ms.msgsPerSec)} msgs/s)`, ms.msgsPerSec >= 0.9 * w.fig.ms.msgsPerSec]);
    return t;
  }
  if (row.ackMode === 'written' && wceil) {
    if (row.kind === 'pipelined' || isScale(row)) t.push(['>= 0.9x written ceiling', ms.msgsPerSec >= 0.9 * wceil.msgsPerSec]);
    if (row.kind === 'sync') t.push(['>= 1.0x written ceiling', ms.msgsPerSec >= wceil.msgsPerSec]);
    if (row.kind === 'latency') {
      t.push(['p50 <= 1.1x written ceiling', ms.p50 <= 1.1 * wceil.p50]);
      t.push(['p99 <= 2x written ceiling', ms.p99 <= 2 * wceil.p99]);
    }
    if (row.kind === 'burst') t.push(['time <= 1.1x written ceiling', ms.elapsedMs <= 1.1 * wceil.elapsedMs]);
  }
  if (row.kind === 'burst') t.push(['every message ACKed and written', ms.clean && ms.written === ms.expected]);
  if (row.ackMode === 'durable') {
    const w = byId.get(`${row.protocol}-pipelined-${row.payload}-written`);
    if (w && w.fig.ms) t.push([`>= 50% of written (${fmtInt(w.fig.ms.msgsPerSec)} msgs/s)`, ms.msgsPerSec >= 0.5 * w.fig.ms.msgsPerSec]);
  }
  return t;
}

// What bounds a row, in one line, from what was measured beside it.
function boundFor(row, fig) {
  const { wceil, ceil } = fig;
  const firstTouch =
    'page-cache first touch: every written byte is copied into page-cache pages, and pages the guest has not touched recently are slow to get (about 0.5 GB/s here, against 5+ GB/s into pages just freed)';
  if (row.group === 'jetstream') {
    if (row.kind === 'latency') return 'NATS: each ACK waits for a round trip to nats-server (R3: plus the replication to a second node) and its store; the file write is a small part';
    return 'NATS: for (b)-(e) nats-server\'s publish acknowledgements (parsing, storing, and for R3 replicating every message on the same 2 cores; ' +
      '(b) ACKs after the file, but its publishes waiting for nats-server hold the writer back at jetstream.maxPending); ' +
      '(a): the file, as in the written rows: msgserver drops its written pages behind it and is bounded by the writer\'s copy and the disk\'s writeback, the written ceiling by ' + firstTouch;
  }
  if (row.ackMode === 'durable') return 'fsync: every ACK waits for an fdatasync of its batch (group commit: one fsync covers many messages)';
  if (row.kind === 'latency') return 'network copy: one loopback round trip per message with a wake-up on each side; for msgserver also the service -> writer -> service thread hops';
  if (row.kind === 'sync') return 'network copy: 100 round trips in flight, a wake-up per message on each side; the file write is a small part of each';
  if (row.kind === 'burst') {
    return 'connection setup: the handshake, accept (and for msgserver the hand-off to a service thread) of each connection, the messages are small; ' +
      'a burst larger than the listen queue (net.core.somaxconn) that is not drained fast enough costs SYN retransmits, a second or more each';
  }
  if (row.ackMode === 'received') return 'network copy: the loopback copy in and the ACK out; nothing waits for the file';
  const share = wceil && ceil ? wceil.msgsPerSec / ceil.msgsPerSec : NaN;
  if (Number.isFinite(share) && share < 0.6) {
    const ms = fig.ms;
    let own = '';
    if (row.hook) {
      own = '; msgserver: the Node thread, which turns every message into a JS object for the hook (policy drop: what it cannot take is dropped, not waited for)';
    } else if (ms && ms.msgsPerSec >= 1.2 * wceil.msgsPerSec) {
      own = '; msgserver drops its written pages behind it (file.dropCache), so its writes reuse freed pages: it is bounded by the writer\'s copy and the disk\'s writeback (`dd oflag=direct` writes about 1.1 GB/s here)';
    }
    return `${firstTouch} (the written ceiling reaches ${pct(share)} of the no-file ceiling)${own}`;
  }
  if (Number.isFinite(share)) return `network copy and parsing (the written ceiling reaches ${pct(share)} of the no-file ceiling: the file write is not what limits it)`;
  return firstTouch;
}

// ---- formatting ---------------------------------------------------------------

function fmtInt(n) {
  return Math.round(n).toLocaleString('en-US');
}
function fmtBytes(n) {
  return n === 1024 ? '1 KiB' : `${n} B`;
}
function fmtUs(us) {
  if (us >= 1e6) return `${(us / 1e6).toFixed(2)} s`;
  if (us >= 1e3) return `${(us / 1e3).toFixed(2)} ms`;
  return `${us.toFixed(1)} us`;
}
function pct(x) {
  return `${Math.round(x * 100)}%`;
}
function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
function headline(row, f) {
  if (!f) return 'n/a';
  let s;
  if (row.kind === 'latency') s = `p50 ${fmtUs(f.p50)}`;
  else if (row.kind === 'burst') s = `${fmtInt(f.elapsedMs)} ms`;
  else s = `${fmtInt(f.msgsPerSec)} msgs/s`;
  if (!f.clean) s += ` (${fmtInt(f.errors)} errors, ${fmtInt(f.unacked)} unACKed)`;
  return s;
}
// msgserver relative to another server: throughput as a fraction (higher is
// better), latency and burst time as a multiple (lower is better).
function ratio(row, a, b) {
  if (!a || !b) return null;
  if (row.kind === 'latency') return a.p50 / b.p50;
  if (row.kind === 'burst') return a.elapsedMs / b.elapsedMs;
  return a.msgsPerSec / b.msgsPerSec;
}
function fmtRatio(row, r, vsNode) {
  if (r === null || !Number.isFinite(r)) return 'n/a';
  if (row.kind === 'latency' || row.kind === 'burst') return `${r.toFixed(2)}x ${row.kind === 'latency' ? 'p50' : 'time'}`;
  return vsNode ? `${r.toFixed(2)}x` : `${pct(r)} (${r.toFixed(2)}x)`;
}

// ---- processes ----------------------------------------------------------------

// Environment of the msgserver host: MSGSERVER_ADDON passes through (lib/server/native.ts reads it).
function benchArgs(row, port, threads, durationMs) {
  const k = KIND[row.kind];
  const a = ['--port', String(port), '--protocol', row.protocol, '-c', String(k.conns), '-w', String(k.window)];
  a.push('-p', String(row.payload), '-t', String(threads));
  if (k.messages) a.push('-n', String(k.messages));
  else a.push('-d', String(durationMs));
  // JetStream rows: every msgbench run gets client ids of its own, so that no
  // message repeats a Nats-Msg-Id (<clientId>-<msgId>) the stream has seen:
  // the duplicate window would drop it instead of storing it.
  if (row.group === 'jetstream') {
    a.push('--client-id', String(nextClientId));
    nextClientId += k.conns;
  }
  return a;
}
// Start past anything an earlier bench could have left in a stream of the same nats-server.
let nextClientId = 1 + (Date.now() % 1000000) * 1000;

// The direct publisher's arguments: as many messages in flight as msgbench
// keeps (connections x window), messages the size of msgserver's records.
function publisherArgs(row, dep, stream, durationMs, messages) {
  const k = KIND[row.kind];
  const a = ['--url', dep.urls.join(','), '--stream', stream, '--subject-prefix', `msgbench.${stream}`, '--replicas', String(dep.urls.length > 1 ? 3 : 1)];
  a.push('--size', String(row.payload + RECORD_OVERHEAD), '--window', String(k.conns * k.window));
  a.push(...(messages ? ['--messages', String(messages)] : ['--duration-ms', String(durationMs)]));
  a.push('--client-id', String(nextClientId++));
  return a;
}

function runPublisher(args) {
  return runJsonChild(`js-publisher ${args.join(' ')}`, PUBLISHER_BIN, args, { cwd: ROOT, timeoutMs: DURATION + 120000 });
}

function runBench(args) {
  const argv = [...WRAP.slice(1), process.execPath, MSGBENCH, ...args, '--json', '-q'];
  return runJsonChild(`msgbench ${args.join(' ')}`, WRAP[0], argv, { cwd: ROOT, timeoutMs: DURATION + 120000 });
}

// ---- setup ----------------------------------------------------------------------

function prerequisites() {
  if (!fs.existsSync(MSGBENCH) || !fs.existsSync(path.join(ROOT, 'dist', 'index.js'))) {
    throw new Error('dist/ is missing: run `npm run build` first');
  }
  const probe = execFileSync(process.execPath, ['-e', "process.stdout.write(typeof require('./dist/bench/bench').loadBenchAddon().runLoad)"], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (probe !== 'function') throw new Error('the load engine has no runLoad: rebuild it (npm run build: build/Release/msgbench/msgbench.node)');
  const fresh = (bin, src) => fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= fs.statSync(src).mtimeMs;
  fs.mkdirSync(path.dirname(CEILING_BIN), { recursive: true });
  if (!fresh(CEILING_BIN, CEILING_SRC)) {
    execFileSync(process.env.CC || 'cc', ['-O2', '-o', CEILING_BIN, CEILING_SRC, '-lpthread'], { stdio: 'inherit' });
  }
}

// null when the direct JetStream publisher is built (or builds now), else why not.
function publisherUnavailable() {
  try {
    if (!(fs.existsSync(PUBLISHER_BIN) && fs.statSync(PUBLISHER_BIN).mtimeMs >= fs.statSync(PUBLISHER_SRC).mtimeMs)) {
      execFileSync(process.env.CC || 'cc', ['-O2', '-o', PUBLISHER_BIN, PUBLISHER_SRC, '-lnats', '-lpthread'], { stdio: 'pipe' });
    }
    return null;
  } catch (e) {
    return `cannot build bench/js-publisher.c (needs libnats-dev): ${String(e.stderr || e.message).trim().split('\n')[0]}`;
  }
}

function machine() {
  const cpu = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = (/^model name\s*:\s*(.*)$/m.exec(cpu) || [])[1] || 'unknown';
  const flags = (/^flags\s*:\s*(.*)$/m.exec(cpu) || [])[1] || '';
  const mem = (/MemTotal:\s*(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8')) || [])[1];
  let somax = '?';
  try {
    somax = fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim();
  } catch {}
  return {
    nproc: os.availableParallelism(),
    model,
    sse42: /\bsse4_2\b/.test(flags),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    memGiB: mem ? (Number(mem) / 1024 / 1024).toFixed(1) : '?',
    somaxconn: somax,
  };
}

function summarize(results, extra) {
  const ok = results.filter((r) => r.result);
  const pick = (f) => median(ok.map((r) => f(r.result)));
  const errors = ok.reduce((s, r) => s + r.result.errors, 0);
  const unacked = ok.reduce((s, r) => s + r.result.messagesUnacked + (r.result.messagesSent - r.result.messagesAcked), 0);
  return {
    runs: results,
    msgsPerSec: pick((r) => r.msgsPerSec),
    wireMBPerSec: pick((r) => r.wireMBPerSec),
    p50: pick((r) => r.latency.p50Us),
    p99: pick((r) => r.latency.p99Us),
    p999: pick((r) => r.latency.p999Us),
    max: pick((r) => r.latency.maxUs),
    elapsedMs: pick((r) => r.elapsedMs),
    errors,
    unacked,
    failedRuns: results.length - ok.length,
    clean: errors === 0 && unacked === 0 && ok.length === results.length && ok.length > 0,
    ...extra,
  };
}

// ---- JetStream ------------------------------------------------------

// null when the JetStream rows can run here, else why not.
function jetstreamUnavailable() {
  if (!nats.findNatsServer()) return 'nats-server not found (looked on PATH and in /usr/sbin, /usr/local/sbin, /sbin; Debian: apt-get install nats-server)';
  const probe =
    "const a = require('./dist/server/native').loadAddon(); process.stdout.write(typeof a.jetstreamAvailability === 'function' ? " +
    "a.jetstreamAvailability() : 'this build of the native addon has no JetStream sink')";
  try {
    const avail = execFileSync(process.execPath, ['-e', probe], { cwd: ROOT, encoding: 'utf8' });
    return avail === 'available' ? null : avail;
  } catch (e) {
    return `cannot probe the addon for JetStream: ${e.message}`;
  }
}

// The NATS deployments ('r1': one nats-server, 'r3': a 3-node cluster),
// started on first use and stopped when the bench ends.
const natsDeployments = new Map();
function natsFor(which) {
  if (!natsDeployments.has(which)) {
    const t = Date.now();
    const p = nats.start({ nodes: which === 'r3' ? 3 : 1, name: `msgbench-${which}` }).then((c) => {
      process.stdout.write(`  nats ${which}: ${c.urls.length} nats-server node(s) ready in ${Date.now() - t} ms (${c.urls.join(', ')}; store in ${c.dir})\n`);
      return c;
    });
    p.catch(() => {});
    natsDeployments.set(which, p);
  }
  return natsDeployments.get(which);
}
async function stopNats() {
  for (const p of natsDeployments.values()) {
    try {
      await (await p).stop();
    } catch {}
  }
  natsDeployments.clear();
}

// ---- main ---------------------------------------------------------------------

const SERVER_NAMES = { ms: 'msgserver', wceil: 'written ceiling', ceil: 'no-file ceiling', node: 'Node baseline', pub1: 'direct publisher R1', pub3: 'direct publisher R3' };
const MS_LABEL = opt.label ? `msgserver (${opt.label})` : 'msgserver';
// Other builds of the addon, or this one with other options, run beside
// msgserver: [{key, label, path, opts}] (path null: this build; opts: merged
// into msgserver's options by withCompared()).
const COMPARE = [
  ...[...(opt['addon-before'] ? [`before=${opt['addon-before']}`] : []), ...(opt.compare || [])].map((c) => {
    const eq = c.indexOf('=');
    if (eq < 1) throw new Error(`--compare ${c}: expected <label>=<path to msgserver.node>`);
    return { label: c.slice(0, eq), path: path.resolve(c.slice(eq + 1)), opts: {} };
  }),
  ...(opt['compare-options'] || []).map((c) => {
    const eq = c.indexOf('=');
    let opts;
    try {
      opts = eq > 0 ? JSON.parse(c.slice(eq + 1)) : null;
    } catch {
      opts = null;
    }
    if (!opts || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`--compare-options ${c}: expected <label>=<JSON object of msgserver options>`);
    return { label: c.slice(0, eq), path: null, opts };
  }),
].map((c, i) => ({ ...c, key: i === 0 && opt['addon-before'] ? 'before' : `cmp${i}` }));

// msgserver's options o for the compared build or options c, its log at logPath.
function withCompared(o, c, logPath) {
  const file = o.file && o.file.enabled === false ? o.file : { ...o.file, ...(c.opts.file || {}), path: logPath };
  return { ...o, ...c.opts, file };
}
const comparedEnv = (c) => (c.path ? { MSGSERVER_ADDON: c.path } : undefined);

function msgserverProc(name, o, env) {
  return new ServerProc(name, [process.execPath, 'bench/msgserver-host.js', JSON.stringify(o)], { cwd: ROOT, env });
}
function ceilingProc(row, dir, written, extra) {
  const a = [CEILING_BIN, '--port', '0', '--protocol', row.protocol, ...extra];
  if (written) a.push('--file', path.join(dir, 'ceiling.log'));
  return new ServerProc(written ? 'written ceil' : 'no-file ceil', a, { cwd: ROOT });
}

// The servers (and, in JetStream rows, direct publishers) of one row.
async function rowServers(row, dir) {
  const big = row.kind === 'burst' || isScale(row) ? ['--max-connections', '20000'] : [];
  const servers = [];
  if (row.group === 'jetstream') {
    await Promise.all(row.variants.filter((k) => JS_VARIANTS[k].nats).map((k) => natsFor(JS_VARIANTS[k].nats)));
    for (const k of row.variants) {
      const v = JS_VARIANTS[k];
      const o = { port: 0, protocol: row.protocol, ackMode: v.ackMode, file: v.noFile ? { enabled: false } : { path: path.join(dir, `msgserver-${k}.log`) } };
      let dep = null;
      if (v.nats) {
        dep = await natsFor(v.nats);
        // A fresh stream (and subjects) per row and configuration, so runs never meet an old one.
        const name = `msgbench-${row.kind}-${row.payload}-${k}-${process.pid}-${Date.now().toString(36)}`;
        o.jetstream = { servers: dep.urls, stream: name, subjectPrefix: `msgbench.${name}`, replicas: v.nats === 'r3' ? 3 : 1 };
      }
      servers.push({ key: k, name: v.label, ms: true, nats: dep, proc: msgserverProc(`msgserver (${k})`, o) });
      // Other builds of the addon (--addon-before, --compare) beside the
      // configurations that have a target, each with a stream of its own.
      if (!JS_COMPARED.includes(k)) continue;
      for (const c of COMPARE) {
        const oc = withCompared(o, c, path.join(dir, `msgserver-${k}-${c.key}.log`));
        if (dep) oc.jetstream = { ...o.jetstream, stream: `${o.jetstream.stream}-${c.key}`, subjectPrefix: `${o.jetstream.subjectPrefix}-${c.key}` };
        const key = `${k}@${c.key}`;
        servers.push({ key, name: `${v.label} [${c.label}]`, ms: true, nats: dep, proc: msgserverProc(`ms (${k}) ${c.label}`.slice(0, 14), oc, comparedEnv(c)) });
      }
    }
    if (!publisherSkip) {
      for (const which of row.publishers || []) {
        const dep = await natsFor(which);
        const stream = `jspub-${row.kind}-${row.payload}-${which}-${process.pid}-${Date.now().toString(36)}`;
        servers.push({ key: which === 'r3' ? 'pub3' : 'pub1', name: SERVER_NAMES[which === 'r3' ? 'pub3' : 'pub1'], pub: { dep, stream }, nats: dep });
      }
    }
  } else {
    const msOpts = { port: 0, protocol: row.protocol, ackMode: row.ackMode, file: { path: path.join(dir, 'msgserver.log') } };
    if (row.hook) msOpts.benchHook = row.hook;
    if (big.length) msOpts.limits = { maxConnections: 20000 };
    servers.push({ key: 'ms', name: MS_LABEL, ms: true, proc: msgserverProc('msgserver', msOpts) });
    for (const c of COMPARE) {
      const o = withCompared(msOpts, c, path.join(dir, `msgserver-${c.key}.log`));
      servers.push({ key: c.key, name: `msgserver (${c.label})`, ms: true, proc: msgserverProc(`ms ${c.label}`.slice(0, 14), o, comparedEnv(c)) });
    }
  }
  const baselines = row.baselines || ['wceil', 'ceil', 'node'];
  if (baselines.includes('wceil')) servers.push({ key: 'wceil', name: SERVER_NAMES.wceil, proc: ceilingProc(row, dir, true, big) });
  if (baselines.includes('ceil')) servers.push({ key: 'ceil', name: SERVER_NAMES.ceil, proc: ceilingProc(row, dir, false, big) });
  if (baselines.includes('node')) {
    const nodeArgs = ['--port', '0', '--protocol', row.protocol, '--ack-mode', row.ackMode, '--file', path.join(dir, 'node.log'), ...big];
    servers.push({ key: 'node', name: SERVER_NAMES.node, proc: new ServerProc('node baseline', [process.execPath, 'bench/node-baseline.js', ...nodeArgs], { cwd: ROOT }) });
  }
  return servers;
}

function showCmd(cmd, tmp) {
  return cmd
    .map((a) => (a === process.execPath ? 'node' : a.split(tmp).join('$TMP').split(ROOT + path.sep).join('')))
    .map((a) => (/[\s"{]/.test(a) ? `'${a}'` : a))
    .join(' ');
}

// One measured run of one server (or direct publisher): the load, with the
// server's CPU time and (msgserver) stats taken around it.
async function measure(row, s, threads, tmp) {
  if (s.pub) {
    const args = publisherArgs(row, s.pub.dep, s.pub.stream, DURATION);
    s.cmd = `js-publisher ${args.join(' ').replace(/--client-id \d+/, '--client-id <n>').split(tmp).join('$TMP')}`;
    const natsBefore = s.nats.cpuSeconds();
    const entry = { result: null, error: null };
    try {
      entry.result = await runPublisher(args);
    } catch (e) {
      entry.error = e.message;
    }
    entry.server = { natsCpuSec: s.nats.cpuSeconds() - natsBefore };
    return entry;
  }
  if (s.proc.died) return { result: null, error: s.proc.died };
  const args = benchArgs(row, s.proc.port, threads, DURATION);
  s.cmd = `msgbench ${args.join(' ').replace(String(s.proc.port), '<port>').replace(/--client-id \d+/, '--client-id <n>')}`;
  const before = s.ms ? await s.proc.stats() : null;
  const cpuBefore = s.proc.cpuSeconds();
  const natsBefore = s.nats ? s.nats.cpuSeconds() : 0;
  const entry = { result: null, error: null };
  try {
    entry.result = await runBench(args);
  } catch (e) {
    entry.error = e.message;
  }
  const cpuSec = s.proc.cpuSeconds() - cpuBefore;
  if (s.proc.died) entry.error = s.proc.died;
  entry.server = { cpuSec };
  const after = before ? await s.proc.stats() : null;
  if (before && after) {
    const d = (k) => after.stats[k] - before.stats[k];
    Object.assign(entry.server, {
      recordsWritten: d('recordsWritten'),
      writes: d('writes'),
      fsyncs: d('fsyncs'),
      syncedRecords: d('syncedRecords'),
      ackFrames: d('ackFrames'),
      rssBytes: after.rssBytes,
    });
    if (after.stats.jetstream && before.stats.jetstream) {
      const j = {};
      for (const f of ['published', 'acked', 'duplicates', 'failed', 'timeouts', 'unavailable']) j[f] = after.stats.jetstream[f] - before.stats.jetstream[f];
      entry.server.js = j;
    }
  }
  if (s.nats) entry.server.natsCpuSec = s.nats.cpuSeconds() - natsBefore;
  return entry;
}

function figures(rec) {
  for (const { key, ms } of rec.servers) {
    const runs = rec.runs[key];
    if (!runs || runs.length === 0) continue;
    const sv = runs.map((r) => r.server).filter(Boolean);
    const sum = (f) => sv.reduce((s, x) => s + (f(x) || 0), 0);
    const acked = runs.reduce((s, r) => s + (r.result ? r.result.messagesAcked : 0), 0);
    const secs = runs.reduce((s, r) => s + (r.result ? r.result.elapsedMs / 1000 : 0), 0);
    const extra = { expected: acked };
    if (sv.some((x) => Number.isFinite(x.cpuSec))) {
      extra.cpuSecPerM = (sum((x) => x.cpuSec) / Math.max(1, acked)) * 1e6;
      extra.cpuPerMsgUs = extra.cpuSecPerM; // CPU us per message = CPU s per million messages
      extra.cpuCores = sum((x) => x.cpuSec) / secs;
    }
    if (sv.some((x) => x.natsCpuSec !== undefined)) {
      extra.natsCpuPerMsgUs = (sum((x) => x.natsCpuSec) / Math.max(1, acked)) * 1e6;
      extra.natsCpuCores = sum((x) => x.natsCpuSec) / secs;
    }
    if (ms) {
      const fsyncs = sum((x) => x.fsyncs);
      extra.written = sum((x) => x.recordsWritten);
      extra.msgsPerFsync = fsyncs ? sum((x) => x.syncedRecords) / fsyncs : NaN;
      extra.msgsPerWrite = extra.written / Math.max(1, sum((x) => x.writes));
      if (sv.some((x) => x.js)) {
        extra.js = {};
        for (const f of ['published', 'acked', 'duplicates', 'failed', 'timeouts', 'unavailable']) extra.js[f] = sum((x) => x.js && x.js[f]);
      }
    }
    rec.fig[key] = summarize(runs, extra);
  }
}

async function runRow(row, tmp) {
  const dir = fs.mkdtempSync(path.join(tmp, `${row.id}-`));
  const rec = { row, cmds: {}, threads: {}, fig: {}, runs: {}, servers: [] };
  let servers = [];
  try {
    servers = await rowServers(row, dir);
    rec.servers = servers.map((s) => ({ key: s.key, name: s.name, ms: !!s.ms, pub: !!s.pub }));
    await Promise.all(servers.filter((s) => s.proc).map((s) => s.proc.start()));
    for (const s of servers) {
      rec.cmds[s.key] = s.proc ? showCmd(s.proc.cmd, tmp) : `(nats-server ${s.pub.dep.urls.join(', ')}; stream ${s.pub.stream.replace(/-\d+-[a-z0-9]+$/, '-...')})`;
      rec.runs[s.key] = [];
    }
    // JetStream: a few messages through each sink first (the stream is
    // created on the first publish), and they must all be ACKed OK. In
    // this process (the addon's load generator): a warm-up is not measured.
    const { runLoad } = require(path.join(ROOT, 'dist', 'bench', 'bench.js'));
    await Promise.all(
      servers
        .filter((s) => s.nats && s.proc)
        .map(async (s) => {
          const r = await runLoad({ port: s.proc.port, protocol: row.protocol, connections: 1, window: 1, payload: row.payload, messages: 20, clientIdBase: nextClientId++ });
          if (r.errors || r.messagesAcked !== r.messagesSent) {
            throw new Error(`${s.proc.name}: warm-up not ACKed OK: ${r.errorSamples[0] ?? `${r.messagesAcked} of ${r.messagesSent} ACKed`}; ${s.proc.stderr.trim()}`);
          }
        }),
    );
    for (const s of servers.filter((x) => x.pub)) {
      const w = await runPublisher(publisherArgs(row, s.pub.dep, s.pub.stream, 0, 20));
      if (w.errors) throw new Error(`${s.name}: warm-up failed: ${w.errorSamples[0]}`);
    }
    // Load threads: fixed, or each server's better of 1 and 2 (throughput rows).
    for (const s of servers) {
      let th = LOAD_THREADS === 'auto' ? 1 : Number(LOAD_THREADS);
      if (s.proc && LOAD_THREADS === 'auto' && (row.kind === 'pipelined' || row.kind === 'sync' || isScale(row))) {
        const one = await runBench(benchArgs(row, s.proc.port, 1, 1000));
        const two = await runBench(benchArgs(row, s.proc.port, 2, 1000));
        th = two.msgsPerSec > one.msgsPerSec * 1.03 ? 2 : 1;
      }
      if (row.kind === 'burst' || (isScale(row) && KIND[row.kind].conns >= 2048)) th = 2;
      rec.threads[s.key] = s.pub ? '-' : th;
    }
    for (let run = 0; run < RUNS; run++) {
      // Each run starts with the next server in turn: whoever runs first pays
      // for the writeback of the previous run's dirty pages.
      for (const s of servers.map((_, i) => servers[(i + run) % servers.length])) {
        const entry = await measure(row, s, rec.threads[s.key], tmp);
        rec.cmds[`bench-${s.key}`] = s.cmd;
        rec.runs[s.key].push(entry);
        const r = entry.result;
        const sv = entry.server || {};
        const label = s.proc ? s.proc.name : s.key;
        process.stdout.write(
          `  run ${run + 1}/${RUNS} ${label.padEnd(14)} ` +
            (r
              ? `${fmtInt(r.msgsPerSec).padStart(11)} msgs/s ${r.wireMBPerSec.toFixed(0).padStart(6)} MB/s  ` +
                `p50 ${fmtUs(r.latency.p50Us)} p99 ${fmtUs(r.latency.p99Us)}  ${fmtInt(r.elapsedMs)} ms` +
                (Number.isFinite(sv.cpuSec) ? `  CPU ${sv.cpuSec.toFixed(2)} s` : '') +
                (sv.natsCpuSec !== undefined ? ` nats ${sv.natsCpuSec.toFixed(2)} s` : '') +
                (r.errors || r.messagesUnacked ? `  ERRORS ${r.errors} unacked ${r.messagesUnacked} ${r.errorSamples[0] ?? ''}` : '')
              : `FAILED: ${entry.error}`) +
            (sv.fsyncs !== undefined && row.ackMode === 'durable' ? `  ${(sv.syncedRecords / Math.max(1, sv.fsyncs)).toFixed(0)} msgs/fsync` : '') +
            (sv.js && (sv.js.duplicates || sv.js.failed || sv.js.timeouts || sv.js.unavailable)
              ? `  JetStream: ${sv.js.duplicates} dup, ${sv.js.failed} failed, ${sv.js.timeouts} timed out, ${sv.js.unavailable} unavailable`
              : '') +
            '\n',
        );
      }
    }
  } catch (e) {
    process.stdout.write(`  row failed: ${e.message}\n`);
    rec.error = e.message;
  } finally {
    await Promise.all(servers.filter((s) => s.proc).map((s) => s.proc.stop()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
  figures(rec);
  return rec;
}

// The idle server: CPU seconds over IDLE_MS with nothing to do, after one
// connection has come and gone (every thread has run). The written ceiling beside it.
async function measureIdle(tmp) {
  const dir = fs.mkdtempSync(path.join(tmp, 'idle-'));
  const row = { protocol: 'v1', kind: 'latency', payload: 100 };
  const procs = [
    { key: 'ms', name: MS_LABEL, proc: msgserverProc('msgserver', { port: 0, file: { path: path.join(dir, 'msgserver.log') } }) },
    { key: 'wceil', name: SERVER_NAMES.wceil, proc: ceilingProc(row, dir, true, []) },
  ];
  for (const c of COMPARE) {
    const o = withCompared({ port: 0, file: {} }, c, path.join(dir, `msgserver-${c.key}.log`));
    procs.push({ key: c.key, name: `msgserver (${c.label})`, proc: msgserverProc(`ms ${c.label}`.slice(0, 14), o, comparedEnv(c)) });
  }
  try {
    await Promise.all(procs.map((p) => p.proc.start()));
    const { runLoad } = require(path.join(ROOT, 'dist', 'bench', 'bench.js'));
    for (const p of procs) await runLoad({ port: p.proc.port, connections: 4, window: 4, payload: 100, messages: 100 });
    await new Promise((r) => setTimeout(r, 500)); // let the connections' close settle
    const before = procs.map((p) => [p.proc.cpuSeconds(), p.proc.threadCpuSeconds('msgs-')]);
    await new Promise((r) => setTimeout(r, IDLE_MS));
    return procs.map((p, i) => ({
      key: p.key,
      name: p.name,
      cpuSec: p.proc.cpuSeconds() - before[i][0],
      engineCpuSec: p.key === 'wceil' ? undefined : p.proc.threadCpuSeconds('msgs-') - before[i][1],
      died: p.proc.died,
    }));
  } finally {
    await Promise.all(procs.map((p) => p.proc.stop()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

let publisherSkip = null;

async function main() {
  const t0 = Date.now();
  prerequisites();
  const m = machine();
  const loadBefore = os.loadavg();
  const only = opt.only ? new RegExp(opt.only) : null;
  const rows = buildRows().filter((r) => !only || only.test(r.id) || only.test(r.title));
  const jsSkip = rows.some((r) => r.group === 'jetstream') ? jetstreamUnavailable() : null;
  if (jsSkip) {
    if (process.env.MSGS_REQUIRE_NATS === '1') throw new Error(`JetStream rows cannot run (MSGS_REQUIRE_NATS=1): ${jsSkip}`);
    console.log(`bench: skipping the JetStream rows: ${jsSkip}`);
  } else if (rows.some((r) => r.group === 'jetstream')) {
    publisherSkip = publisherUnavailable();
    if (publisherSkip) console.log(`bench: no direct JetStream publisher: ${publisherSkip}`);
  }
  if (process.env.MSGSERVER_ADDON) console.log(`bench: msgserver runs with MSGSERVER_ADDON=${process.env.MSGSERVER_ADDON}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'msgbench-'));
  console.log(`bench: ${rows.length} rows x ${RUNS} run(s), ${DURATION} ms each, load threads ${LOAD_THREADS}; files in ${tmp}`);
  const byId = new Map();
  let failed = false;
  let jsSecs = 0;
  let idle = null;
  const wantIdle = !only || only.test('idle');
  for (const [i, row] of rows.entries()) {
    const rowT0 = Date.now();
    process.stdout.write(`[${i + 1}/${rows.length}] ${row.title}\n`);
    if (row.group && jsSkip) {
      process.stdout.write(`  skipped: ${jsSkip}\n`);
      byId.set(row.id, { row, skipped: jsSkip, cmds: {}, threads: {}, fig: {}, runs: {}, servers: [] });
      continue;
    }
    const rec = await runRow(row, tmp);
    if (rec.error) failed = true;
    for (const { key, ms } of rec.servers) if (ms && rec.fig[key] && !rec.fig[key].clean) failed = true;
    rec.targets = targetsFor(row, rec.fig, byId);
    rec.bound = boundFor(row, rec.fig);
    byId.set(row.id, rec);
    if (row.group) {
      const a = rec.fig.a;
      for (const { key: k, name } of rec.servers) {
        const f = rec.fig[k];
        const base = k.split('@')[0];
        const ref = base === 'c' ? rec.fig.pub1 : base === 'd' ? rec.fig.pub3 : null;
        const compared = k.includes('@') ? rec.fig[base] : null;
        process.stdout.write(
          `  => ${name}: ${headline(row, f)}` +
            (JS_VARIANTS[base] && base !== 'a' ? ` | vs (a) ${fmtVsWritten(row, f, a)}` : '') +
            (compared ? ` | ${MS_LABEL} / this ${fmtRatio(row, ratio(row, compared, f), true)}` : '') +
            (ref ? ` | vs direct publisher ${fmtRatio(row, ratio(row, f, ref), false)}` : '') +
            (JS_VARIANTS[base] && rec.fig.wceil ? ` | vs written ceiling ${fmtRatio(row, ratio(row, f, rec.fig.wceil), false)}` : '') +
            '\n',
        );
      }
      jsSecs += (Date.now() - rowT0) / 1000;
    } else {
      const f = rec.fig;
      process.stdout.write(
        `  => ${MS_LABEL} ${rec.fig.ms ? headline(row, f.ms) : 'n/a'} | written ceiling ${headline(row, f.wceil)} | no-file ceiling ${headline(row, f.ceil)} | node ${headline(row, f.node)} | ` +
          `vs written ceiling ${fmtRatio(row, ratio(row, f.ms, f.wceil), false)}${row.kind === 'latency' && f.ms && f.wceil ? ` (p99 ${(f.ms.p99 / f.wceil.p99).toFixed(2)}x)` : ''}, ` +
          `vs no-file ceiling ${fmtRatio(row, ratio(row, f.ms, f.ceil), false)}, vs node ${fmtRatio(row, ratio(row, f.ms, f.node), true)} | ` +
          `CPU s/M msgs ${['ms', 'wceil', 'ceil', 'node'].map((k) => (f[k] && Number.isFinite(f[k].cpuSecPerM) ? f[k].cpuSecPerM.toFixed(2) : 'n/a')).join(' / ')}\n` +
          COMPARE.filter((c) => f[c.key] && f.ms)
            .map(
              (c) =>
                `  => msgserver (${c.label}) ${headline(row, f[c.key])}, vs written ceiling ${fmtRatio(row, ratio(row, f[c.key], f.wceil), false)}` +
                `${row.kind === 'latency' && f.wceil ? ` (p99 ${(f[c.key].p99 / f.wceil.p99).toFixed(2)}x)` : ''}; ${MS_LABEL} / this ${fmtRatio(row, ratio(row, f.ms, f[c.key]), true)}` +
                `${row.kind === 'latency' ? ` (p99 ${(f.ms.p99 / f[c.key].p99).toFixed(2)}x)` : ''}; CPU s/M msgs ${cpuCell(f[c.key])}\n`,
            )
            .join(''),
      );
    }
    process.stdout.write(`  (row took ${((Date.now() - rowT0) / 1000).toFixed(1)} s)\n`);
  }
  if (natsDeployments.size) {
    const t = Date.now();
    await stopNats();
    jsSecs += (Date.now() - t) / 1000;
  }
  if (wantIdle) {
    process.stdout.write(`[idle] CPU over ${IDLE_MS / 1000} s with no load\n`);
    try {
      idle = await measureIdle(tmp);
      for (const x of idle) {
        process.stdout.write(`  ${x.name}: ${x.cpuSec.toFixed(2)} CPU s${x.engineCpuSec !== undefined ? ` (engine threads ${x.engineCpuSec.toFixed(2)} s)` : ''}${x.died ? ` (${x.died})` : ''}\n`);
      }
    } catch (e) {
      idle = { error: e.message };
      process.stdout.write(`  failed: ${e.message}\n`);
      failed = true;
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  const recs = [...byId.values()];
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  const plots = writePlots(recs, path.dirname(OUT));
  const report = render({ rows: recs, m, loadBefore, loadAfter: os.loadavg(), secs: (Date.now() - t0) / 1000, idle, plots });
  fs.writeFileSync(OUT, report);
  // The TLS rows (bench/tls.js): their own servers, appended as a section.
  if (!only || only.test('tls')) {
    process.stdout.write('[tls] TLS against plaintext, handshakes, memory per idle connection\n');
    const r = spawnSync(process.execPath, [path.join(__dirname, 'tls.js'), ...(QUICK ? ['--quick'] : []), '--out', OUT], { stdio: 'inherit' });
    if (r.status !== 0) failed = true;
  }
  const plain = recs.filter((r) => !r.row.group);
  const grouped = recs.filter((r) => r.row.group);
  if (plain.length) console.log('\n' + summaryTable(plain).join('\n'));
  if (grouped.length) console.log('\n' + jetstreamTable(grouped).join('\n'));
  if (grouped.length && !jsSkip) console.log(`\nbench: the JetStream rows took ${jsSecs.toFixed(1)} s (nats-server start and stop included)`);
  console.log(`\nbench: wrote ${path.relative(process.cwd(), OUT) || OUT}${plots.length ? ` and ${plots.map((p) => p.file).join(', ')}` : ''} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (failed) {
    console.error('bench: some msgserver runs had errors or failed (see above)');
    process.exitCode = 1;
  }
}

// The plots, written beside the report: [{file, title}].
function writePlots(recs, dir) {
  const out = [];
  const base = path.basename(OUT, '.md').toLowerCase();
  const scale = recs.filter((r) => isScale(r.row) && !r.error).sort((a, b) => KIND[a.row.kind].conns - KIND[b.row.kind].conns);
  if (scale.length) {
    const series = ['ms', 'wceil', 'ceil', 'node'].map((k) => ({
      name: k === 'ms' ? MS_LABEL : SERVER_NAMES[k],
      points: scale.map((r) => [KIND[r.row.kind].conns, r.fig[k] ? r.fig[k].msgsPerSec : NaN]),
    }));
    const file = `${base}-scaling.svg`;
    fs.writeFileSync(
      path.join(dir, file),
      lineChart({ title: 'v1 1 KiB, ack written: throughput vs pipelining connections', xLabel: 'connections (log scale)', yLabel: 'msgs/s (log scale)', xLog: true, yLog: true, series }),
    );
    out.push({ file, title: 'Throughput against connection count' });
  }
  const lat = recs.find((r) => r.row.id === 'v1-latency-1024-written' && !r.error) || recs.find((r) => r.row.kind === 'latency' && !r.row.group && !r.error);
  if (lat) {
    // Percentiles on a "nines" axis: x = -log10(1 - p).
    const P = [
      [0.5, 'p50', 'p50'],
      [0.9, 'p90', 'p90'],
      [0.99, 'p99', 'p99'],
      [0.999, 'p99.9', 'p999'],
    ];
    const nines = (p) => -Math.log10(1 - p);
    const series = ['ms', 'wceil', 'ceil', 'node'].map((k) => {
      const f = lat.fig[k];
      const runs = f ? f.runs.filter((r) => r.result) : [];
      return {
        name: k === 'ms' ? MS_LABEL : SERVER_NAMES[k],
        points: P.map(([p, , key]) => [nines(p), median(runs.map((r) => r.result.latency[`${key}Us`]))]).concat([[4, f ? f.max : NaN]]),
      };
    });
    const file = `${base}-latency.svg`;
    fs.writeFileSync(
      path.join(dir, file),
      lineChart({
        title: `${lat.row.title}: latency by percentile`,
        xLabel: 'percentile',
        yLabel: 'microseconds (log scale)',
        yLog: true,
        xTicks: P.map(([p, label]) => [nines(p), label]).concat([[4, 'max']]),
        series,
      }),
    );
    out.push({ file, title: 'Latency distribution at one connection' });
  }
  return out;
}

// A JetStream configuration against (a) written, measured in the same row:
// throughput as a fraction; latency rows as p50 and p99 multiples.
function fmtVsWritten(row, f, a) {
  if (!f || !a) return 'n/a';
  if (row.kind === 'latency') return `p50 ${(f.p50 / a.p50).toFixed(2)}x, p99 ${(f.p99 / a.p99).toFixed(2)}x`;
  const r = f.msgsPerSec / a.msgsPerSec;
  return `${pct(r)} (${r.toFixed(2)}x)`;
}

function jetstreamTable(recs) {
  const L = [
    '| row | configuration | msgs/s | MB/s | p50 | p99 | vs (a) written | vs direct publisher | vs written ceiling | CPU s per million msgs: msgserver + nats-server (cores busy) | JetStream acks (duplicates / failed / timed out) |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const rec of recs) {
    const { row, fig } = rec;
    const shape = `v1 ${KIND[row.kind].label}, ${fmtBytes(row.payload)}`;
    if (rec.skipped) {
      L.push(`| ${shape} | skipped: ${rec.skipped} | | | | | | | | | |`);
      continue;
    }
    if (rec.error) L.push(`| ${shape} | failed: ${rec.error.split('\n')[0]} | | | | | | | | | |`);
    for (const { key, name, ms } of rec.servers) {
      const f = fig[key];
      if (!f) continue;
      const thr = `${fmtInt(f.msgsPerSec)}${f.clean ? '' : ` (${fmtInt(f.errors)} errors, ${fmtInt(f.unacked)} unACKed)`}`;
      const own = Number.isFinite(f.cpuSecPerM) ? f.cpuSecPerM.toFixed(2) : '-';
      const cpu =
        `${own}${f.natsCpuPerMsgUs !== undefined ? ` + ${f.natsCpuPerMsgUs.toFixed(2)}` : ''}` +
        (Number.isFinite(f.cpuCores) || f.natsCpuCores !== undefined
          ? ` (${Number.isFinite(f.cpuCores) ? f.cpuCores.toFixed(2) : '-'}${f.natsCpuCores !== undefined ? ` + ${f.natsCpuCores.toFixed(2)}` : ''})`
          : '');
      const js = f.js ? `${fmtInt(f.js.acked)} (${fmtInt(f.js.duplicates)} / ${fmtInt(f.js.failed)} / ${fmtInt(f.js.timeouts)})` : '-';
      const base = key.split('@')[0];
      const pub = base === 'c' || base === 'e' ? fig.pub1 : base === 'd' ? fig.pub3 : null;
      L.push(
        `| ${shape} | ${name} | ${thr} | ${f.wireMBPerSec.toFixed(1)} | ${fmtUs(f.p50)} | ${fmtUs(f.p99)} | ` +
          `${ms && base !== 'a' ? fmtVsWritten(row, f, fig.a) : '-'} | ${ms && pub ? fmtVsWritten(row, f, pub) : '-'} | ` +
          `${ms && fig.wceil ? fmtVsWritten(row, f, fig.wceil) : '-'} | ${cpu} | ${js} |`,
      );
    }
  }
  return L;
}

const cpuCell = (f) => (f && Number.isFinite(f.cpuSecPerM) ? f.cpuSecPerM.toFixed(2) : 'n/a');

function summaryTable(recs) {
  const lines = [
    `| row | ${MS_LABEL} | written ceiling | no-file ceiling | Node baseline | vs written ceiling | vs no-file ceiling | vs Node | CPU s per million msgs (msgserver / written ceiling / no-file ceiling / Node) | bounded by | targets |`,
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const rec of recs) {
    const { row, fig } = rec;
    const ms = fig.ms ? headline(row, fig.ms) : rec.error ? `failed: ${rec.error.split('\n')[0]}` : 'n/a';
    const tg = (rec.targets || []).map(([t, ok]) => `${ok ? 'met' : '**not met**'}: ${t}`).join('; ') || '-';
    let vsW = fmtRatio(row, ratio(row, fig.ms, fig.wceil), false);
    if (row.kind === 'latency' && fig.ms && fig.wceil) vsW += `, ${(fig.ms.p99 / fig.wceil.p99).toFixed(2)}x p99`;
    lines.push(
      `| ${row.title} | ${ms} | ${headline(row, fig.wceil)} | ${headline(row, fig.ceil)} | ${headline(row, fig.node)} | ` +
        `${vsW} | ${fmtRatio(row, ratio(row, fig.ms, fig.ceil), false)} | ${fmtRatio(row, ratio(row, fig.ms, fig.node), true)} | ` +
        `${['ms', 'wceil', 'ceil', 'node'].map((k) => cpuCell(fig[k])).join(' / ')} | ${rec.bound || '-'} | ${tg} |`,
    );
  }
  return lines;
}

// What a compared build or option set is, for the method.
function comparedWhat(c) {
  return c.path ? `the addon ${path.relative(ROOT, c.path) || c.path}` : `this build with the options ${JSON.stringify(c.opts)}`;
}

// The before/after pairs: msgserver against each compared build or option
// set, measured in the same row (the per-row tables have the runs).
function pairsTable(recs) {
  const head = `| row | ${MS_LABEL} | ${COMPARE.map((c) => `msgserver (${c.label})`).join(' | ')} | ${COMPARE.map((c) => `${MS_LABEL} / (${c.label})`).join(' | ')} | CPU s per million msgs (${[MS_LABEL, ...COMPARE.map((c) => c.label)].join(' / ')}) |`;
  const L = [head, `|${'---|'.repeat(2 + 2 * COMPARE.length + 1)}`];
  for (const rec of recs) {
    const { row, fig } = rec;
    if (!fig.ms) continue;
    const vs = COMPARE.map((c) => {
      const f = fig[c.key];
      if (!f) return 'n/a';
      const r = fmtRatio(row, ratio(row, fig.ms, f), true);
      return row.kind === 'latency' ? `${r}, ${(fig.ms.p99 / f.p99).toFixed(2)}x p99` : r;
    });
    L.push(
      `| ${row.title} | ${headline(row, fig.ms)} | ${COMPARE.map((c) => headline(row, fig[c.key])).join(' | ')} | ${vs.join(' | ')} | ` +
        `${['ms', ...COMPARE.map((c) => c.key)].map((k) => cpuCell(fig[k])).join(' / ')} |`,
    );
  }
  return L;
}

function render({ rows, m, loadBefore, loadAfter, secs, idle, plots }) {
  const L = [];
  const la = (l) => l.map((x) => x.toFixed(2)).join(' ');
  L.push('# Benchmarks', '');
  L.push(
    `Generated by \`npm run bench${QUICK ? ' -- --quick' : ''}\` (bench/run.js) on ${new Date().toISOString()} in ${secs.toFixed(0)} s. ` +
      (QUICK ? '**Quick mode: 1 short run per row; the figures only show that the bench runs, do not quote them.** ' : '') +
      'Do not edit by hand: re-run the command.',
    '',
  );
  L.push('## Machine', '');
  L.push(`- CPU: ${m.model}, ${m.nproc} cores (nproc), SSE4.2 ${m.sse42 ? 'yes' : 'no'}; ${m.memGiB} GiB RAM`);
  L.push(`- Kernel: ${m.kernel}; Node ${m.node}; net.core.somaxconn ${m.somaxconn}`);
  L.push(`- Load average (1/5/15 min) before the run: ${la(loadBefore)}; after: ${la(loadAfter)}. The machine is shared: other work running at the same time shows up as noise, which is why every claim below is a ratio between servers measured in the same command, runs interleaved.`);
  L.push('- Loopback TCP; server files in a temp directory ($TMP below, under the OS temp dir) on the root file system (ext4, virtio disk), deleted after each row.', '');
  L.push('## What limits a file-writing server here', '');
  L.push(
    '- The least work any server whose ACK means "written" can do is one copy in from the socket and one copy into the page cache. ' +
      'The **written ceiling** does exactly that and nothing more, so it, not the no-file ceiling, is the reference for `written` rows.',
    '- **Page-cache first touch.** On a virtual machine, writing into page-cache pages the guest has not touched recently is slow: the hypervisor has to hand the guest fresh memory for every page. ' +
      '`dd` of 2 GB into a new file runs at about 0.5 GB/s this way, against 5.3-5.8 GB/s into pages just freed; freed memory goes back to the host after some 20 s idle. ' +
      'A pipelined 1 KiB row moves several hundred MB/s, so the written ceiling\'s file is bounded by this (as msgserver\'s is with `file.dropCache: false`), while the no-file ceiling never pays it. ' +
      'Comparing a `written` row with the no-file ceiling therefore mostly measures the VM\'s memory, not the server.',
    '- **The interval fsync.** msgserver runs with its defaults, so `file.fsync` is `\'interval\'`: once a second an `fdatasync` of what was written, on a thread of its own beside the writer (no ACK waits for it). ' +
      'The written ceiling never syncs. At a few hundred MB/s each sync is the disk writing back a second\'s worth of pages, work (and CPU on the same 2 cores) that the ceiling leaves to the kernel after its run.',
    '- **The page cache.** msgserver also runs with `file.dropCache` (its default): every 4 MiB written, its `msgs-fsync` thread starts their writeback and drops the 4 MiB before from the page cache, and after each interval fsync it drops every page that fsync made clean. ' +
      'Its log then holds only a few MiB of cache, its writes reuse the pages just freed instead of new ones (so first touch costs it less), and the disk writes the log back during the run. ' +
      'The written ceiling keeps every page cached and dirty and leaves the writeback to the kernel after its run.',
    '- Each row says in its **bounded by** column which of these limits it: the network copy (loopback copies and wake-ups), page-cache first touch, fsync, connection setup or NATS.',
    '',
  );
  L.push('## Method', '');
  L.push(
    `- Each row starts its servers side by side: **msgserver** (\`bench/msgserver-host.js\`: \`new MessageServer(opts)\` from dist/, its own process, ` +
      `default service threads = ${m.nproc}), the **written ceiling** (\`bench/ceiling.c --file\`: one epoll thread that appends every chunk it reads to a file with one \`write()\` before sending that chunk's ACKs), ` +
      `the **no-file ceiling** (\`bench/ceiling.c\`: one epoll thread per core, parses and ACKs, writes nothing), ` +
      `and the **Node baseline** (\`bench/node-baseline.js\`: idiomatic \`net\` server, \`fs.WriteStream\` with a 1 MiB highWaterMark, sockets paused while it is backed up, ACKs coalesced per 'data' event; ` +
      `its ACK mode follows the row: received = on parse, written = in the write callback, durable = after a group-commit fdatasync).`,
  );
  L.push(
    `- The load is \`msgbench\` (the native load generator, its own process, epoll, one writev per connection per round, per-message latency from send to ACK). ` +
      `It checks every ACK (count and last id; legacy: the bytes "ack"); a run with errors is marked. ` +
      `${RUNS} run(s) of ${DURATION} ms per server per row (the burst: ${BURST_CONNS.toLocaleString('en-US')} connections x 6 messages, until done), runs interleaved across the servers, each run starting with the next server in turn (the first to run after a file-writing run also pays for the kernel's writeback of its dirty pages); figures are medians.`,
  );
  L.push(
    `- Load-generator threads: ${LOAD_THREADS === 'auto' ? 'for the pipelined, synchronous and scaling rows each server gets the better of 1 and 2 load threads (a 1 s trial of each, kept only if 2 is at least 3% better); latency rows use 1, the burst and the scaling rows from 2,048 connections 2' : `${LOAD_THREADS} for every row except the burst and the scaling rows from 2,048 connections (2)`}. ` +
      `The machine has ${m.nproc} cores, so the load generator competes with the server for CPU; the thread count used is listed per row.`,
  );
  L.push(
    '- **CPU s per million msgs**: the server process\'s user + system CPU time (every thread; `/proc/<pid>/stat` read before and after each run) divided by the messages ACKed OK, in seconds per million messages (= microseconds per message). ' +
      'On 2 shared cores this is what says how much room the load generator and the rest of the machine have left. The load generator is not counted.',
  );
  L.push(
    '- Ratios: throughput rows give msgserver / other (higher is better for msgserver); latency and burst rows give msgserver\'s p50 (and p99) or time / the other\'s (lower is better). ' +
      'MB/s counts wire bytes sent by the clients (MB = 10^6 bytes). Servers and msgbench run with `ulimit -n 65536`; the burst and scaling rows pass `--max-connections 20000`.',
  );
  L.push(
    `- Scaling rows: v1, 1 KiB, ack written, at ${SCALE_CONNS.map((c) => c.toLocaleString('en-US')).join(', ')} pipelining connections; the window per connection is 8,192 / connections (between 2 and 64), so every row keeps a similar number of messages in flight and the rows show the cost of connections.`,
  );
  if (rows.some((r) => r.row.group)) {
    L.push(
      '- The JetStream rows run several msgserver configurations side by side in the same row, runs interleaved with each other, with the references listed in the row: ' +
        Object.values(JS_VARIANTS)
          .map((v) => `**${v.label}**`)
          .join(', ') +
        '. The **direct publisher** (`bench/js-publisher.c`, built with `cc ... -lnats`) is the official NATS C client publishing straight into a stream of its own on the same nats-server(s) with `js_PublishAsync` ' +
        '(`js_Publish` for the latency row), a `Nats-Msg-Id` header on every message, messages the size of msgserver\'s records, and as many publishes in flight as msgbench keeps messages in flight (connections x window): ' +
        'it is what NATS itself takes from one client, and the reference for the replicated configurations (R1 against the R1 publisher, R3 against the R3 one). ' +
        'The bench starts its own nats-server processes (bench/nats.js; JetStream file store in a temp dir; ready when every node\'s /healthz is 200 and, for the cluster, all nodes name one meta leader): one node for R1, a 3-node cluster on loopback for R3, both on this machine. ' +
        'Every configuration gets a fresh stream, and every msgbench and publisher run client ids no earlier run used (so no Nats-Msg-Id repeats within the duplicate window and makes a later run look faster; a duplicate acknowledgement counts as an error). ' +
        '20 messages go through each sink and publisher before the runs. --quick runs no references beside them, nor the 100 B row.',
    );
  }
  L.push('');
  const plain = rows.filter((r) => !r.row.group);
  const grouped = rows.filter((r) => r.row.group);
  if (plain.length) L.push('## Summary', '', ...summaryTable(plain), '');
  if (plain.length && COMPARE.length) {
    L.push(
      '## Before/after pairs',
      '',
      'Beside msgserver, in the same runs, interleaved: ' + COMPARE.map((c) => `**msgserver (${c.label})**, ${comparedWhat(c)}`).join('; ') + '. ' +
        'Throughput rows give msgserver / the other (above 1x: msgserver is faster); latency and burst rows msgserver\'s p50 (p99) or time / the other\'s (below 1x: msgserver is faster).',
      '',
      ...pairsTable(plain),
      '',
    );
  }
  if (idle) {
    L.push('## Idle', '');
    if (idle.error) L.push(`Failed: ${idle.error}`, '');
    else {
      L.push(
        `CPU seconds used over ${IDLE_MS / 1000} s with no connections (after one short load, so every thread has run), from \`/proc/<pid>/stat\`. ` +
          'For msgserver, the whole process (a Node process: its own timers and housekeeping included) and, apart, the engine\'s threads (named msgs-*: listener, service threads, writer, the interval fsync and cache drops; `/proc/<pid>/task/*/stat`):',
        '',
      );
      for (const x of idle) {
        L.push(
          `- ${x.name}: ${x.cpuSec.toFixed(2)} s` +
            (x.engineCpuSec !== undefined
              ? `, engine threads ${x.engineCpuSec.toFixed(2)} s (target: no CPU, i.e. at most 0.01 s, one clock tick: ${x.engineCpuSec <= 0.01 ? 'met' : '**not met**'})`
              : ''),
        );
      }
      L.push('');
    }
  }
  if (plots && plots.length) {
    L.push('## Plots', '');
    for (const p of plots) L.push(`### ${p.title}`, '', `![${p.title}](${p.file})`, '');
  }
  if (grouped.length) {
    L.push('## JetStream sink', '');
    L.push(
      '- **vs (a) written**: the same shape measured in the same row with the file-only configuration; this is the cost of the JetStream sink. ' +
        '**vs direct publisher**: (c) and (e) against the R1 publisher, (d) against the R3 one: how close a replicated ACK gets to what NATS itself takes. ' +
        '**vs written ceiling**: the one-thread C server that only writes a file. ' +
        'Latency rows give p50/p99 multiples (lower is better).',
      '- **CPU s per million msgs**: user + system CPU time of the msgserver process (all threads) and of the nats-server process(es) it publishes to, per million messages ACKed OK, during the runs; in brackets the cores they kept busy. The load generator (msgbench) is not counted. ' +
        'JetStream acks are those counted by the end of each run: for (b), which does not wait for them, some land after it.',
      '- What an ACK promises: (a)/(b) written = in the file (page cache; (b) publishes after the write and does not wait); (c) replicated R1 = in the file and stored by the stream on one nats-server; ' +
        '(d) replicated R3 = in the file and stored by a majority (2 of 3) of the stream\'s replicas; (e) = stored by the stream only, no local file. nats-server acknowledges from its file store without fsync (it syncs every 2 min by default).',
      `- Bounded by: ${grouped.find((r) => r.bound) ? grouped.find((r) => r.bound).bound : 'NATS'}.`,
      '',
    );
    L.push(...jetstreamTable(grouped), '');
  }
  L.push('## Rows', '');
  for (const rec of rows) {
    const { row, fig } = rec;
    L.push(`### ${row.title}`, '');
    if (rec.skipped) {
      L.push(`Skipped: ${rec.skipped}`, '');
      continue;
    }
    if (rec.bound) L.push(`Bounded by: ${rec.bound}.`, '');
    const list = rec.servers;
    L.push('Commands (`<port>` is the server\'s):', '', '```');
    for (const { key: k, name } of list) {
      if (!rec.cmds[k]) continue;
      L.push(`# ${name} (load threads ${rec.threads[k] ?? '?'})`, rec.cmds[k], rec.cmds[`bench-${k}`] ?? '');
    }
    L.push('```', '');
    L.push('| server | msgs/s | MB/s | p50 | p99 | p99.9 | max | elapsed | CPU s per million msgs | errors | per run (msgs/s, or p50 / time) |', '|---|---|---|---|---|---|---|---|---|---|---|');
    for (const { key: k, name } of list) {
      const f = fig[k];
      if (!f) {
        L.push(`| ${name} | n/a | | | | | | | | | |`);
        continue;
      }
      const per = f.runs
        .map((r) => (r.result ? (row.kind === 'latency' ? fmtUs(r.result.latency.p50Us) : row.kind === 'burst' ? `${fmtInt(r.result.elapsedMs)} ms` : fmtInt(r.result.msgsPerSec)) : 'failed'))
        .join(', ');
      L.push(
        `| ${name} | ${fmtInt(f.msgsPerSec)} | ${f.wireMBPerSec.toFixed(1)} | ${fmtUs(f.p50)} | ${fmtUs(f.p99)} | ${fmtUs(f.p999)} | ${fmtUs(f.max)} | ` +
          `${fmtInt(f.elapsedMs)} ms | ${cpuCell(f)}${f.natsCpuPerMsgUs !== undefined ? ` (+ nats-server ${f.natsCpuPerMsgUs.toFixed(2)})` : ''} | ` +
          `${f.clean ? '0' : `${fmtInt(f.errors)} errors, ${fmtInt(f.unacked)} unACKed${f.failedRuns ? `, ${f.failedRuns} failed runs` : ''}`} | ${per} |`,
      );
    }
    L.push('');
    if (row.group) {
      for (const { key: k, name, ms: isMs } of list) {
        const f = fig[k];
        if (!isMs || !f) continue;
        const notes = [`${name}: wrote ${fmtInt(f.written)} records to its file for ${fmtInt(f.expected)} messages ACKed OK`];
        if (f.js) notes.push(`JetStream: ${fmtInt(f.js.published)} published, ${fmtInt(f.js.acked)} acknowledged (${fmtInt(f.js.duplicates)} duplicates), ${fmtInt(f.js.failed)} refused, ${fmtInt(f.js.timeouts)} timed out, ${fmtInt(f.js.unavailable)} not published`);
        const rss = f.runs.map((r) => r.server && r.server.rssBytes).filter(Boolean);
        if (rss.length) notes.push(`RSS after the runs ${(Math.max(...rss) / 1048576).toFixed(0)} MiB`);
        L.push(`- ${notes.join('; ')}.`);
      }
      L.push('');
    }
    const ms = fig.ms;
    if (ms) {
      const notes = [
        `vs written ceiling ${fmtRatio(row, ratio(row, ms, fig.wceil), false)}`,
        `vs no-file ceiling ${fmtRatio(row, ratio(row, ms, fig.ceil), false)}`,
        `vs Node ${fmtRatio(row, ratio(row, ms, fig.node), true)}`,
      ];
      notes.push(`msgserver wrote ${fmtInt(ms.written)} records for ${fmtInt(ms.expected)} messages ACKed OK, ${ms.msgsPerWrite.toFixed(1)} records per write`);
      if (row.ackMode === 'durable') notes.push(`**${Number.isFinite(ms.msgsPerFsync) ? ms.msgsPerFsync.toFixed(0) : 'n/a'} messages per fsync**`);
      const rss = ms.runs.map((r) => r.server && r.server.rssBytes).filter(Boolean);
      if (rss.length) notes.push(`msgserver RSS after the runs ${(Math.max(...rss) / 1048576).toFixed(0)} MiB`);
      L.push(notes.join('; ') + '.', '');
    }
    for (const [t, ok] of rec.targets || []) L.push(`- target ${t}: ${ok ? 'met' : '**not met**'}`);
    if ((rec.targets || []).length) L.push('');
    const samples = list.flatMap(({ key: k }) => (fig[k] ? fig[k].runs : []).flatMap((r) => (r.result ? r.result.errorSamples || [] : [r.error]))).slice(0, 5);
    if (rec.error) samples.unshift(rec.error);
    if (samples.length) L.push('Errors seen:', '', ...samples.map((s) => `- ${s}`), '');
  }
  return L.join('\n') + '\n';
}

if (require.main === module) {
  main().catch((err) => {
    console.error(`bench: ${err.stack || err.message}`);
    process.exit(1);
  });
}
