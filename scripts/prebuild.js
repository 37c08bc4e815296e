#!/usr/bin/env node
// Builds the prebuilt addon shipped in the npm package:
//   prebuilds/<platform>-<arch>/msgserver.node
// `prebuildify --napi --strip` drives the build; prebuildify only knows
// node-gyp, so scripts/cmake-js-shim.js stands in for it and runs
// `cmake-js rebuild`. Then the result is checked: it loads, its embedded
// sourceHash matches native/, and (Linux) its NEEDED entries are only glibc,
// libstdc++, libgcc_s and libevent_core.
//
// Usage: npm run prebuilds            (needs the devDependency prebuildify)
// Commit prebuilds/ afterwards; test/package.test.ts fails when it is stale.
'use strict';
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const shim = path.join(__dirname, 'cmake-js-shim.js');
const pkg = require(path.join(root, 'package.json'));
const target = `${process.platform}-${process.arch}`;
const out = path.join(root, 'prebuilds', target, `${pkg.name}.node`);

// libraries a Linux prebuild may need (see README "Install")
const ALLOWED_NEEDED = [
  /^libc\.so\.6$/,
  /^libm\.so\.6$/,
  /^libgcc_s\.so\.1$/,
  /^libstdc\+\+\.so\.6$/,
  /^libpthread\.so\.0$/,
  /^libevent_core-2\.1\.so\.7$/,
];

/** The hash CMakeLists.txt embeds as MSGS_SOURCE_HASH (the addon's sourceHash). */
function sourceHash(dir = path.join(root, 'native')) {
  const names = fs.readdirSync(dir).filter((n) => /\.(cc|h)$/.test(n)).sort();
  const input = names
    .map((n) => `${n}:${crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, n))).digest('hex')}\n`)
    .join('');
  return crypto.createHash('sha256').update(input).digest('hex');
}

function fail(msg) {
  console.error(`prebuild: ${msg}`);
  process.exit(1);
}

function main() {
  let prebuildifyBin;
  try {
    prebuildifyBin = require.resolve('prebuildify/bin.js', { paths: [root] });
  } catch {
    fail('prebuildify is not installed: npm install (it is a devDependency)');
  }
  try {
    fs.chmodSync(shim, 0o755); // prebuildify spawns it directly
  } catch {}

  const t0 = Date.now();
  fs.rmSync(out, { force: true });
  const r = spawnSync(process.execPath, [prebuildifyBin, '--napi', '--strip', '--node-gyp', shim], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) fail(`prebuildify failed (exit ${r.status ?? r.signal})`);
  if (!fs.existsSync(out)) fail(`prebuildify finished but ${path.relative(root, out)} is missing`);

  // It loads, and it was built from the native/ sources as they are now.
  const probe = spawnSync(
    process.execPath,
    ['-e', 'process.stdout.write(require(process.argv[1]).sourceHash)', out],
    { encoding: 'utf8' },
  );
  if (probe.status !== 0) fail(`the prebuild does not load:\n${probe.stderr}`);
  const want = sourceHash();
  if (probe.stdout !== want) fail(`the prebuild's sourceHash ${probe.stdout} != native/ hash ${want}`);

  if (process.platform === 'linux') {
    const re = spawnSync('readelf', ['-d', '-W', out], { encoding: 'utf8' });
    if (re.status !== 0) {
      console.warn('prebuild: readelf not available; NEEDED entries not checked');
    } else {
      const needed = [...re.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
      const extra = needed.filter((n) => !ALLOWED_NEEDED.some((a) => a.test(n)));
      if (extra.length) fail(`the prebuild needs libraries users may not have: ${extra.join(', ')}`);
      console.log(`prebuild: NEEDED ${needed.join(', ')}`);
    }
    const od = spawnSync('objdump', ['-T', out], { encoding: 'utf8' });
    if (od.status === 0) {
      const vers = [...od.stdout.matchAll(/GLIBC_(\d+(?:\.\d+)*)/g)].map((m) => m[1]);
      const max = vers.sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).pop();
      if (max) console.log(`prebuild: needs glibc >= ${max}`);
    }
  }
  const size = fs.statSync(out).size;
  console.log(
    `prebuild: ${path.relative(root, out)} (${(size / 1024).toFixed(0)} KiB, sourceHash ${want.slice(0, 12)}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
}

module.exports = { sourceHash, ALLOWED_NEEDED };
if (require.main === module) main();
