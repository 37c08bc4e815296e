#!/usr/bin/env node
// npm "install" step. Uses the prebuilt addon (prebuilds/<platform>-<arch>/)
// when it loads here; otherwise builds from source with cmake-js. A failed
// source build prints what is missing and how to install it, not the cmake
// output, which is saved to a log file instead.
//
// cmake-js and node-addon-api are devDependencies, not dependencies: most
// installs use the prebuild and never need them (npm 11.19+ does not even run
// this script for a dependency until the project approves it). When a source
// build is needed and they are missing, this says what to install.
//
//   npm_config_build_from_source=true (npm rebuild --build-from-source)
//     skips the prebuild and always builds.
//   PREBUILDS_ONLY=1: node-gyp-build looks at prebuilds/ only.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const pkg = require(path.join(root, 'package.json'));
const pkgName = pkg.name;
const APT = 'apt-get install libevent-dev cmake g++ pkg-config libssl-dev';
// the npm packages a source build needs (devDependencies of this package)
const BUILD_PACKAGES = ['cmake-js', 'node-addon-api'];

// Loads the addon the way lib/server/native.ts does, in a child process (so a
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
  // OpenSSL 3's headers only: the addon uses Node's own OpenSSL, never links libssl.
  if (!fs.existsSync('/usr/include/openssl/ssl.h')) missing.push("OpenSSL's headers (libssl-dev)");
  return missing;
}

function installHint() {
  if (process.platform !== 'linux') return `${APT} on Linux: the native engine uses eventfd and runs on Linux only`;
  return `${APT}   (Debian/Ubuntu; on other systems the equivalent packages)`;
}

function resolveFrom(request) {
  try {
    return require.resolve(request, { paths: [root] });
  } catch {
    return null;
  }
}

function whyNoPrebuildLines(whyNoPrebuild) {
  if (whyNoPrebuild && /No native build was found/.test(whyNoPrebuild))
    return [`  This package has no prebuilt binary for ${process.platform}-${process.arch}.`];
  if (whyNoPrebuild) return [`  The prebuilt binary did not load: ${whyNoPrebuild}`];
  return [];
}

function buildFromSource(whyNoPrebuild) {
  const logFile = path.join(os.tmpdir(), `${pkgName}-build-${Date.now()}.log`);
  const cmakeJs = resolveFrom('cmake-js/bin/cmake-js');
  const missingNpm = BUILD_PACKAGES.filter((p) => !resolveFrom(`${p}/package.json`));
  if (missingNpm.length) {
    const specs = missingNpm.map((p) => `${p}@${(pkg.devDependencies || {})[p] || 'latest'}`);
    const lines = [
      `${pkgName}: building the native addon from source needs ${missingNpm.join(' and ')}, which ${missingNpm.length > 1 ? 'are' : 'is'} not installed.`,
      ...whyNoPrebuildLines(whyNoPrebuild),
      `  They are not dependencies of ${pkgName} (most installs use the prebuilt binary). In your project:`,
      `    npm install --save-dev ${specs.join(' ')}`,
      `  then npm install (or npm rebuild ${pkgName}) again. The build also needs the system packages:`,
      `    ${installHint()}`,
    ];
    console.error(lines.join('\n'));
    return 1;
  }
  // the bench engine's sources are in the repository, not always in the package
  const args = ['rebuild'];
  if (!fs.existsSync(path.join(root, 'bench', 'loadgen'))) args.push('--CDMSGS_BUILD_BENCH=OFF');
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [cmakeJs, ...args], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `$ cmake-js ${args.join(' ')}   (in ${root})\n${r.stdout || ''}${r.stderr || ''}${r.error ? `\n${r.error}` : ''}`;
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
  lines.push(...whyNoPrebuildLines(whyNoPrebuild));
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
