#!/usr/bin/env node
// Builds and runs the native unit tests (test/native/test_*.cc) with CMake.
// Usage: node scripts/native-tests.js [asan|tsan]
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const sanitize = process.argv[2] || '';
// MSGS_NATIVE_TESTS_DIR: another build directory (CI's build without the NATS headers uses one).
const dir = path.join(root, process.env.MSGS_NATIVE_TESTS_DIR || (sanitize ? `build-tests-${sanitize}` : 'build-tests'));
const hasNinja = spawnSync('ninja', ['--version']).status === 0;

const configure = ['-S', root, '-B', dir, '-DMSGS_BUILD_TESTS=ON', `-DMSGS_SANITIZE=${sanitize}`];
if (hasNinja && !fs.existsSync(path.join(dir, 'CMakeCache.txt'))) configure.push('-G', 'Ninja');
// What the build needs, checked first: a missing tool ends in one message
// naming the package, not in a stack trace.
const works = (cmd, args = ['--version']) => {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return !r.error && r.status === 0;
};
const missing = [];
if (!works('cmake')) missing.push('cmake');
if (!['c++', 'g++', 'clang++'].some((c) => works(c))) missing.push('g++');
const hasPkgConfig = works('pkg-config');
if (!hasPkgConfig) missing.push('pkg-config');
if (hasPkgConfig ? !works('pkg-config', ['--exists', 'libevent_core']) : !fs.existsSync('/usr/include/event2/event.h'))
  missing.push('libevent-dev');
if (!fs.existsSync('/usr/include/openssl/ssl.h')) missing.push('libssl-dev');
if (missing.length) {
  console.error(
    `native tests: missing ${missing.join(', ')}. Install the build packages: sh scripts/setup.sh ` +
      `(or: apt-get install ${missing.join(' ')})`,
  );
  process.exit(1);
}
function run(args, stdio, what) {
  try {
    execFileSync('cmake', args, { stdio });
  } catch (err) {
    console.error(`native tests: ${what} failed (${err.status != null ? `exit ${err.status}` : err.message}); the output is above`);
    process.exit(1);
  }
}
run(configure, ['ignore', 'ignore', 'inherit'], `cmake configure of ${path.relative(root, dir)}`);
run(['--build', dir, '--parallel', '2'], 'inherit', 'the native test build');

const tests = ['test_crc32c', 'test_codec', 'test_record', 'test_mpsc_queue', 'test_spin_wait', 'test_event_pass', 'test_pub_ack', 'test_log_file', 'test_auth'];
const env = { ...process.env, TSAN_OPTIONS: 'halt_on_error=1', UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1' };
let failed = 0;
for (const t of tests) {
  const r = spawnSync(path.join(dir, t), { stdio: 'inherit', env });
  if (r.status !== 0) {
    failed++;
    console.error(`${t} failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''})`);
  }
}
if (failed) process.exit(1);
