#!/usr/bin/env node
// Builds every prebuilt binary the npm package ships, from the sources as they
// are now, and checks them:
//
//   prebuilds/linux-x64/msgserver.node            the addon (native build)
//   prebuilds/linux-x64/libevent_core-2.1.so.7    the libevent it loads ($ORIGIN)
//   prebuilds/linux-x64/msgbench/msgbench.node    the bench engine (bench/loadgen/)
//   prebuilds/linux-arm64/...                     the same, cross-compiled
//   THIRD_PARTY_NOTICES                           the licenses of what they carry
//
// Per architecture: scripts/prebuild-libevent.sh builds libevent_core from
// Debian 12's source package into a private sysroot (Debian's own binary needs
// glibc 2.36); cmake-js builds msgserver.node with -DMSGS_PORTABLE=ON (static
// libstdc++, $ORIGIN run path: CMakeLists.txt) and -DMSGS_BUILD_BENCH=OFF
// against that sysroot, then msgbench.node the same way; arm64 uses
// g++-aarch64-linux-gnu (cmake/aarch64-linux-gnu.cmake). Then:
//   - scripts/check-prebuilds.js: ELF machine, NEEDED, RUNPATH, the highest
//     GLIBC_/GCC_ symbol versions against the README's platform table, no
//     GLIBCXX_, and the source hashes embedded in the binaries;
//   - each addon loads (arm64: under qemu-aarch64-static with the official
//     arm64 Node, scripts/get-node.sh) and reports the expected sourceHash.
//
// Usage: npm run prebuilds [-- --arch x64|arm64]
// Needs (Debian 12): sh scripts/setup.sh --prebuilds installs all of it.
// Commit prebuilds/ and THIRD_PARTY_NOTICES afterwards; test/package.test.ts
// fails when they are stale.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const { checkPrebuilds, nativeSourceHash, benchSourceHash } = require('./check-prebuilds');

const root = path.join(__dirname, '..');
const work = path.join(root, 'build-prebuilds'); // build-*/ is git-ignored
const ARCHES = {
  x64: { triplet: 'x86_64-linux-gnu', cxx: 'g++', toolchain: null },
  arm64: { triplet: 'aarch64-linux-gnu', cxx: 'aarch64-linux-gnu-g++', toolchain: path.join(root, 'cmake', 'aarch64-linux-gnu.cmake') },
};
const ARM64_NODE_MAJOR = '24';

function fail(msg) {
  console.error(`prebuild: ${msg}`);
  process.exit(1);
}
const say = (msg) => console.log(`prebuild: ${msg}`);
const has = (cmd, args = ['--version']) => {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return !r.error && r.status === 0;
};

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${path.basename(cmd)} ${args.slice(0, 3).join(' ')} ... failed (exit ${r.status ?? r.signal})`);
}

// Everything the build needs, checked up front: one message naming the packages.
function prerequisites(arches) {
  const missing = new Set();
  if (process.platform !== 'linux' || process.arch !== 'x64') fail('prebuilds are built on linux-x64 (the arm64 one cross-compiled)');
  if (!has('cmake')) missing.add('cmake');
  if (!has('g++')) missing.add('g++');
  if (!has('gcc')) missing.add('gcc');
  if (!has('make')) missing.add('make');
  if (!has('pkg-config')) missing.add('pkg-config');
  if (!has('dpkg-source')) missing.add('dpkg-dev');
  if (!has('readelf') || !has('objdump')) missing.add('binutils');
  if (!fs.existsSync('/usr/include/nats/nats.h')) missing.add('libnats-dev'); // the JetStream sink is part of every prebuild
  if (arches.includes('arm64')) {
    if (!has('aarch64-linux-gnu-g++')) missing.add('g++-aarch64-linux-gnu');
    if (!has('qemu-aarch64-static')) missing.add('qemu-user-static');
    if (!fs.existsSync('/lib/ld-linux-aarch64.so.1')) missing.add('libc6:arm64');
    if (!fs.existsSync('/usr/lib/aarch64-linux-gnu/libstdc++.so.6')) missing.add('libstdc++6:arm64');
  }
  let cmakeJs;
  try {
    cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  } catch {
    fail('cmake-js is not installed: npm install (it is a devDependency)');
  }
  if (missing.size) {
    const list = [...missing];
    const foreign = list.some((p) => p.endsWith(':arm64')) ? 'dpkg --add-architecture arm64 && apt-get update && ' : '';
    fail(`missing: ${list.join(', ')}.\n  Install them: sh scripts/setup.sh --prebuilds\n  (or: ${foreign}apt-get install ${list.join(' ')})`);
  }
  return cmakeJs;
}

/** The private libevent sysroot for one architecture (cached; see prebuild-libevent.sh). */
function libevent(arch) {
  const out = path.join(work, `libevent-${arch}`);
  run('bash', [path.join(__dirname, 'prebuild-libevent.sh'), arch, out]);
  return out;
}

/** cmake-js rebuild of one target into build-prebuilds/<arch>-<name>; returns the .node path. */
function buildModule(cmakeJs, arch, sysroot, name, defs) {
  const a = ARCHES[arch];
  const out = path.join(work, `${arch}-${name}`);
  const args = ['rebuild', '--log-level', 'warn', '--out', out, '--arch', arch, '--CDMSGS_PORTABLE=ON', ...defs.map((d) => `--CD${d}`)];
  if (a.toolchain) args.push(`--CDCMAKE_TOOLCHAIN_FILE=${a.toolchain}`);
  if (name !== 'msgserver') args.push('--target', name);
  const env = { ...process.env, PKG_CONFIG_LIBDIR: path.join(sysroot, 'lib', 'pkgconfig') };
  delete env.PKG_CONFIG_PATH;
  delete env.PKG_CONFIG_SYSROOT_DIR;
  say(`${arch}: cmake-js ${args.join(' ')}`);
  run(process.execPath, [cmakeJs, ...args], { env });
  // msgbench.node is built into a directory of its own (Release/msgbench/)
  const built = [path.join(out, 'Release', `${name}.node`), path.join(out, 'Release', name, `${name}.node`)].find((f) => fs.existsSync(f));
  if (!built) fail(`${arch}: the build made no ${path.relative(root, path.join(out, 'Release'))}/**/${name}.node`);
  return built;
}

/** Runs `node -e code file` for the prebuild's architecture; returns stdout. */
function nodeFor(arch) {
  if (arch === 'x64') return [process.execPath];
  const r = spawnSync('bash', [path.join(__dirname, 'get-node.sh'), 'arm64', ARM64_NODE_MAJOR], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) fail('cannot get the arm64 Node (scripts/get-node.sh arm64 24)');
  // no -L: the multiarch libc6:arm64 is found through /lib/ld-linux-aarch64.so.1 (see ../shared/toolchain.md)
  return ['qemu-aarch64-static', r.stdout.trim()];
}

function probe(arch, file) {
  const [cmd, ...pre] = nodeFor(arch);
  const code =
    'const a = require(process.argv[1]);' +
    'process.stdout.write(JSON.stringify({ sourceHash: a.sourceHash, jetstream: typeof a.jetstreamAvailability === "function" ? a.jetstreamAvailability() : undefined, arch: process.arch, node: process.version }))';
  const r = spawnSync(cmd, [...pre, '-e', code, file], { encoding: 'utf8', env: { ...process.env, LD_LIBRARY_PATH: '' } });
  if (r.status !== 0) fail(`${path.relative(root, file)} does not load on ${arch}:\n${r.stderr || r.error}`);
  return JSON.parse(r.stdout);
}

// THIRD_PARTY_NOTICES: what the prebuilds carry, with the license texts.
function writeNotices(sysroots) {
  const versions = [...new Set(Object.values(sysroots).map((s) => fs.readFileSync(path.join(s, 'VERSION'), 'utf8').trim()))];
  const copyright = fs.readFileSync(path.join(Object.values(sysroots)[0], 'copyright'), 'utf8');
  const naa = path.dirname(require.resolve('node-addon-api/package.json', { paths: [root] }));
  const naaVersion = require(path.join(naa, 'package.json')).version;
  const naaLicense = fs.readFileSync(path.join(naa, 'LICENSE.md'), 'utf8');
  const text = `Third-party software in the msgserver npm package
===================================================

msgserver itself is under the MIT license (LICENSE). The prebuilt binaries in
prebuilds/ (written by scripts/prebuild.js) contain or come with the following.

1. libevent 2.1.12-stable: prebuilds/linux-*/libevent_core-2.1.so.7
   Built from Debian's source package libevent ${versions.join(', ')}
   (Debian 12 with its security updates) by scripts/prebuild-libevent.sh,
   unmodified except that it uses libevent's own arc4random instead of
   glibc's. Source: https://libevent.org/ and
   https://sources.debian.org/src/libevent/
   Its license (BSD-3-Clause, with the other notices of its files) follows,
   as Debian's copyright file states it.

${copyright.trimEnd()}

-------------------------------------------------------------------------------

2. The GCC runtime libraries (libstdc++, libgcc): parts of them are linked
   into prebuilds/linux-*/*.node. They are under the GNU General Public
   License version 3 with the GCC Runtime Library Exception 3.1, which allows
   distributing the resulting binaries under terms of our choice
   (https://www.gnu.org/licenses/gcc-exception-3.1.html).

-------------------------------------------------------------------------------

3. node-addon-api ${naaVersion} (header-only C++ wrapper of Node-API), compiled into
   prebuilds/linux-*/*.node. https://github.com/nodejs/node-addon-api

${naaLicense.trimEnd()}
`;
  fs.writeFileSync(path.join(root, 'THIRD_PARTY_NOTICES'), text);
}

function main() {
  const args = process.argv.slice(2);
  const i = args.indexOf('--arch');
  const arches = i >= 0 ? args[i + 1].split(',') : Object.keys(ARCHES);
  for (const a of arches) if (!ARCHES[a]) fail(`unknown architecture ${a} (${Object.keys(ARCHES).join(', ')})`);
  const cmakeJs = prerequisites(arches);
  const withBench = fs.existsSync(path.join(root, 'bench', 'loadgen'));
  const t0 = Date.now();
  const wantHash = nativeSourceHash(root);
  const wantBench = withBench ? benchSourceHash(root) : null;
  const sysroots = {};

  for (const arch of arches) {
    const ta = Date.now();
    const sysroot = (sysroots[arch] = libevent(arch));
    const addon = buildModule(cmakeJs, arch, sysroot, 'msgserver', ['MSGS_BUILD_BENCH=OFF']);
    const bench = withBench ? buildModule(cmakeJs, arch, sysroot, 'msgbench', ['MSGS_BUILD_BENCH=ON']) : null;

    const dir = path.join(root, 'prebuilds', `linux-${arch}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(addon, path.join(dir, 'msgserver.node'));
    fs.copyFileSync(path.join(sysroot, 'lib', 'libevent_core-2.1.so.7'), path.join(dir, 'libevent_core-2.1.so.7'));
    if (bench) {
      fs.mkdirSync(path.join(dir, 'msgbench'));
      fs.copyFileSync(bench, path.join(dir, 'msgbench', 'msgbench.node'));
    }

    // it loads where it will be installed, and says it was built from these sources
    const p = probe(arch, path.join(dir, 'msgserver.node'));
    if (p.sourceHash !== wantHash) fail(`linux-${arch}/msgserver.node reports sourceHash ${p.sourceHash}, native/ hashes to ${wantHash}`);
    say(`linux-${arch}/msgserver.node loads on ${p.arch} Node ${p.node}: sourceHash ${wantHash.slice(0, 12)} ok, jetstream: ${p.jetstream}`);
    if (bench) {
      const b = probe(arch, path.join(dir, 'msgbench', 'msgbench.node'));
      if (b.sourceHash !== wantBench) fail(`linux-${arch}/msgbench/msgbench.node reports sourceHash ${b.sourceHash}, bench sources hash to ${wantBench}`);
      say(`linux-${arch}/msgbench/msgbench.node loads on ${b.arch}: sourceHash ${wantBench.slice(0, 12)} ok`);
    }
    say(`linux-${arch} built in ${((Date.now() - ta) / 1000).toFixed(0)} s`);
  }
  if (!withBench) say('bench/loadgen/ does not exist: no msgbench.node built');

  writeNotices(sysroots);
  const { ok, lines } = checkPrebuilds({ dir: root, arches });
  for (const l of lines) console.log(`prebuild: ${l}`);
  if (!ok) fail('the checks above failed');
  say(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s: commit prebuilds/ and THIRD_PARTY_NOTICES`);
}

if (require.main === module) main();
