// Throwaway nats-server processes for the JetStream rows of bench/run.js:
// one node, or an n-node cluster on loopback, each with JetStream on and its
// store in a temp dir. Self-contained (no dist-test/): the same approach as
// test/support/nats-cluster.ts, reduced to what the bench needs.
//
//   const nats = require('./nats');
//   const bin = nats.findNatsServer();          // null when not installed
//   const c = await nats.start({ nodes: 3 });   // resolves once JetStream is ready
//   c.urls  -> ['nats://127.0.0.1:<port>', ...]
//   c.cpuSeconds() -> CPU time (user + system) the nodes have used so far
//   await c.stop();                             // SIGTERM, wait, remove the temp dir
//
// Readiness: every node's monitoring port answers /healthz with 200 (plain
// /healthz stays 503 until a clustered node is current with the meta leader);
// for a cluster, every node's /jsz also names the same meta leader.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

function isExecutable(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/**
 * nats-server on PATH, else in the sbin dirs (Debian installs it as
 * /usr/sbin/nats-server); null if absent. MSGBENCH_NATS_SERVER=<path> names
 * it instead (a path that is not an executable: as if not installed).
 */
function findNatsServer() {
  const forced = process.env.MSGBENCH_NATS_SERVER;
  if (forced !== undefined) return isExecutable(forced) ? forced : null;
  const dirs = [...(process.env.PATH || '').split(path.delimiter).filter(Boolean), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const d of dirs) {
    const p = path.join(d, 'nats-server');
    if (isExecutable(p)) return p;
  }
  return null;
}

/** n distinct free loopback ports (all held until every one is known). */
async function freePorts(n) {
  const servers = [];
  try {
    const ports = [];
    for (let i = 0; i < n; i++) {
      const srv = net.createServer();
      servers.push(srv);
      await new Promise((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', resolve);
      });
      ports.push(srv.address().port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(() => r()))));
  }
}

async function getJson(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
  const text = await res.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every process started here, SIGKILLed if the bench exits without stopping it.
const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
});

function cpuTicks(pid) {
  try {
    // Fields after the ")" of comm: state is field 3; utime, stime are 14, 15.
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}
const TICK = 100; // USER_HZ on Linux

/**
 * Starts `nodes` nats-server processes (a cluster when nodes > 1) and waits
 * until JetStream is ready on all of them. Rejects (after stopping them) with
 * the log tails when that takes longer than timeoutMs.
 */
async function start({ nodes = 1, bin = findNatsServer(), timeoutMs = 30000, name = 'msgbench' } = {}) {
  if (!bin) throw new Error('nats-server not found (PATH, /usr/sbin)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msgbench-nats-'));
  const ports = await freePorts(3 * nodes);
  const ns = Array.from({ length: nodes }, (_, i) => ({
    name: `${name}-n${i}`,
    client: ports[3 * i],
    route: ports[3 * i + 1],
    http: ports[3 * i + 2],
    conf: path.join(dir, `n${i}.conf`),
    log: path.join(dir, `n${i}.log`),
    proc: null,
  }));
  for (const [i, n] of ns.entries()) {
    const store = path.join(dir, `n${i}`);
    fs.mkdirSync(store);
    const lines = [
      `server_name: ${JSON.stringify(n.name)}`,
      `listen: "127.0.0.1:${n.client}"`,
      `http: "127.0.0.1:${n.http}"`,
      `jetstream { store_dir: ${JSON.stringify(store)}, max_memory_store: 64MB, max_file_store: 32GB }`,
    ];
    if (nodes > 1) {
      lines.push(
        `cluster { name: ${JSON.stringify(name)}, listen: "127.0.0.1:${n.route}", routes: [`,
        ...ns.map((o) => `  "nats-route://127.0.0.1:${o.route}"`),
        '] }',
      );
    }
    fs.writeFileSync(n.conf, lines.join('\n') + '\n');
  }
  const logTails = () =>
    ns
      .map((n) => {
        let t = '';
        try {
          t = fs.readFileSync(n.log, 'utf8').split('\n').slice(-15).join('\n');
        } catch {}
        return `--- ${n.name} ---\n${t}`;
      })
      .join('\n');
  const stop = async () => {
    await Promise.all(
      ns.map(async (n) => {
        const p = n.proc;
        if (!p || p.exitCode !== null || p.signalCode !== null) return;
        const done = new Promise((r) => p.once('exit', r));
        p.kill('SIGTERM');
        const t = setTimeout(() => p.kill('SIGKILL'), 10000);
        await done;
        clearTimeout(t);
      }),
    );
    if (process.env.MSGS_KEEP_TMP !== '1') fs.rmSync(dir, { recursive: true, force: true });
  };
  for (const n of ns) {
    const fd = fs.openSync(n.log, 'a');
    n.proc = spawn(bin, ['-c', n.conf], { cwd: dir, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    children.add(n.proc);
    n.proc.once('exit', () => children.delete(n.proc));
    n.proc.on('error', () => {});
  }
  const probe = async () => {
    const leaders = new Set();
    for (const n of ns) {
      if (n.proc.exitCode !== null || n.proc.signalCode !== null) throw new Error(`${n.name} exited (${n.proc.exitCode ?? n.proc.signalCode})`);
      let hz;
      try {
        hz = await getJson(`http://127.0.0.1:${n.http}/healthz`);
      } catch (e) {
        return `${n.name}: monitoring port: ${e.message}`;
      }
      if (hz.status !== 200) return `${n.name}: /healthz ${hz.status} ${JSON.stringify(hz.body)}`;
      if (nodes > 1) {
        const jsz = await getJson(`http://127.0.0.1:${n.http}/jsz`);
        const leader = jsz.body && jsz.body.meta_cluster && jsz.body.meta_cluster.leader;
        if (!leader) return `${n.name}: /jsz reports no meta leader`;
        leaders.add(leader);
      }
    }
    if (leaders.size > 1) return `nodes disagree on the meta leader: ${[...leaders].join(', ')}`;
    return null;
  };
  const t0 = Date.now();
  let why = 'not probed';
  try {
    for (;;) {
      why = await probe();
      if (why === null) break;
      if (Date.now() - t0 > timeoutMs) throw new Error(`nats-server (${nodes} node(s)) not ready in ${timeoutMs} ms: ${why}`);
      await sleep(100);
    }
  } catch (e) {
    const msg = `${e.message}\n${logTails()}`;
    await stop();
    throw new Error(msg);
  }
  return {
    urls: ns.map((n) => `nats://127.0.0.1:${n.client}`),
    monitorPorts: ns.map((n) => n.http),
    dir,
    readyMs: Date.now() - t0,
    pids: ns.map((n) => n.proc.pid),
    cpuSeconds: () => ns.reduce((s, n) => s + cpuTicks(n.proc.pid), 0) / TICK,
    logTails,
    stop,
  };
}

module.exports = { findNatsServer, start };
