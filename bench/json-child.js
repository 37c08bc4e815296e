// Runs a benchmark child (msgbench --json, the direct publisher) and resolves
// with the `result` of the JSON it prints; rejects naming the command and
// what it said when it fails, prints no JSON, or outlives timeoutMs.
'use strict';
const { spawn } = require('node:child_process');

function runJsonChild(label, file, args, { cwd, timeoutMs }) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out).result);
      } catch {
        reject(new Error(`${label} failed (exit ${code}): ${err.trim() || out.trim()}`));
      }
    });
  });
}

module.exports = { runJsonChild };
