#!/usr/bin/env node
// Builds the libFuzzer harnesses (fuzz/fuzz_<name>.cc) with clang++ under
// ASan+UBSan into build-fuzz/ and runs them for a bounded time.
//
// Usage: node scripts/fuzz.js [--seconds N] [--jobs J] [--build-only] [name...] [-- libFuzzer flags]
//   --seconds N  total wall-clock fuzzing budget (default 60), split across the
//                harnesses: each runs N * min(J, H) / H seconds (at least 1)
//   --jobs J     harnesses fuzzed at the same time (default 1)
//   name...      a subset of the harnesses (default: all)
//
// Per harness: (1) every file in fuzz/regressions/<name>/ is run once (known
// bugs stay fixed); (2) the fuzzer runs on a working corpus
// build-fuzz/corpus-<name>/, seeded from fuzz/corpus/<name>/ (the repo corpus
// is never written). Crash inputs go to build-fuzz/artifacts/<name>/, logs to
// build-fuzz/logs/. Exits non-zero on any crash, leak, timeout or OOM.
// FUZZ_IGNORE=<id,...> is passed to the harnesses (see fuzz/fuzz_records.cc).
// CXX overrides the compiler (default clang++).
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const out = path.join(root, 'build-fuzz');

// The format code the harnesses test: pure functions, no I/O.
const FORMAT = ['native/codec.cc', 'native/record.cc', 'native/crc32c.cc'];
// One line per harness: fuzz/fuzz_<name>.cc linked with `sources`.
const HARNESSES = [
  { name: 'frames', sources: FORMAT },         // wire::parse_hello + parse_frame (server side)
  { name: 'server_frames', sources: FORMAT },  // wire::parse_server_frame + encoder round trips
  { name: 'records', sources: FORMAT },        // record::decode + record::scan
  { name: 'legacy', sources: FORMAT },         // legacy::parse_frame (1160-byte structs)
  { name: 'auth', sources: FORMAT },           // wire::parse_hello_flags + parse_auth (authenticating clients)
  { name: 'pub_ack', sources: ['native/pub_ack.cc'] },  // parse_pub_ack (JetStream publish answers)
];

const CXX = process.env.CXX || 'clang++';
const CXXFLAGS = ['-fsanitize=fuzzer,address,undefined', '-fno-sanitize-recover=undefined',
  '-g', '-O1', '-std=c++17', '-Inative', '-Ifuzz'];
const RUN_FLAGS = ['-timeout=5', '-rss_limit_mb=2048', '-print_final_stats=1'];
const INSTALL_HINT = 'apt-get install clang libclang-rt-14-dev';

function usage(msg) {
  if (msg) console.error(`fuzz: ${msg}`);
  console.error('usage: node scripts/fuzz.js [--seconds N] [--jobs J] [--build-only] [name...] [-- libFuzzer flags]');
  console.error(`harnesses: ${HARNESSES.map((h) => h.name).join(', ')}`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { seconds: 60, jobs: 1, buildOnly: false, names: [], extra: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) usage(`${a} needs a positive integer`);
      return v;
    };
    if (a === '--') { o.extra = argv.slice(i + 1); break; }
    else if (a === '--seconds') o.seconds = num();
    else if (a === '--jobs') o.jobs = num();
    else if (a === '--build-only') o.buildOnly = true;
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else o.names.push(a);
  }
  return o;
}

function mtime(p) {
  try { return fs.statSync(p).mtimeMs; } catch { return 0; }
}

function listFiles(dir) {
  try {
    return fs.readdirSync(dir).filter((f) => !f.startsWith('.')).map((f) => path.join(dir, f))
      .filter((p) => fs.statSync(p).isFile()).sort();
  } catch { return []; }
}

// Runs up to `limit` of the async tasks at once, in order.
async function pool(tasks, limit) {
  const results = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

const children = new Set();
function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const log = opts.log ? fs.openSync(opts.log, 'w') : null;
    const child = spawn(cmd, args, { cwd: root, env: opts.env || process.env,
      stdio: ['ignore', log ?? 'pipe', log ?? 'pipe'] });
    children.add(child);
    let text = '';
    if (!log) {
      child.stdout.on('data', (d) => { text += d; });
      child.stderr.on('data', (d) => { text += d; });
    }
    let killed = false;
    const timer = opts.hardLimitMs ? setTimeout(() => { killed = true; child.kill('SIGKILL'); }, opts.hardLimitMs) : null;
    child.on('error', (e) => { text += String(e); });
    child.on('close', (code, signal) => {
      children.delete(child);
      if (timer) clearTimeout(timer);
      if (log) { fs.closeSync(log); text = fs.readFileSync(opts.log, 'utf8'); }
      resolve({ code, signal, text, killed });
    });
  });
}

function checkCompiler() {
  const r = spawnSync(CXX, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    console.error(`fuzz: ${CXX} not found; the fuzzers need clang with libFuzzer: ${INSTALL_HINT}`);
    process.exit(2);
  }
}

// Builds build-fuzz/fuzz_<name> unless it is newer than everything it is made
// of and was built with the same command.
async function build(h) {
  const bin = path.join(out, `fuzz_${h.name}`);
  const src = `fuzz/fuzz_${h.name}.cc`;
  if (!fs.existsSync(path.join(root, src))) return { ok: false, msg: `${src} does not exist` };
  const args = [...CXXFLAGS, src, ...h.sources, '-o', bin];
  const stamp = `${bin}.cmd`;
  const cmd = [CXX, ...args].join(' ');
  const inputs = [src, ...h.sources, ...listFiles(path.join(root, 'fuzz')).filter((f) => f.endsWith('.h')),
    ...listFiles(path.join(root, 'native')).filter((f) => f.endsWith('.h'))];
  const newest = Math.max(...inputs.map((f) => mtime(path.isAbsolute(f) ? f : path.join(root, f))));
  let same = false;
  try { same = fs.readFileSync(stamp, 'utf8') === cmd; } catch { /* first build */ }
  if (same && mtime(bin) > newest) return { ok: true, built: false };
  const r = await run(CXX, args);
  if (r.code !== 0) {
    let msg = `build of fuzz_${h.name} failed:\n${r.text.trim()}`;
    if (/libclang_rt|fsanitize=fuzzer|-lclang_rt/.test(r.text)) {
      msg += `\nfuzz: the libFuzzer runtime is missing: ${INSTALL_HINT}`;
    }
    return { ok: false, msg };
  }
  fs.writeFileSync(stamp, cmd);
  return { ok: true, built: true };
}

// What went wrong in a libFuzzer run, in one or two lines.
function describeFailure(r) {
  if (r.killed) return 'hung past its time limit (killed)';
  const lines = r.text.split('\n');
  const pick = (re) => lines.find((l) => re.test(l));
  const parts = [
    pick(/fuzz invariant failed/),
    pick(/ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|ALARM: working on the last Unit|out-of-memory/),
    pick(/^SUMMARY:/),
    pick(/Test unit written to/),
  ].filter(Boolean);
  if (!parts.length) parts.push(`exit ${r.code}${r.signal ? ` (${r.signal})` : ''}`);
  return [...new Set(parts.map((l) => l.trim()))].join('\n    ');
}

async function fuzzOne(h, seconds, extra) {
  const bin = path.join(out, `fuzz_${h.name}`);
  const logs = path.join(out, 'logs');
  const artifacts = path.join(out, 'artifacts', h.name);
  fs.mkdirSync(logs, { recursive: true });
  fs.mkdirSync(artifacts, { recursive: true });
  const env = { ...process.env, UBSAN_OPTIONS: process.env.UBSAN_OPTIONS || 'print_stacktrace=1' };
  const res = { name: h.name, execs: 0, failures: [] };

  // 1. Known-bug reproducers, each run once (separately, so every failing one is named).
  const regressions = listFiles(path.join(root, 'fuzz', 'regressions', h.name));
  let passed = 0;
  for (const file of regressions) {
    const log = path.join(logs, `${h.name}-regression-${path.basename(file)}.log`);
    const r = await run(bin, [...RUN_FLAGS, `-artifact_prefix=${artifacts}/`, file], { env, log, hardLimitMs: 60000 });
    if (r.code !== 0 || r.killed) {
      res.failures.push(`regression ${path.relative(root, file)} fails (log: ${path.relative(root, log)}):\n    ${describeFailure(r)}`);
    } else {
      passed++;
      fs.unlinkSync(log);
    }
  }
  if (regressions.length) console.log(`fuzz: ${h.name}: ${passed}/${regressions.length} regression inputs pass`);

  // 2. Fuzz on a working copy of the seed corpus.
  const corpus = path.join(out, `corpus-${h.name}`);
  fs.mkdirSync(corpus, { recursive: true });
  const seeds = listFiles(path.join(root, 'fuzz', 'corpus', h.name));
  for (const s of seeds) {
    const dst = path.join(corpus, path.basename(s));
    if (!fs.existsSync(dst)) fs.copyFileSync(s, dst);
  }
  const log = path.join(logs, `${h.name}.log`);
  console.log(`fuzz: ${h.name}: fuzzing for ${seconds} s (${seeds.length} seeds; log: ${path.relative(root, log)})`);
  const r = await run(bin, [`-max_total_time=${seconds}`, ...RUN_FLAGS, `-artifact_prefix=${artifacts}/`,
    ...extra, corpus], { env, log, hardLimitMs: (seconds + 120) * 1000 });
  const m = r.text.match(/stat::number_of_executed_units:\s*(\d+)/g);
  res.execs = m ? Number(m[m.length - 1].match(/(\d+)/)[1]) : 0;
  if (r.code !== 0 || r.killed) res.failures.push(`fuzzing failed (log: ${path.relative(root, log)}):\n    ${describeFailure(r)}`);
  const cov = [...r.text.matchAll(/cov: (\d+) ft: (\d+) corp: (\d+)/g)].pop();
  console.log(`fuzz: ${h.name}: ${res.execs} executions${cov ? ` (cov ${cov[1]}, ft ${cov[2]}, corpus ${cov[3]})` : ''}` +
    `${res.failures.length ? `, ${res.failures.length} failure(s)` : ''}`);
  return res;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const byName = new Map(HARNESSES.map((h) => [h.name, h]));
  for (const n of o.names) if (!byName.has(n)) usage(`unknown harness ${n}`);
  const chosen = o.names.length ? o.names.map((n) => byName.get(n)) : HARNESSES;

  checkCompiler();
  fs.mkdirSync(out, { recursive: true });
  const builds = await pool(chosen.map((h) => () => build(h)), o.jobs);
  let broken = false;
  builds.forEach((b, i) => {
    if (!b.ok) { console.error(`fuzz: ${b.msg}`); broken = true; }
    else if (b.built) console.log(`fuzz: built build-fuzz/fuzz_${chosen[i].name}`);
  });
  if (broken) process.exit(2);
  if (o.buildOnly) return;

  const per = Math.max(1, Math.floor((o.seconds * Math.min(o.jobs, chosen.length)) / chosen.length));
  const results = await pool(chosen.map((h) => () => fuzzOne(h, per, o.extra)), o.jobs);
  let execs = 0;
  let crashes = 0;
  for (const r of results) {
    execs += r.execs;
    crashes += r.failures.length;
    for (const f of r.failures) console.error(`fuzz: ${r.name}: ${f}`);
  }
  console.log(`fuzz: ${results.length} harnesses, ${execs} executions, ${crashes} crashes`);
  process.exit(crashes ? 1 : 0);
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const c of children) c.kill('SIGKILL');
    process.exit(130);
  });
}
main().catch((e) => {
  console.error(e);
  process.exit(2);
});
