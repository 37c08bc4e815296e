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
// BENCHMARKS.md.
//
//   node bench/run.js [--quick] [--runs n] [--duration-ms ms] [--only regex] [--out file]
//
// --quick (CI): 1 run of 400 ms per row; only checks that everything runs and
// the ratios print. Prerequisites: npm run build (dist/ and the addon with
// the load generator) and a C compiler for bench/ceiling.c.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { parseArgs } = require('node:util');

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
  console.log(fs.readFileSync(__filename, 'utf8').split('\n').slice(1, 18).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}
const QUICK = opt.quick;
const RUNS = Number(opt.runs ?? (QUICK ? 1 : 3));
const DURATION = Number(opt['duration-ms'] ?? (QUICK ? 400 : 3000));
const BURST_CONNS = Number(opt['burst-connections'] ?? 10000);
// 'auto': before a throughput row's runs, try 1 and 2 load threads against each server and keep its better one.
const LOAD_THREADS = opt['load-threads'] ?? (QUICK ? '1' : 'auto');
const OUT = path.resolve(opt.out ?? path.join(ROOT, 'BENCHMARKS.md'));

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
  return rows;
}

// Targets from issue 4; each returns [text, met] or null when it does not apply.
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
  return a;
}

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

// ---- main ---------------------------------------------------------------------

function prerequisites() {
  if (!fs.existsSync(MSGBENCH) || !fs.existsSync(path.join(ROOT, 'dist', 'index.js'))) {
    throw new Error('dist/ is missing: run `npm run build` first');
  }
  const probe = execFileSync(process.execPath, ['-e', "process.stdout.write(typeof require('./dist/native').loadAddon().runLoad)"], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (probe !== 'function') throw new Error('the native addon has no load generator (runLoad): rebuild it (npm run build:native)');
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

async function main() {
  const t0 = Date.now();
  prerequisites();
  const m = machine();
  const loadBefore = os.loadavg();
  const only = opt.only ? new RegExp(opt.only) : null;
  const rows = buildRows().filter((r) => !only || only.test(r.id));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'msgbench-'));
  console.log(
    `bench: ${rows.length} rows x ${RUNS} run(s), ${DURATION} ms each, load threads ${LOAD_THREADS}; ` +
      `files in ${tmp}`,
  );
  const byId = new Map();
  let failed = false;
  for (const [i, row] of rows.entries()) {
    const dir = fs.mkdtempSync(path.join(tmp, `${row.id}-`));
    const big = row.kind === 'burst' ? ['--max-connections', '20000'] : [];
    const msOpts = { port: 0, protocol: row.protocol, ackMode: row.ackMode, file: { path: path.join(dir, 'msgserver.log') } };
    if (row.hook) msOpts.benchHook = row.hook;
    if (row.kind === 'burst') msOpts.limits = { maxConnections: 20000 };
    const servers = [];
    {
      servers.push({ key: 'ms', proc: new ServerProc('msgserver', [process.execPath, 'bench/msgserver-host.js', JSON.stringify(msOpts)]) });
    }
    servers.push({ key: 'ceil', proc: new ServerProc('ceiling', [CEILING_BIN, '--port', '0', '--protocol', row.protocol, ...big]) });
    const nodeArgs = ['--port', '0', '--protocol', row.protocol, '--ack-mode', row.ackMode, '--file', path.join(dir, 'node.log'), ...big];
    servers.push({ key: 'node', proc: new ServerProc('node baseline', [process.execPath, 'bench/node-baseline.js', ...nodeArgs]) });
    const rec = { row, cmds: {}, threads: {}, fig: {}, runs: {} };
    process.stdout.write(`[${i + 1}/${rows.length}] ${row.title}\n`);
    try {
      for (const s of servers) {
        await s.proc.start();
        rec.cmds[s.key] = s.proc.cmd
          .map((a) => (a === process.execPath ? 'node' : a.split(tmp).join('$TMP').split(ROOT + path.sep).join('')))
          .map((a) => (/[\s"{]/.test(a) ? `'${a}'` : a))
          .join(' ');
        rec.runs[s.key] = [];
      }
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
          rec.cmds[`bench-${s.key}`] = `msgbench ${args.join(' ').replace(String(s.proc.port), '<port>')}`;
          const before = s.key === 'ms' ? await s.proc.stats() : null;
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
            };
          }
          rec.runs[s.key].push(entry);
          const r = result;
          process.stdout.write(
            `  run ${run + 1}/${RUNS} ${s.proc.name.padEnd(13)} ` +
              (r
                ? `${fmtInt(r.msgsPerSec).padStart(11)} msgs/s ${r.wireMBPerSec.toFixed(0).padStart(6)} MB/s  ` +
                  `p50 ${fmtUs(r.latency.p50Us)} p99 ${fmtUs(r.latency.p99Us)}  ${fmtInt(r.elapsedMs)} ms` +
                  (r.errors || r.messagesUnacked ? `  ERRORS ${r.errors} unacked ${r.messagesUnacked} ${r.errorSamples[0] ?? ''}` : '')
                : `FAILED: ${error}`) +
              (entry.server && row.ackMode === 'durable' ? `  ${(entry.server.syncedRecords / Math.max(1, entry.server.fsyncs)).toFixed(0)} msgs/fsync` : '') +
              '\n',
          );
        }
      }
    } catch (e) {
      process.stdout.write(`  row failed: ${e.message}\n`);
      rec.error = e.message;
      failed = true;
    } finally {
      for (const s of servers) await s.proc.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    for (const key of ['ms', 'ceil', 'node']) {
      const runs = rec.runs[key];
      if (!runs || runs.length === 0) continue;
      const extra = {};
      if (key === 'ms') {
        const sv = runs.map((r) => r.server).filter(Boolean);
        const fsyncs = sv.reduce((s, x) => s + x.fsyncs, 0);
        extra.written = sv.reduce((s, x) => s + x.recordsWritten, 0);
        extra.expected = runs.reduce((s, r) => s + (r.result ? r.result.messagesAcked : 0), 0);
        extra.msgsPerFsync = fsyncs ? sv.reduce((s, x) => s + x.syncedRecords, 0) / fsyncs : NaN;
        extra.msgsPerWrite = extra.written / Math.max(1, sv.reduce((s, x) => s + x.writes, 0));
      }
      rec.fig[key] = summarize(runs, extra);
    }
    if (rec.fig.ms && !rec.fig.ms.clean) failed = true;
    rec.targets = targetsFor(row, rec.fig, byId);
    byId.set(row.id, rec);
    const msTxt = rec.fig.ms ? headline(row, rec.fig.ms) : 'n/a (server lacks legacy)';
    process.stdout.write(
      `  => msgserver ${msTxt} | ceiling ${headline(row, rec.fig.ceil)} | node ${headline(row, rec.fig.node)} | ` +
        `vs ceiling ${fmtRatio(row, ratio(row, rec.fig.ms, rec.fig.ceil), false)}, vs node ${fmtRatio(row, ratio(row, rec.fig.ms, rec.fig.node), true)}\n`,
    );
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  const report = render({ rows: [...byId.values()], m, loadBefore, loadAfter: os.loadavg(), secs: (Date.now() - t0) / 1000 });
  fs.writeFileSync(OUT, report);
  console.log('\n' + summaryTable([...byId.values()]).join('\n'));
  console.log(`\nbench: wrote ${path.relative(process.cwd(), OUT) || OUT} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (failed) {
    console.error('bench: some msgserver runs had errors or failed (see above)');
    process.exitCode = 1;
  }
}

function summaryTable(recs) {
  const lines = [
    '| row | msgserver | C ceiling | Node baseline | msgserver vs ceiling | msgserver vs Node | targets (issue 4) |',
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
  L.push('');
  L.push('## Summary', '');
  L.push(...summaryTable(rows), '');
  L.push('## Rows', '');
  for (const rec of rows) {
    const { row, fig } = rec;
    L.push(`### ${row.title}`, '');
    L.push('Commands (`<port>` is the server\'s):', '', '```');
    for (const [k, name] of [['ms', 'msgserver'], ['ceil', 'ceiling'], ['node', 'node baseline']]) {
      if (!rec.cmds[k]) continue;
      L.push(`# ${name} (load threads ${rec.threads[k] ?? '?'})`, rec.cmds[k], rec.cmds[`bench-${k}`] ?? '');
    }
    L.push('```', '');
    L.push('| server | msgs/s | MB/s | p50 | p99 | p99.9 | max | elapsed | errors | per run (msgs/s, or p50 / time) |', '|---|---|---|---|---|---|---|---|---|---|');
    for (const [k, name] of [['ms', 'msgserver'], ['ceil', 'C ceiling'], ['node', 'Node baseline']]) {
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
    const samples = ['ms', 'ceil', 'node'].flatMap((k) => (fig[k] ? fig[k].runs : []).flatMap((r) => (r.result ? r.result.errorSamples : [r.error]))).slice(0, 5);
    if (samples.length) L.push('Errors seen:', '', ...samples.map((s) => `- ${s}`), '');
  }
  return L.join('\n') + '\n';
}

main().catch((err) => {
  console.error(`bench: ${err.stack || err.message}`);
  process.exit(1);
});
