#!/usr/bin/env node
// Builds the addon and the native unit tests under a sanitizer and runs them,
// plus the end-to-end, bad-input and lifecycle tests against that addon.
// Usage: node scripts/sanitize.js asan|tsan
//   asan: AddressSanitizer + UndefinedBehaviorSanitizer (errors abort)
//   tsan: ThreadSanitizer (any report fails the run)
// Node itself is not instrumented, so the sanitizer runtime is preloaded.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const kind = process.argv[2];
if (kind !== 'asan' && kind !== 'tsan') {
  console.error('usage: node scripts/sanitize.js asan|tsan');
  process.exit(2);
}
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });

run(process.execPath, [path.join(__dirname, 'native-tests.js'), kind]);

const out = `build-${kind}`;
const cmakeJs = path.join(root, 'node_modules', '.bin', 'cmake-js');
run(cmakeJs, ['rebuild', '--out', out, `--CDMSGS_SANITIZE=${kind}`, '--CDCMAKE_BUILD_TYPE=RelWithDebInfo'], {
  stdio: ['ignore', 'ignore', 'inherit'],
});

const runtime = execFileSync('g++', [`-print-file-name=lib${kind}.so`]).toString().trim();
const env = {
  ...process.env,
  MSGSERVER_ADDON: path.join(root, out, 'Release', 'msgserver.node'),
  LD_PRELOAD: runtime,
  // Node's own allocations are not ours to judge; our code's errors abort.
  ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1:halt_on_error=1',
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
  TSAN_OPTIONS: `halt_on_error=1:second_deadlock_stack=1:suppressions=${path.join(root, 'test', 'tsan.supp')}`,
  MSGS_E2E_PER_CLIENT: kind === 'tsan' ? '1000' : '5000',
  MSGS_STORM_SECONDS: '10',
  // ASan keeps freed memory in its quarantine: RSS is not the server's here.
  MSGS_RSS_SLACK_MIB: kind === 'asan' ? '1024' : '128',
};
// End to end, hostile input, lifecycle, legacy, hooks and events, limits,
// durability and disk faults (their server children inherit the sanitized
// addon; the fault shim is preloaded after the sanitizer runtime), the storm
// and the JetStream sink (against a real nats-server, which skips when it is
// missing): readiness, retries through leader kills and pauses, and TLS (with
// libnats's own libssl loaded beside Node's OpenSSL); TLS on the ingest port,
// authentication and the partial-frame budget.
const suites = ['e2e', 'bad-input', 'lifecycle', 'legacy', 'hooks', 'limits', 'durability', 'io-faults', 'loop-faults', 'storm', 'jetstream',
  'jetstream-ready', 'jetstream-failover', 'jetstream-tls', 'tls', 'auth', 'partial-frame'];
const tests = suites.map((t) => path.join(root, 'dist-test', `${t}.test.js`));
// A test that never finishes (a server left open keeps its file's process
// alive) fails the stage after this long instead of holding CI; the suites
// take about 7 minutes under either sanitizer.
const STAGE_TIMEOUT_MS = 25 * 60 * 1000;
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...tests], {
  stdio: 'inherit',
  env,
  cwd: root,
  timeout: STAGE_TIMEOUT_MS,
  killSignal: 'SIGKILL',
});
if (r.error || r.signal) {
  console.error(`sanitize(${kind}): the suites did not finish within ${STAGE_TIMEOUT_MS / 60000} min (${r.error ? r.error.message : r.signal}): a test hung`);
}
process.exit(r.status ?? 1);
