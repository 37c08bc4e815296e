// One server process of a benchmark row (msgserver host, a ceiling, the Node
// baseline): started with a raised descriptor limit, ready when it prints
// "listening on HOST:PORT".
//
//   const p = new ServerProc('ceiling', [bin, '--port', '0']);
//   await p.start();          // the port; rejects if it exits or is silent for 20 s
//   await p.stats();          // msgserver host only: its JSON stats line, or null once it has died
//   p.cpuSeconds();           // user + system CPU of the process (all threads), from /proc/<pid>/stat
//   p.threadCpuSeconds('msgs-') // the same for its threads whose name starts so (the engine's)
//   p.died                    // null, or why it exited while it was expected to run
//   await p.stop();           // SIGINT, then SIGKILL after 15 s
//
// A server that dies after listening must not hang the bench: every stats()
// waiting for an answer is resolved with null when the process exits, and
// later ones resolve at once.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const readline = require('node:readline');

// Servers run with a raised descriptor limit (10,000-connection bursts).
const WRAP = ['sh', '-c', 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"', 'sh'];
const TICK = 100; // USER_HZ on Linux

// Servers still running, killed if the bench itself is interrupted.
const live = new Set();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const p of live) p.kill('SIGKILL');
    process.exit(130);
  });
}

/** CPU seconds (utime + stime) of a process so far, or NaN when it is gone. */
function cpuSecondsOf(pid) {
  try {
    // Fields after the ")" of comm: state is field 3; utime, stime are 14 and 15.
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICK;
  } catch {
    return NaN;
  }
}

/** CPU seconds of the process's threads whose name starts with `prefix` (e.g. 'msgs-': the engine's). */
function threadCpuSecondsOf(pid, prefix) {
  let sum = 0;
  try {
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      const s = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const name = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
      if (!name.startsWith(prefix)) continue;
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      sum += Number(f[11]) + Number(f[12]);
    }
  } catch {
    return NaN;
  }
  return sum / TICK;
}

class ServerProc {
  constructor(name, cmd, { cwd, env, startTimeoutMs = 20000 } = {}) {
    this.name = name;
    this.env = env;
    this.cmd = cmd;
    this.cwd = cwd;
    this.startTimeoutMs = startTimeoutMs;
    this.port = 0;
    this.stderr = '';
    this.waiters = [];
    this.died = null;
    this.stopping = false;
  }
  start() {
    return new Promise((resolve, reject) => {
      const child = spawn(WRAP[0], [...WRAP.slice(1), ...this.cmd], { cwd: this.cwd, env: this.env ? { ...process.env, ...this.env } : process.env, stdio: ['pipe', 'pipe', 'pipe'] });
      this.child = child;
      live.add(child);
      child.stdin.on('error', () => {}); // EPIPE after it died: seen through 'exit'
      const timer = setTimeout(() => reject(new Error(`${this.name} did not start in ${this.startTimeoutMs / 1000} s: ${this.stderr}`)), this.startTimeoutMs);
      child.stderr.on('data', (d) => {
        this.stderr = (this.stderr + d).slice(-4000);
      });
      this.exited = new Promise((res) => child.on('exit', (code, sig) => res({ code, sig })));
      this.exited.then(({ code, sig }) => {
        live.delete(child);
        clearTimeout(timer);
        if (!this.stopping) this.died = `${this.name} exited (${code ?? sig})${this.port ? ' after listening' : ' before listening'}: ${this.stderr.trim()}`;
        reject(new Error(this.died || `${this.name} stopped`));
        // Nobody waits for an answer a dead process cannot give.
        for (const w of this.waiters.splice(0)) w(null);
      });
      readline.createInterface({ input: child.stdout }).on('line', (line) => {
        const m = /listening on (\S+):(\d+)/.exec(line);
        if (m && !this.port) {
          this.port = Number(m[2]);
          clearTimeout(timer);
          resolve(this.port);
        } else if (line.startsWith('{')) {
          const w = this.waiters.shift();
          if (w) w(JSON.parse(line));
        }
      });
    });
  }
  get alive() {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }
  /** msgserver host only: its stats line ({stats, rssBytes, cpuUs}), or null when the process has exited. */
  stats() {
    if (!this.alive) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.child.stdin.write('stats\n');
    });
  }
  cpuSeconds() {
    return this.child ? cpuSecondsOf(this.child.pid) : NaN;
  }
  /** CPU seconds of its threads named prefix* (threads that exited are not counted). */
  threadCpuSeconds(prefix) {
    return this.child ? threadCpuSecondsOf(this.child.pid, prefix) : NaN;
  }
  async stop() {
    if (!this.alive) return;
    this.stopping = true;
    this.child.kill('SIGINT');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 15000);
    await this.exited;
    clearTimeout(t);
  }
}

module.exports = { ServerProc, WRAP, cpuSecondsOf, threadCpuSecondsOf };
