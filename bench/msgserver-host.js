#!/usr/bin/env node
// Runs a MessageServer (the built package, dist/) in its own process for the
// benchmarks: bench/run.js starts one per row, with the options as JSON:
//
//   node bench/msgserver-host.js '{"port":0,"ackMode":"written","file":{"path":"/tmp/x/m.log"}}'
//
// Prints "msgserver listening on HOST:PORT" when bound. Each "stats" line on
// stdin is answered with one JSON line {stats, rssBytes, cpuUs} (cpuUs: the
// process's user + system CPU time so far, every thread). SIGINT, SIGTERM or
// the end of stdin close the server (drain, flush, fsync) and exit.
// With --check it only constructs the server (no listen) and exits 0, or 3
// printing the error, e.g. for a protocol this build does not support yet.
'use strict';
const path = require('node:path');
const readline = require('node:readline');

const { MessageServer } = require(path.join(__dirname, '..', 'dist', 'index.js'));

const args = process.argv.slice(2);
const check = args[0] === '--check';
const { benchHook, ...opts } = JSON.parse((check ? args[1] : args[0]) ?? '{}');

let server;
try {
  server = new MessageServer(opts);
} catch (err) {
  process.stdout.write(`msgserver-host: ${err.message}\n`);
  process.exit(3);
}
if (check) process.exit(0);
// benchHook: 'drop' | 'block' installs a no-op message hook (its cost is a bench row).
if (benchHook) server.onMessages(() => {}, { policy: benchHook });

server.on('log', (e) => {
  if (e.level !== 'info') process.stderr.write(`msgserver: ${e.level}: ${e.message}\n`);
});
server.on('error', (err) => process.stderr.write(`msgserver: error: ${err.message}\n`));

let closing = null;
function close() {
  if (!closing) {
    closing = server.close({ timeoutMs: 5000 }).then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`msgserver-host: close failed: ${err.message}\n`);
        process.exit(1);
      },
    );
  }
  return closing;
}

server.listen().then(
  (a) => {
    process.stdout.write(`msgserver listening on ${a.host}:${a.port}\n`);
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', (line) => {
      if (line.trim() === 'stats') {
        const cpu = process.cpuUsage();
        // stats() holds bigints (lastSeq): as numbers, for JSON.
        const stats = JSON.stringify({ stats: server.stats(), rssBytes: process.memoryUsage().rss, cpuUs: cpu.user + cpu.system }, (_, v) => (typeof v === 'bigint' ? Number(v) : v));
        process.stdout.write(stats + '\n');
      }
    });
    rl.on('close', close);
  },
  (err) => {
    process.stderr.write(`msgserver-host: cannot listen: ${err.message}\n`);
    process.exit(1);
  },
);
process.on('SIGINT', close);
process.on('SIGTERM', close);
