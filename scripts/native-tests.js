#!/usr/bin/env node
// Builds and runs the native unit tests (test/native/test_*.cc) with CMake.
// Usage: node scripts/native-tests.js [asan|tsan]
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const sanitize = process.argv[2] || '';
const dir = path.join(root, sanitize ? `build-tests-${sanitize}` : 'build-tests');
const hasNinja = spawnSync('ninja', ['--version']).status === 0;

const configure = ['-S', root, '-B', dir, '-DMSGS_BUILD_TESTS=ON', `-DMSGS_SANITIZE=${sanitize}`];
if (hasNinja && !fs.existsSync(path.join(dir, 'CMakeCache.txt'))) configure.push('-G', 'Ninja');
execFileSync('cmake', configure, { stdio: ['ignore', 'ignore', 'inherit'] });
execFileSync('cmake', ['--build', dir, '--parallel', '2'], { stdio: 'inherit' });

const tests = ['test_crc32c', 'test_codec', 'test_record', 'test_mpsc_queue'];
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
