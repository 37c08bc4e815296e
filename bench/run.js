#!/usr/bin/env node
// The benchmark matrix (npm run bench): every row is measured against three
// servers side by side in the same command, and reported as ratios:
//   msgserver       bench/msgserver-host.js: a MessageServer from dist/, file in a temp dir on disk
//   C ceiling       bench/ceiling.c: parses and ACKs, writes nothing
//   Node baseline   bench/node-baseline.js: idiomatic `net` + fs.WriteStream
// The load comes from msgbench (dist/cli/msgbench.js, the native load
// generator) in its own process. Each row starts the three servers, then runs
// msgbench against them in turn, `runs` times (interleaved, so drift in the
// machine's load hits all three alike), and reports medians. Writes
// bench/BENCHMARKS.md.
//
// The JetStream rows (ids jetstream-*) run several msgserver
// configurations side by side instead of one: (a) written to the file only,
// (b) written + JetStream beside, (c) replicated R1, (d) replicated R3 on a
// 3-node cluster, (e) replicated with no file; the nats-server processes are
// started by the bench (bench/nats.js). Without nats-server or libnats those
// rows are skipped with the reason printed (MSGS_REQUIRE_NATS=1: a failure).
//
//   node bench/run.js [--quick] [--runs n] [--duration-ms ms] [--only regex] [--out file]
//
// --only matches a row's id or title (e.g. --only jetstream). --quick (CI):
// 1 run of 400 ms per row; only checks that everything runs and the ratios
// print. Prerequisites: npm run build (dist/ and the addon with the load
// generator) and a C compiler for bench/ceiling.c.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { parseArgs } = require('node:util');
const nats = require('./nats');

const ROOT = path.resolve(__dirname, '..');
const MSGBENCH = path.join(ROOT, 'dist', 'cli', 'msgbench.js');
const CEILING_SRC = path.join(__dirname, 'ceiling.c');
const CEILING_BIN = path.join(ROOT, 'build-bench', 'ceiling');
// Servers and msgbench run with a raised descriptor limit (10,000-connection burst).
const WRAP = ['sh', '-c', 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"', 'sh'];

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    'duration-ms': { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string' },
    'load-threads': { type: 'string' },
    'burst-connections': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (opt.help) {
  console.log(fs.readFileSync(__filename, 'utf8').split('\n').slice(1, 25).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}
const QUICK = opt.quick;
const RUNS = Number(opt.runs ?? (QUICK ? 1 : 3));
const DURATION = Number(opt['duration-ms'] ?? (QUICK ? 400 : 3000));
const BURST_CONNS = Number(opt['burst-connections'] ?? 10000);
// 'auto': before a throughput row's runs, try 1 and 2 load threads against each server and keep its better one.
const LOAD_THREADS = opt['load-threads'] ?? (QUICK ? '1' : 'auto');
const OUT = path.resolve(opt.out ?? path.join(__dirname, 'BENCHMARKS.md'));

// ---- the matrix ---------------------------------------------------------------

const KIND = {
  pipelined: { conns: 64, window: 64, label: 'pipelined 64 conn x window 64', metric: 'msgs/s' },
  sync: { conns: 100, window: 1, label: 'synchronous 100 conn', metric: 'msgs/s' },
  latency: { conns: 1, window: 1, label: 'latency 1 conn sync', metric: 'p50' },
  burst: { conns: BURST_CONNS, window: 1, messages: 6, label: `burst ${BURST_CONNS.toLocaleString('en-US')} conn x 6 sync`, metric: 'time' },
};
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
  for (const r of rows) {
    r.id = `${r.protocol}-${r.kind}-${r.payload}-${r.ackMode}${r.hook ? '-hook' : ''}`;
    r.title = `${r.protocol} ${KIND[r.kind].label}, payload ${fmtBytes(r.payload)}${r.protocol === 'legacy' ? ' (1160-byte frames)' : ''}, ack ${r.ackMode}${r.hook ? ', msgserver with a no-op message hook (policy drop)' : ''}`;
  }
  // JetStream: one row per shape, msgserver configurations (JS_VARIANTS) side by side.
  // --quick keeps them under ~10 s: no 100 B row, no ceiling or Node baseline beside them.
  const js = [
    { kind: 'pipelined', payload: 1024, variants: ['a', 'b', 'c', 'd', 'e'], baselines: ['ceil', 'node'] },
    { kind: 'pipelined', payload: 100, variants: ['a', 'b', 'c', 'd', 'e'], baselines: ['ceil', 'node'], full: true },
    { kind: 'latency', payload: 1024, variants: ['a', 'c', 'd'], baselines: ['ceil'] },
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
const JS_VARIANTS = {
  a: { short: 'written', label: '(a) written, file only', ackMode: 'written' },
  b: { short: 'written+JS', label: '(b) written + JetStream beside (R1; ACK after the file)', ackMode: 'written', nats: 'r1' },
  c: { short: 'replicated R1', label: '(c) replicated, R1 (1 nats-server)', ackMode: 'replicated', nats: 'r1' },
  d: { short: 'replicated R3', label: '(d) replicated, R3 (3-node cluster)', ackMode: 'replicated', nats: 'r3' },
  e: { short: 'replicated R1 no file', label: '(e) replicated, R1, file.enabled false', ackMode: 'replicated', nats: 'r1', noFile: true },
};

// Targets; each returns [text, met] or null when it does not apply.
function targetsFor(row, fig, byId) {
  const t = [];
  const { ms, ceil, node } = fig;
  if (!ms) return t;
  const thr = (f) => f && f.msgsPerSec;
  const vsCeil = (min) => [`>= ${pct(min)} of ceiling`, thr(ms) >= min * thr(ceil)];
  const vsNode = (min) => [`>= ${min}x Node`, thr(ms) >= min * thr(node)];
  if (row.hook) {
    const w = byId.get(`${row.protocol}-pipelined-${row.payload}-written`);
    if (w && w.fig.ms) t.push([`a no-op hook costs < 10% (written row: ${fmtInt(w.fig.ms.msgsPerSec)} msgs/s)`, ms.msgsPerSec >= 0.9 * w.fig.ms.msgsPerSec]);
    return t;
  }
  if (row.ackMode === 'written') {
    if (row.protocol === 'legacy' && row.kind === 'pipelined') t.push(vsCeil(0.6), vsNode(8));
    if (row.protocol === 'legacy' && row.kind === 'sync') t.push(vsCeil(0.8), vsNode(2));
    if (row.protocol === 'v1' && row.kind === 'pipelined' && row.payload === 1024) t.push(vsCeil(0.6), vsNode(8));
    if (row.protocol === 'v1' && row.kind === 'pipelined' && row.payload === 100) t.push(vsCeil(0.45));
    if (row.protocol === 'v1' && row.kind === 'sync' && row.payload === 100) t.push(vsCeil(0.8));
    if (row.kind === 'latency') t.push(['p50 <= 1.5x ceiling', ms.p50 <= 1.5 * ceil.p50]);
    if (row.kind === 'burst') {
      t.push(['time <= 1.5x ceiling', ms.elapsedMs <= 1.5 * ceil.elapsedMs]);
      t.push(['every message ACKed and written', ms.clean && ms.written === ms.expected]);
    }
  }
  if (row.ackMode === 'durable') {
    const w = byId.get(`${row.protocol}-pipelined-${row.payload}-written`);
    if (w && w.fig.ms) t.push([`>= 50% of written (${fmtInt(w.fig.ms.msgsPerSec)} msgs/s)`, ms.msgsPerSec >= 0.5 * w.fig.ms.msgsPerSec]);
  }
  return t;
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

// Servers still running, stopped if the bench itself is interrupted.
const live = new Set();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const p of live) p.kill('SIGKILL');
    process.exit(130);
  });
}

class ServerProc {
  constructor(name, cmd) {
    this.name = name;
    this.cmd = cmd;
    this.port = 0;
    this.stderr = '';
    this.waiters = [];
  }
  start() {
    return new Promise((resolve, reject) => {
      this.child = spawn(WRAP[0], [...WRAP.slice(1), ...this.cmd], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
      const child = this.child;
      live.add(child);
      child.on('exit', () => live.delete(child));
      const timer = setTimeout(() => reject(new Error(`${this.name} did not start in 20 s: ${this.stderr}`)), 20000);
      this.child.stderr.on('data', (d) => {
        this.stderr = (this.stderr + d).slice(-4000);
      });
      this.exited = new Promise((res) => this.child.on('exit', (code, sig) => res({ code, sig })));
      this.exited.then(({ code, sig }) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${code ?? sig}) before listening: ${this.stderr.trim()}`));
      });
      readline.createInterface({ input: this.child.stdout }).on('line', (line) => {
        const m = /listening on (\S+):(\d+)/.exec(line);
        if (m && !this.port) {
          this.port = Number(m[2]);
          clearTimeout(timer);
          resolve(this.port);
        } else if (line.startsWith('{')) {
          const w = this.waiters.shift();
          if (w) w(JSON.parse(line));
        }
      });
    });
  }
  /** msgserver only: its stats() and RSS. */
  stats() {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.child.stdin.write('stats\n');
    });
  }
  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGINT');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 15000);
    await this.exited;
    clearTimeout(t);
  }
}

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
let nextClientId = 1;

function runBench(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(WRAP[0], [...WRAP.slice(1), process.execPath, MSGBENCH, ...args, '--json', '-q'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), DURATION + 120000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out).result);
      } catch {
        reject(new Error(`msgbench ${args.join(' ')} failed (exit ${code}): ${err.trim() || out.trim()}`));
      }
    });
  });
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
  const fresh = fs.existsSync(CEILING_BIN) && fs.statSync(CEILING_BIN).mtimeMs >= fs.statSync(CEILING_SRC).mtimeMs;
  if (!fresh) {
    fs.mkdirSync(path.dirname(CEILING_BIN), { recursive: true });
    execFileSync(process.env.CC || 'cc', ['-O2', '-o', CEILING_BIN, CEILING_SRC, '-lpthread'], { stdio: 'inherit' });
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

const SERVER_NAMES = { ms: 'msgserver', ceil: 'C ceiling', node: 'Node baseline' };

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
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'msgbench-'));
  console.log(
    `bench: ${rows.length} rows x ${RUNS} run(s), ${DURATION} ms each, load threads ${LOAD_THREADS}; ` +
      `files in ${tmp}`,
  );
  const byId = new Map();
  let failed = false;
  let jsSecs = 0;
  for (const [i, row] of rows.entries()) {
    const rowT0 = Date.now();
    process.stdout.write(`[${i + 1}/${rows.length}] ${row.title}\n`);
    if (row.group && jsSkip) {
      process.stdout.write(`  skipped: ${jsSkip}\n`);
      byId.set(row.id, { row, skipped: jsSkip, cmds: {}, threads: {}, fig: {}, runs: {}, servers: [] });
      continue;
    }
    const dir = fs.mkdtempSync(path.join(tmp, `${row.id}-`));
    const big = row.kind === 'burst' ? ['--max-connections', '20000'] : [];
    const servers = [];
    const rec = { row, cmds: {}, threads: {}, fig: {}, runs: {}, servers: [] };
    try {
      if (row.group === 'jetstream') {
        // Start the NATS deployments this row needs at once (each only the first time).
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
          servers.push({ key: k, name: v.label, ms: true, nats: dep, proc: new ServerProc(`msgserver (${k})`, [process.execPath, 'bench/msgserver-host.js', JSON.stringify(o)]) });
        }
      } else {
        const msOpts = { port: 0, protocol: row.protocol, ackMode: row.ackMode, file: { path: path.join(dir, 'msgserver.log') } };
        if (row.hook) msOpts.benchHook = row.hook;
        if (row.kind === 'burst') msOpts.limits = { maxConnections: 20000 };
        servers.push({ key: 'ms', name: 'msgserver', ms: true, proc: new ServerProc('msgserver', [process.execPath, 'bench/msgserver-host.js', JSON.stringify(msOpts)]) });
      }
      const baselines = row.baselines || ['ceil', 'node'];
      if (baselines.includes('ceil')) {
        servers.push({ key: 'ceil', name: SERVER_NAMES.ceil, proc: new ServerProc('ceiling', [CEILING_BIN, '--port', '0', '--protocol', row.protocol, ...big]) });
      }
      if (baselines.includes('node')) {
        const nodeArgs = ['--port', '0', '--protocol', row.protocol, '--ack-mode', row.ackMode, '--file', path.join(dir, 'node.log'), ...big];
        servers.push({ key: 'node', name: SERVER_NAMES.node, proc: new ServerProc('node baseline', [process.execPath, 'bench/node-baseline.js', ...nodeArgs]) });
      }
      rec.servers = servers.map((s) => ({ key: s.key, name: s.name, ms: !!s.ms }));
      await Promise.all(servers.map((s) => s.proc.start()));
      for (const s of servers) {
        rec.cmds[s.key] = s.proc.cmd
          .map((a) => (a === process.execPath ? 'node' : a.split(tmp).join('$TMP').split(ROOT + path.sep).join('')))
          .map((a) => (/[\s"{]/.test(a) ? `'${a}'` : a))
          .join(' ');
        rec.runs[s.key] = [];
      }
      // JetStream: a few messages through each sink first (the stream is
      // created on the first publish), and they must all be ACKed OK. In
      // this process (the addon's load generator): a warm-up is not measured.
      const { runLoad } = require(path.join(ROOT, 'dist', 'bench', 'bench.js'));
      await Promise.all(
        servers
          .filter((s) => s.nats)
          .map(async (s) => {
            const r = await runLoad({ port: s.proc.port, protocol: row.protocol, connections: 1, window: 1, payload: row.payload, messages: 20, clientIdBase: nextClientId++ });
            if (r.errors || r.messagesAcked !== r.messagesSent) {
              throw new Error(`${s.proc.name}: warm-up not ACKed OK: ${r.errorSamples[0] ?? `${r.messagesAcked} of ${r.messagesSent} ACKed`}; ${s.proc.stderr.trim()}`);
            }
          }),
      );
      // Load threads: fixed, or each server's better of 1 and 2 (throughput rows).
      for (const s of servers) {
        let th = LOAD_THREADS === 'auto' ? 1 : Number(LOAD_THREADS);
        if (LOAD_THREADS === 'auto' && (row.kind === 'pipelined' || row.kind === 'sync')) {
          const one = await runBench(benchArgs(row, s.proc.port, 1, 1000));
          const two = await runBench(benchArgs(row, s.proc.port, 2, 1000));
          th = two.msgsPerSec > one.msgsPerSec * 1.03 ? 2 : 1;
        }
        if (row.kind === 'burst') th = 2;
        rec.threads[s.key] = th;
      }
      for (let run = 0; run < RUNS; run++) {
        for (const s of servers) {
          const args = benchArgs(row, s.proc.port, rec.threads[s.key], DURATION);
          rec.cmds[`bench-${s.key}`] = `msgbench ${args.join(' ').replace(String(s.proc.port), '<port>').replace(/--client-id \d+/, '--client-id <n>')}`;
          const before = s.ms ? await s.proc.stats() : null;
          const natsBefore = s.nats ? s.nats.cpuSeconds() : 0;
          let result = null;
          let error = null;
          try {
            result = await runBench(args);
          } catch (e) {
            error = e.message;
          }
          const entry = { result, error };
          if (before) {
            const after = await s.proc.stats();
            const d = (k) => after.stats[k] - before.stats[k];
            entry.server = {
              recordsWritten: d('recordsWritten'),
              writes: d('writes'),
              fsyncs: d('fsyncs'),
              syncedRecords: d('syncedRecords'),
              ackFrames: d('ackFrames'),
              rssBytes: after.rssBytes,
              cpuSec: (after.cpuUs - before.cpuUs) / 1e6,
            };
            if (after.stats.jetstream && before.stats.jetstream) {
              const j = {};
              for (const f of ['published', 'acked', 'duplicates', 'failed', 'timeouts', 'unavailable']) j[f] = after.stats.jetstream[f] - before.stats.jetstream[f];
              entry.server.js = j;
            }
            if (s.nats) entry.server.natsCpuSec = s.nats.cpuSeconds() - natsBefore;
          }
          rec.runs[s.key].push(entry);
          const r = result;
          const sv = entry.server;
          process.stdout.write(
            `  run ${run + 1}/${RUNS} ${s.proc.name.padEnd(13)} ` +
              (r
                ? `${fmtInt(r.msgsPerSec).padStart(11)} msgs/s ${r.wireMBPerSec.toFixed(0).padStart(6)} MB/s  ` +
                  `p50 ${fmtUs(r.latency.p50Us)} p99 ${fmtUs(r.latency.p99Us)}  ${fmtInt(r.elapsedMs)} ms` +
                  (r.errors || r.messagesUnacked ? `  ERRORS ${r.errors} unacked ${r.messagesUnacked} ${r.errorSamples[0] ?? ''}` : '')
                : `FAILED: ${error}`) +
              (sv && row.ackMode === 'durable' ? `  ${(sv.syncedRecords / Math.max(1, sv.fsyncs)).toFixed(0)} msgs/fsync` : '') +
              (sv && row.group ? `  CPU s: msgserver ${sv.cpuSec.toFixed(2)}${s.nats ? ` nats ${sv.natsCpuSec.toFixed(2)}` : ''}` : '') +
              (sv && sv.js && (sv.js.duplicates || sv.js.failed || sv.js.timeouts || sv.js.unavailable)
                ? `  JetStream: ${sv.js.duplicates} dup, ${sv.js.failed} failed, ${sv.js.timeouts} timed out, ${sv.js.unavailable} unavailable`
                : '') +
              '\n',
          );
        }
      }
    } catch (e) {
      process.stdout.write(`  row failed: ${e.message}\n`);
      rec.error = e.message;
      failed = true;
    } finally {
      await Promise.all(servers.map((s) => s.proc.stop()));
      fs.rmSync(dir, { recursive: true, force: true });
    }
    for (const { key, ms } of rec.servers) {
      const runs = rec.runs[key];
      if (!runs || runs.length === 0) continue;
      const extra = {};
      if (ms) {
        const sv = runs.map((r) => r.server).filter(Boolean);
        const sum = (f) => sv.reduce((s, x) => s + (f(x) || 0), 0);
        const fsyncs = sum((x) => x.fsyncs);
        extra.written = sum((x) => x.recordsWritten);
        extra.expected = runs.reduce((s, r) => s + (r.result ? r.result.messagesAcked : 0), 0);
        extra.msgsPerFsync = fsyncs ? sum((x) => x.syncedRecords) / fsyncs : NaN;
        extra.msgsPerWrite = extra.written / Math.max(1, sum((x) => x.writes));
        const secs = runs.reduce((s, r) => s + (r.result ? r.result.elapsedMs / 1000 : 0), 0);
        extra.cpuPerMsgUs = (sum((x) => x.cpuSec) / Math.max(1, extra.expected)) * 1e6;
        extra.cpuCores = sum((x) => x.cpuSec) / secs;
        if (sv.some((x) => x.natsCpuSec !== undefined)) {
          extra.natsCpuPerMsgUs = (sum((x) => x.natsCpuSec) / Math.max(1, extra.expected)) * 1e6;
          extra.natsCpuCores = sum((x) => x.natsCpuSec) / secs;
        }
        if (sv.some((x) => x.js)) {
          extra.js = {};
          for (const f of ['published', 'acked', 'duplicates', 'failed', 'timeouts', 'unavailable']) extra.js[f] = sum((x) => x.js && x.js[f]);
        }
      }
      rec.fig[key] = summarize(runs, extra);
    }
    for (const { key, ms } of rec.servers) if (ms && rec.fig[key] && !rec.fig[key].clean) failed = true;
    rec.targets = targetsFor(row, rec.fig, byId);
    byId.set(row.id, rec);
    if (row.group) {
      const a = rec.fig.a;
      for (const k of row.variants) {
        const f = rec.fig[k];
        process.stdout.write(
          `  => ${JS_VARIANTS[k].label}: ${headline(row, f)}` +
            (k !== 'a' ? ` | vs (a) ${fmtVsWritten(row, f, a)}` : '') +
            (rec.fig.ceil ? ` | vs ceiling ${fmtRatio(row, ratio(row, f, rec.fig.ceil), false)}` : '') +
            (rec.fig.node ? `, vs node ${fmtRatio(row, ratio(row, f, rec.fig.node), true)}` : '') +
            '\n',
        );
      }
      jsSecs += (Date.now() - rowT0) / 1000;
      process.stdout.write(`  (row took ${((Date.now() - rowT0) / 1000).toFixed(1)} s)\n`);
    } else {
      const msTxt = rec.fig.ms ? headline(row, rec.fig.ms) : 'n/a (server lacks legacy)';
      process.stdout.write(
        `  => msgserver ${msTxt} | ceiling ${headline(row, rec.fig.ceil)} | node ${headline(row, rec.fig.node)} | ` +
          `vs ceiling ${fmtRatio(row, ratio(row, rec.fig.ms, rec.fig.ceil), false)}, vs node ${fmtRatio(row, ratio(row, rec.fig.ms, rec.fig.node), true)}\n`,
      );
    }
  }
  if (natsDeployments.size) {
    const t = Date.now();
    await stopNats();
    jsSecs += (Date.now() - t) / 1000;
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  const recs = [...byId.values()];
  const report = render({ rows: recs, m, loadBefore, loadAfter: os.loadavg(), secs: (Date.now() - t0) / 1000 });
  fs.writeFileSync(OUT, report);
  const plain = recs.filter((r) => !r.row.group);
  const grouped = recs.filter((r) => r.row.group);
  if (plain.length) console.log('\n' + summaryTable(plain).join('\n'));
  if (grouped.length) console.log('\n' + jetstreamTable(grouped).join('\n'));
  if (grouped.length && !jsSkip) console.log(`\nbench: the JetStream rows took ${jsSecs.toFixed(1)} s (nats-server start and stop included)`);
  console.log(`\nbench: wrote ${path.relative(process.cwd(), OUT) || OUT} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (failed) {
    console.error('bench: some msgserver runs had errors or failed (see above)');
    process.exitCode = 1;
  }
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
    '| row | configuration | msgs/s | MB/s | p50 | p99 | vs (a) written | vs C ceiling | vs Node baseline | CPU per message: msgserver + nats-server (cores busy) | JetStream acks (duplicates / failed / timed out) |',
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
      const cpu = ms
        ? `${f.cpuPerMsgUs.toFixed(1)} us${f.natsCpuPerMsgUs !== undefined ? ` + ${f.natsCpuPerMsgUs.toFixed(1)} us` : ''} ` +
          `(${f.cpuCores.toFixed(2)}${f.natsCpuCores !== undefined ? ` + ${f.natsCpuCores.toFixed(2)}` : ''})`
        : '-';
      const js = f.js ? `${fmtInt(f.js.acked)} (${fmtInt(f.js.duplicates)} / ${fmtInt(f.js.failed)} / ${fmtInt(f.js.timeouts)})` : '-';
      const vs = (other, node) => (ms ? fmtRatio(row, ratio(row, f, other), node) : '-');
      L.push(
        `| ${shape} | ${name} | ${thr} | ${f.wireMBPerSec.toFixed(1)} | ${fmtUs(f.p50)} | ${fmtUs(f.p99)} | ` +
          `${ms && key !== 'a' ? fmtVsWritten(row, f, fig.a) : '-'} | ${key === 'ceil' ? '-' : fig.ceil ? vs(fig.ceil, false) : 'n/a'} | ` +
          `${key === 'node' ? '-' : fig.node ? vs(fig.node, true) : 'n/a'} | ${cpu} | ${js} |`,
      );
    }
  }
  return L;
}

function summaryTable(recs) {
  const lines = [
    '| row | msgserver | C ceiling | Node baseline | msgserver vs ceiling | msgserver vs Node | targets |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const rec of recs) {
    const { row, fig } = rec;
    const ms = fig.ms ? headline(row, fig.ms) : rec.error ? `failed: ${rec.error}` : 'n/a (server lacks legacy)';
    const tg = (rec.targets || []).map(([t, ok]) => `${ok ? 'met' : '**not met**'}: ${t}`).join('; ') || '-';
    lines.push(
      `| ${row.title} | ${ms} | ${headline(row, fig.ceil)} | ${headline(row, fig.node)} | ` +
        `${fmtRatio(row, ratio(row, fig.ms, fig.ceil), false)} | ${fmtRatio(row, ratio(row, fig.ms, fig.node), true)} | ${tg} |`,
    );
  }
  return lines;
}

function render({ rows, m, loadBefore, loadAfter, secs }) {
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
  L.push('## Method', '');
  L.push(
    `- Each row starts three servers: **msgserver** (\`bench/msgserver-host.js\`: \`new MessageServer(opts)\` from dist/, its own process, ` +
      `default service threads = ${m.nproc}), the **C ceiling** (\`bench/ceiling.c\`: one epoll thread per core, parses and ACKs, writes nothing), ` +
      `and the **Node baseline** (\`bench/node-baseline.js\`: idiomatic \`net\` server, \`fs.WriteStream\` with a 1 MiB highWaterMark, sockets paused while it is backed up, ACKs coalesced per 'data' event; ` +
      `its ACK mode follows the row: received = on parse, written = in the write callback, durable = after a group-commit fdatasync).`,
  );
  L.push(
    `- The load is \`msgbench\` (the native load generator, its own process, epoll, one writev per connection per round, per-message latency from send to ACK). ` +
      `It checks every ACK (count and last id; legacy: the bytes "ack"); a run with errors is marked. ` +
      `${RUNS} run(s) of ${DURATION} ms per server per row (the burst: ${BURST_CONNS.toLocaleString('en-US')} connections x 6 messages, until done), runs interleaved across the servers; figures are medians.`,
  );
  L.push(
    `- Load-generator threads: ${LOAD_THREADS === 'auto' ? 'for the pipelined and synchronous rows each server gets the better of 1 and 2 load threads (a 1 s trial of each, kept only if 2 is at least 3% better); latency rows use 1, the burst 2' : `${LOAD_THREADS} for every row except the burst (2)`}. ` +
      `The machine has ${m.nproc} cores, so the load generator competes with the server for CPU; the thread count used is listed per row.`,
  );
  L.push(
    '- Ratios: throughput rows give msgserver / other (higher is better for msgserver); latency and burst rows give msgserver\'s p50 or time / the other\'s (lower is better). ' +
      'MB/s counts wire bytes sent by the clients (MB = 10^6 bytes). Servers and msgbench run with `ulimit -n 65536`; the burst rows pass `--max-connections 20000`.',
  );
  if (rows.some((r) => r.row.group)) {
    L.push(
      '- The JetStream rows run several msgserver configurations side by side in the same row, runs interleaved with each other (and with the C ceiling and Node baseline where listed; --quick runs neither beside them, nor the 100 B row): ' +
        Object.values(JS_VARIANTS)
          .map((v) => `**${v.label}**`)
          .join(', ') +
        '. The bench starts its own nats-server processes (bench/nats.js; JetStream file store in a temp dir; ready when every node\'s /healthz is 200 and, for the cluster, all nodes name one meta leader): one node for R1, a 3-node cluster on loopback for R3, both on this machine. ' +
        'Every configuration gets a fresh stream (created by msgserver, `createStream`, file storage), each msgbench run its own client ids (so no Nats-Msg-Id repeats within the duplicate window), and 20 messages go through each sink before the runs.',
    );
  }
  L.push('');
  const plain = rows.filter((r) => !r.row.group);
  const grouped = rows.filter((r) => r.row.group);
  if (plain.length) L.push('## Summary', '', ...summaryTable(plain), '');
  if (grouped.length) {
    L.push('## JetStream sink', '');
    L.push(
      '- **vs (a) written**: the same shape measured in the same row with the file-only configuration; this is the cost of the JetStream sink. ' +
        '**vs C ceiling**: the ceiling parses and ACKs and stores nothing (no file, no JetStream), so for (b)-(e) the ratio is the share of a do-nothing server\'s rate that is left once every message also goes through nats-server (on the same 2 cores), not an efficiency figure of msgserver alone. ' +
        '**vs Node baseline**: the baseline writes a file and ACKs after the write (written), so for (c)-(e) it compares a replicated ACK with a file ACK. ' +
        'Latency rows give p50/p99 multiples (lower is better).',
      '- **CPU per message**: user + system CPU time of the msgserver process (all threads) and of the nats-server process(es) it publishes to, per message ACKed OK, during the runs; in brackets the cores they kept busy. The load generator (msgbench) is not counted. ' +
        'JetStream acks are those counted by the end of each run: for (b), which does not wait for them, some land after it.',
      '- What an ACK promises: (a)/(b) written = in the file (page cache; (b) publishes after the write and does not wait); (c) replicated R1 = in the file and stored by the stream on one nats-server; ' +
        '(d) replicated R3 = in the file and stored by a majority (2 of 3) of the stream\'s replicas; (e) = stored by the stream only, no local file. nats-server acknowledges from its file store without fsync (it syncs every 2 min by default).',
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
    const list = rec.servers.length || row.group
      ? rec.servers
      : [
          { key: 'ms', name: 'msgserver', ms: true },
          { key: 'ceil', name: SERVER_NAMES.ceil },
          { key: 'node', name: SERVER_NAMES.node },
        ];
    L.push('Commands (`<port>` is the server\'s):', '', '```');
    for (const { key: k, name } of list) {
      if (!rec.cmds[k]) continue;
      const cmdName = k === 'ceil' ? 'ceiling' : k === 'node' ? 'node baseline' : name;
      L.push(`# ${cmdName} (load threads ${rec.threads[k] ?? '?'})`, rec.cmds[k], rec.cmds[`bench-${k}`] ?? '');
    }
    L.push('```', '');
    L.push('| server | msgs/s | MB/s | p50 | p99 | p99.9 | max | elapsed | errors | per run (msgs/s, or p50 / time) |', '|---|---|---|---|---|---|---|---|---|---|');
    for (const { key: k, name } of list) {
      const f = fig[k];
      if (!f) {
        L.push(`| ${name} | n/a | | | | | | | | |`);
        continue;
      }
      const per = f.runs
        .map((r) => (r.result ? (row.kind === 'latency' ? fmtUs(r.result.latency.p50Us) : row.kind === 'burst' ? `${fmtInt(r.result.elapsedMs)} ms` : fmtInt(r.result.msgsPerSec)) : 'failed'))
        .join(', ');
      L.push(
        `| ${name} | ${fmtInt(f.msgsPerSec)} | ${f.wireMBPerSec.toFixed(1)} | ${fmtUs(f.p50)} | ${fmtUs(f.p99)} | ${fmtUs(f.p999)} | ${fmtUs(f.max)} | ` +
          `${fmtInt(f.elapsedMs)} ms | ${f.clean ? '0' : `${fmtInt(f.errors)} errors, ${fmtInt(f.unacked)} unACKed${f.failedRuns ? `, ${f.failedRuns} failed runs` : ''}`} | ${per} |`,
      );
    }
    L.push('');
    if (row.group) {
      for (const { key: k, name, ms: isMs } of list) {
        const f = fig[k];
        if (!isMs || !f) continue;
        const notes = [`${name}: wrote ${fmtInt(f.written)} records to its file for ${fmtInt(f.expected)} messages ACKed OK`];
        if (f.js) notes.push(`JetStream: ${fmtInt(f.js.published)} published, ${fmtInt(f.js.acked)} acknowledged (${fmtInt(f.js.duplicates)} duplicates), ${fmtInt(f.js.failed)} refused, ${fmtInt(f.js.timeouts)} timed out, ${fmtInt(f.js.unavailable)} not published`);
        notes.push(`CPU ${f.cpuPerMsgUs.toFixed(1)} us/msg msgserver${f.natsCpuPerMsgUs !== undefined ? `, ${f.natsCpuPerMsgUs.toFixed(1)} us/msg nats-server` : ''}`);
        const rss = f.runs.map((r) => r.server && r.server.rssBytes).filter(Boolean);
        if (rss.length) notes.push(`RSS after the runs ${(Math.max(...rss) / 1048576).toFixed(0)} MiB`);
        L.push(`- ${notes.join('; ')}.`);
      }
      L.push('');
    }
    const ms = fig.ms;
    if (ms) {
      const notes = [`vs ceiling ${fmtRatio(row, ratio(row, ms, fig.ceil), false)}`, `vs Node ${fmtRatio(row, ratio(row, ms, fig.node), true)}`];
      notes.push(`msgserver wrote ${fmtInt(ms.written)} records for ${fmtInt(ms.expected)} messages ACKed OK, ${ms.msgsPerWrite.toFixed(1)} records per write`);
      if (row.ackMode === 'durable') notes.push(`**${Number.isFinite(ms.msgsPerFsync) ? ms.msgsPerFsync.toFixed(0) : 'n/a'} messages per fsync**`);
      const rss = ms.runs.map((r) => r.server && r.server.rssBytes).filter(Boolean);
      if (rss.length) notes.push(`msgserver RSS after the runs ${(Math.max(...rss) / 1048576).toFixed(0)} MiB`);
      L.push(notes.join('; ') + '.', '');
      for (const [t, ok] of rec.targets || []) L.push(`- target ${t}: ${ok ? 'met' : '**not met**'}`);
      if ((rec.targets || []).length) L.push('');
    }
    const samples = list.flatMap(({ key: k }) => (fig[k] ? fig[k].runs : []).flatMap((r) => (r.result ? r.result.errorSamples : [r.error]))).slice(0, 5);
    if (rec.error) samples.unshift(rec.error);
    if (samples.length) L.push('Errors seen:', '', ...samples.map((s) => `- ${s}`), '');
  }
  return L.join('\n') + '\n';
}

main().catch((err) => {
  console.error(`bench: ${err.stack || err.message}`);
  process.exit(1);
});
