#!/usr/bin/env node
// npm "install" step. Uses the prebuilt addon (prebuilds/<platform>-<arch>/)
// when it loads here; otherwise builds from source with cmake-js. A failed
// source build prints what is missing and how to install it, not the cmake
// output, which is saved to a log file instead.
//
//   npm_config_build_from_source=true (npm install --build-from-source)
//     skips the prebuild and always builds.
//   PREBUILDS_ONLY=1: node-gyp-build looks at prebuilds/ only.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const pkgName = require(path.join(root, 'package.json')).name;
const APT = 'apt-get install libevent-dev cmake g++ pkg-config';

// Loads the addon the way lib/native.ts does, in a child process (so a
// half-loaded addon never lives in this one). Returns null or the error.
function tryLoad() {
  const r = spawnSync(
    process.execPath,
    ['-e', 'require(require.resolve("node-gyp-build", { paths: [process.argv[1]] }))(process.argv[1])', root],
    { encoding: 'utf8', cwd: root },
  );
  if (r.status === 0) return null;
  const lines = (r.stderr || String(r.error || 'unknown error')).split('\n');
  return (lines.find((l) => /Error:/.test(l)) || lines[0] || '').trim();
}

function works(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

// What a source build needs that this machine lacks.
function missingTools() {
  const missing = [];
  if (!works('cmake', ['--version'])) missing.push('cmake');
  const cxx = process.env.CXX;
  if (cxx ? !works(cxx, ['--version']) : !['g++', 'c++', 'clang++'].some((c) => works(c, ['--version'])))
    missing.push(cxx ? `a C++ compiler (CXX=${cxx} does not run)` : 'a C++ compiler (g++)');
  const hasPkgConfig = works('pkg-config', ['--version']);
  if (!hasPkgConfig) missing.push('pkg-config');
  const hasHeaders = hasPkgConfig
    ? works('pkg-config', ['--exists', 'libevent_core'])
    : fs.existsSync('/usr/include/event2/event.h');
  if (!hasHeaders) missing.push("libevent's headers (libevent-dev)");
  return missing;
}

function installHint() {
  if (process.platform !== 'linux') return `${APT} on Linux: the native engine uses eventfd and runs on Linux only`;
  return `${APT}   (Debian/Ubuntu; on other systems the equivalent packages)`;
}

function buildFromSource(whyNoPrebuild) {
  const logFile = path.join(os.tmpdir(), `${pkgName}-build-${Date.now()}.log`);
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [cmakeJs, 'rebuild'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `$ cmake-js rebuild   (in ${root})\n${r.stdout || ''}${r.stderr || ''}${r.error ? `\n${r.error}` : ''}`;
  let saved = true;
  try {
    fs.writeFileSync(logFile, output);
  } catch {
    saved = false;
  }
  const loadErr = r.status === 0 ? tryLoad() : null;
  if (r.status === 0 && !loadErr) {
    console.log(`${pkgName}: built the native addon from source in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    return 0;
  }

  const lines = [`${pkgName}: could not build the native addon from source, and no prebuilt binary fits this machine (${process.platform}-${process.arch}).`];
  if (whyNoPrebuild && /No native build was found/.test(whyNoPrebuild)) {
    lines.push(`  This package has no prebuilt binary for ${process.platform}-${process.arch}.`);
  } else if (whyNoPrebuild) {
    lines.push(`  The prebuilt binary did not load: ${whyNoPrebuild}`);
  }
  if (whyNoPrebuild && /libevent[^ ]*\.so/.test(whyNoPrebuild)) {
    lines.push('  To use the prebuilt binary, the libevent runtime is enough: apt-get install libevent-2.1-7');
  }
  const missing = r.status === 0 ? [] : missingTools();
  if (missing.length) {
    lines.push(`  Missing: ${missing.join(', ')}.`);
    lines.push(`  Install them, then run npm install again:`);
    lines.push(`    ${installHint()}`);
  } else if (loadErr) {
    lines.push(`  The build finished but the addon does not load: ${loadErr}`);
  } else {
    const errs = output.split('\n').filter((l) => /error|Error|CMake Error/.test(l)).slice(0, 8);
    lines.push('  cmake, a compiler and libevent-dev are present, but the build failed:');
    for (const e of errs) lines.push(`    ${e.trim()}`);
    lines.push(`  It needs: ${installHint()}`);
  }
  lines.push(saved ? `  Full build log: ${logFile}` : `  (could not save the build log to ${logFile})`);
  console.error(lines.join('\n'));
  return 1;
}

function main() {
  const fromSource = process.env.npm_config_build_from_source;
  const forced = fromSource === 'true' || fromSource === pkgName;
  let why = null;
  if (!forced) {
    why = tryLoad();
    if (!why) return 0; // a prebuild (or an existing build) loads: nothing to do
  }
  return buildFromSource(why);
}

process.exitCode = main();
