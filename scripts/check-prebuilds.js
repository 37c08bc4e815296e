#!/usr/bin/env node
// Checks the prebuilt binaries in <dir>/prebuilds/linux-<arch>/ without
// running them, so it works for every architecture on any machine:
//   - msgserver.node (and msgbench/msgbench.node when there) is an ELF for
//     that architecture, built from the sources in <dir> (the source hash
//     CMakeLists.txt embeds is in the binary);
//   - it needs only the libraries the README's platform table promises
//     (readelf -d NEEDED): glibc, libgcc_s, and libevent_core-2.1.so.7, which
//     must be shipped next to it and found through an $ORIGIN run path;
//   - no file needs a newer glibc (GLIBC_x.y), libgcc_s (GCC_x.y) than the
//     README's platform table states, nor any libstdc++ (GLIBCXX_, CXXABI_):
//     the highest symbol versions each file needs, from objdump -T.
// Usage: node scripts/check-prebuilds.js [--dir DIR] [--arch x64,arm64] [--readme FILE]
//   --dir     the package (or repository) root; default: this repository
//   --arch    the architectures that must be there; default: x64,arm64
//   --readme  where the baseline is read from; default: DIR/README.md, else this repository's
// Exit 0 when every check passes; prints one line per file either way.
'use strict';
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const REPO = path.join(__dirname, '..');
const ARCHES = ['x64', 'arm64'];
const ELF_MACHINE = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' };
// What a prebuild may link against (README "Platforms"). Everything else is in the package.
const GLIBC_LIBS = [/^libc\.so\.6$/, /^libm\.so\.6$/, /^libpthread\.so\.0$/, /^libdl\.so\.2$/, /^librt\.so\.1$/, /^ld-linux-(x86-64|aarch64)\.so\.[12]$/];
const ALLOWED_NEEDED = [...GLIBC_LIBS, /^libgcc_s\.so\.1$/, /^libevent_core-2\.1\.so\.7$/];
const BUNDLED = 'libevent_core-2.1.so.7';

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

/** MSGS_SOURCE_HASH (CMakeLists.txt): native/*.cc|h by name, "<name>:<sha256>\n", sorted. */
function nativeSourceHash(root) {
  const dir = path.join(root, 'native');
  const names = fs.readdirSync(dir).filter((n) => /\.(cc|h)$/.test(n)).sort();
  return sha256(names.map((n) => `${n}:${sha256(fs.readFileSync(path.join(dir, n)))}\n`).join(''));
}

/**
 * MSGS_BENCH_SOURCE_HASH (CMakeLists.txt): bench/loadgen/*.cc|h plus msgs_format's
 * sources and their same-named headers, "<path from the root>:<sha256>\n", sorted
 * by path. null when the tree has no bench/loadgen/ or no msgs_format library.
 */
function benchSourceHash(root) {
  const loadgen = path.join(root, 'bench', 'loadgen');
  const cmake = path.join(root, 'CMakeLists.txt');
  if (!fs.existsSync(loadgen) || !fs.existsSync(cmake)) return null;
  const m = /add_library\(\s*msgs_format\s+STATIC\s+([^)]*)\)/.exec(fs.readFileSync(cmake, 'utf8'));
  if (!m) return null;
  const files = new Set(
    fs.readdirSync(loadgen).filter((n) => /\.(cc|h)$/.test(n)).map((n) => `bench/loadgen/${n}`),
  );
  for (const src of m[1].split(/\s+/).filter(Boolean)) {
    files.add(src);
    const hdr = src.replace(/\.cc$/, '.h');
    if (hdr !== src && fs.existsSync(path.join(root, hdr))) files.add(hdr);
  }
  const sorted = [...files].sort();
  return sha256(sorted.map((f) => `${f}:${sha256(fs.readFileSync(path.join(root, f)))}\n`).join(''));
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`${cmd} is not available (${r.error.code}): apt-get install binutils`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

function cmpVersion(a, b) {
  const A = a.split('.').map(Number);
  const B = b.split('.').map(Number);
  for (let i = 0; i < Math.max(A.length, B.length); i++) {
    const d = (A[i] || 0) - (B[i] || 0);
    if (d) return d;
  }
  return 0;
}
const maxVersion = (list) => list.slice().sort(cmpVersion).pop();

/** ELF facts of one file: machine, NEEDED, RUNPATH, SONAME, the highest version needed per prefix. */
function elfInfo(file) {
  const header = run('readelf', ['-h', '-W', file]);
  const machine = (/Machine:\s+(.+)/.exec(header) || [])[1]?.trim();
  const dyn = run('readelf', ['-d', '-W', file]);
  const needed = [...dyn.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const runpath = (/\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[([^\]]*)\]/.exec(dyn) || [])[1];
  const soname = (/\(SONAME\)\s+Library soname: \[([^\]]+)\]/.exec(dyn) || [])[1];
  // undefined (imported) symbols only: "*UND*" lines carry the version they need
  const syms = run('objdump', ['-T', file]).split('\n').filter((l) => /\*UND\*/.test(l));
  const versions = {};
  for (const l of syms) {
    const m = /\(?\b(GLIBCXX|CXXABI|GLIBC|GCC)_(\d+(?:\.\d+)*)\)?/.exec(l);
    if (m) (versions[m[1]] ||= new Set()).add(m[2]);
  }
  const max = {};
  for (const [k, set] of Object.entries(versions)) max[k] = maxVersion([...set]);
  return { machine, needed, runpath, soname, max };
}

/** The baseline the README's platform table states for linux-<arch>: { glibc, gcc }. */
function readmeBaseline(readmeText, arch) {
  const row = readmeText.split('\n').find((l) => l.startsWith(`| \`linux-${arch}\``));
  if (!row) return null;
  const glibc = (/glibc (\d+\.\d+) or newer/.exec(row) || [])[1];
  const gcc = (/libgcc_s \(GCC (\d+\.\d+(?:\.\d+)?) or newer\)/.exec(row) || [])[1];
  return glibc && gcc ? { glibc, gcc } : null;
}

function checkElf(file, arch, baseline, { allowed, expectRunpath }) {
  const problems = [];
  const info = elfInfo(file);
  if (info.machine !== ELF_MACHINE[arch]) problems.push(`is built for ${info.machine}, not ${ELF_MACHINE[arch]}`);
  const extra = info.needed.filter((n) => !allowed.some((re) => re.test(n)));
  if (extra.length) problems.push(`needs libraries users may not have: ${extra.join(', ')}`);
  if (expectRunpath !== undefined && info.runpath !== expectRunpath)
    problems.push(`run path is ${info.runpath === undefined ? 'not set' : `"${info.runpath}"`}, expected "${expectRunpath}"`);
  if (info.max.GLIBC && cmpVersion(info.max.GLIBC, baseline.glibc) > 0)
    problems.push(`needs GLIBC_${info.max.GLIBC}, above the README's baseline glibc ${baseline.glibc}`);
  if (info.max.GCC && cmpVersion(info.max.GCC, baseline.gcc) > 0)
    problems.push(`needs GCC_${info.max.GCC} (libgcc_s), above the README's baseline GCC ${baseline.gcc}`);
  for (const k of ['GLIBCXX', 'CXXABI'])
    if (info.max[k]) problems.push(`needs ${k}_${info.max[k]}: libstdc++ must be linked in (CMake MSGS_PORTABLE=ON)`);
  const vers = Object.entries(info.max).map(([k, v]) => `${k}_${v}`).join(' ') || 'none';
  const summary = `NEEDED ${info.needed.join(' ') || '-'}; ${info.runpath !== undefined ? `RUNPATH ${info.runpath}; ` : ''}highest versions ${vers}`;
  return { problems, summary, info };
}

/**
 * Checks <dir>/prebuilds. Returns { ok, lines } (lines: one per file, and each problem).
 * opts: { dir, arches, readme }
 */
function checkPrebuilds(opts = {}) {
  const dir = path.resolve(opts.dir || REPO);
  const arches = opts.arches || ARCHES;
  const readmeFile = opts.readme || (fs.existsSync(path.join(dir, 'README.md')) ? path.join(dir, 'README.md') : path.join(REPO, 'README.md'));
  const readme = fs.readFileSync(readmeFile, 'utf8');
  const lines = [];
  let ok = true;
  const fail = (what, msg) => {
    ok = false;
    lines.push(`FAIL ${what}: ${msg}`);
  };
  const wantHash = nativeSourceHash(dir);
  const wantBench = benchSourceHash(dir);

  for (const arch of arches) {
    const pdir = path.join(dir, 'prebuilds', `linux-${arch}`);
    const rel = (f) => path.relative(dir, f);
    const baseline = readmeBaseline(readme, arch);
    if (!baseline) {
      fail(`README (${readmeFile})`, `its platform table has no row "| \`linux-${arch}\` | ... glibc X.Y or newer ... libgcc_s (GCC X.Y or newer) ..."`);
      continue;
    }
    const addon = path.join(pdir, 'msgserver.node');
    if (!fs.existsSync(addon)) {
      fail(rel(addon), 'missing: run `npm run prebuilds`');
      continue;
    }
    // the files a prebuild directory may hold
    for (const e of fs.readdirSync(pdir, { withFileTypes: true })) {
      const okEntry = e.isDirectory() ? e.name === 'msgbench' : ['msgserver.node', BUNDLED].includes(e.name);
      if (!okEntry) fail(rel(path.join(pdir, e.name)), 'does not belong in a prebuild directory');
    }

    // msgserver.node
    const a = checkElf(addon, arch, baseline, { allowed: ALLOWED_NEEDED, expectRunpath: '$ORIGIN' });
    const bytes = fs.readFileSync(addon);
    if (!bytes.includes(Buffer.from(wantHash)))
      a.problems.push(`is stale: built from other native/ sources than these (hash ${wantHash.slice(0, 12)}): run \`npm run prebuilds\``);
    for (const p of a.problems) fail(rel(addon), p);
    lines.push(`${a.problems.length ? 'FAIL' : 'ok  '} ${rel(addon)} (${(bytes.length / 1024).toFixed(0)} KiB, sourceHash ${wantHash.slice(0, 12)}): ${a.summary}`);

    // the libevent it carries
    const lib = path.join(pdir, BUNDLED);
    if (a.info.needed.includes(BUNDLED)) {
      if (!fs.existsSync(lib)) {
        fail(rel(lib), `missing: ${rel(addon)} needs it and a fresh system does not have it`);
      } else {
        const l = checkElf(lib, arch, baseline, { allowed: GLIBC_LIBS });
        if (l.info.soname !== BUNDLED) l.problems.push(`its SONAME is ${l.info.soname}, not ${BUNDLED}`);
        for (const p of l.problems) fail(rel(lib), p);
        lines.push(`${l.problems.length ? 'FAIL' : 'ok  '} ${rel(lib)} (${(fs.statSync(lib).size / 1024).toFixed(0)} KiB): ${l.summary}`);
      }
    }

    // the bench engine, when the package has one
    const bench = path.join(pdir, 'msgbench', 'msgbench.node');
    if (fs.existsSync(bench)) {
      const b = checkElf(bench, arch, baseline, { allowed: [...GLIBC_LIBS, /^libgcc_s\.so\.1$/] });
      if (wantBench && !fs.readFileSync(bench).includes(Buffer.from(wantBench)))
        b.problems.push(`is stale: built from other bench/loadgen sources than these (hash ${wantBench.slice(0, 12)}): run \`npm run prebuilds\``);
      for (const p of b.problems) fail(rel(bench), p);
      const kib = `${(fs.statSync(bench).size / 1024).toFixed(0)} KiB`;
      lines.push(`${b.problems.length ? 'FAIL' : 'ok  '} ${rel(bench)} (${kib}, ${wantBench ? `sourceHash ${wantBench.slice(0, 12)}` : 'sources not in this tree: hash not checked'}): ${b.summary}`);
    } else if (wantBench) {
      fail(rel(bench), 'missing: bench/loadgen/ exists, run `npm run prebuilds`');
    }
  }
  return { ok, lines };
}

module.exports = { checkPrebuilds, nativeSourceHash, benchSourceHash, elfInfo, readmeBaseline, ALLOWED_NEEDED };

if (require.main === module) {
  const args = process.argv.slice(2);
  const opt = (name) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const arches = opt('--arch') ? opt('--arch').split(',') : undefined;
  try {
    const { ok, lines } = checkPrebuilds({ dir: opt('--dir'), arches, readme: opt('--readme') });
    for (const l of lines) console.log(`check-prebuilds: ${l}`);
    process.exitCode = ok ? 0 : 1;
  } catch (err) {
    console.error(`check-prebuilds: ${err.message}`);
    process.exitCode = 1;
  }
}
