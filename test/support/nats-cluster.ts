// Test support: a throwaway NATS JetStream cluster and an HAProxy TCP load
// balancer, run as child processes of the test. No npm dependencies: servers
// are spawned with child_process, readiness comes from nats-server's HTTP
// monitoring port (fetch) and from TCP connects for HAProxy.
//
// Every wait is bounded and fails with the servers' log tails in the message.
// Children are tracked; whatever is still alive when the test process exits
// (or is interrupted with SIGINT/SIGTERM/SIGHUP) is SIGKILLed.
//
// Notes on nats-server 2.9.10 that shaped the readiness checks:
//  - /healthz?js-enabled-only=true answers 200 as soon as JetStream is enabled
//    on the node, even while it is "not current with the meta leader"; plain
//    /healthz is the one that goes 503 until the node has caught up with the
//    meta leader (and its local streams/consumers are current). Both are
//    checked.
//  - Only the meta leader's /jsz lists meta_cluster.replicas (with `current`);
//    followers report just `leader` and `cluster_size`.
//  - After the meta leader is SIGKILLed, followers keep reporting the dead node
//    as leader for ~2 s, then plain /healthz is 503 for ~3 s until a new
//    leader is elected (~5 s total). So "a leader exists" also requires the
//    reported leader to be one of the running nodes and all of them to agree.
//  - After a node's restart every node can report the meta group's
//    cluster_size one short (2 of 3) for good, while the leader lists every
//    node as a current replica. So membership is judged from that list, and
//    cluster_size must only reach a quorum.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect } from 'nats';

// ---------------------------------------------------------------------------
// Binaries

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function whichSync(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    if (isExecutable(p)) return p;
  }
  return null;
}

function findBinary(name: string, preferred: string[]): string | null {
  for (const p of preferred) if (isExecutable(p)) return p;
  // Debian installs some daemons into /usr/sbin, which is not on every PATH.
  return whichSync(name) ?? (['/usr/sbin', '/usr/local/sbin', '/sbin'].map((d) => path.join(d, name)).find(isExecutable) ?? null);
}

/** $NATS_SERVER_BIN when set (only that); else /usr/bin/nats-server, a PATH lookup, then the sbin dirs; else null. */
export function natsServerPath(): string | null {
  const own = process.env.NATS_SERVER_BIN;
  if (own) return isExecutable(own) ? own : null;
  return findBinary('nats-server', ['/usr/bin/nats-server']);
}

/** nats-server's version as [major, minor, patch] (`nats-server --version`), or null when it cannot be read. */
export function natsServerVersion(): [number, number, number] | null {
  const bin = natsServerPath();
  if (bin === null) return null;
  const out = spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout ?? '';
  const m = /v(\d+)\.(\d+)\.(\d+)/.exec(out);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

/** /usr/sbin/haproxy if executable (Debian's location), else a PATH lookup, else null. */
export function haproxyPath(): string | null {
  return findBinary('haproxy', ['/usr/sbin/haproxy']);
}

// ---------------------------------------------------------------------------
// Child tracking: nothing we start may outlive the test process.

const children = new Set<ChildProcess>();
let exitHookInstalled = false;

function alive(cp: ChildProcess): boolean {
  return cp.exitCode === null && cp.signalCode === null;
}

function killAllChildren(): void {
  for (const cp of children) {
    if (alive(cp)) {
      try {
        cp.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killAllChildren);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllChildren();
      // If nobody else handles the signal, keep its default meaning: die by it.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

function track(cp: ChildProcess): void {
  installExitHook();
  children.add(cp);
  cp.once('exit', () => children.delete(cp));
}

/** Resolves when the process has exited (immediately if it already has). */
function waitExit(cp: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (!alive(cp)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      cp.removeListener('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    cp.once('exit', onExit);
  });
}

/** SIGTERM (or the given signal), wait up to graceMs, then SIGKILL and wait. */
async function terminate(cp: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (!alive(cp)) return;
  cp.kill(signal);
  if (await waitExit(cp, graceMs)) return;
  cp.kill('SIGKILL');
  await waitExit(cp, 5000);
}

/** Spawns with stdout/stderr appended to logFile (nats-server's own -l log shares it). */
function spawnLogged(bin: string, args: string[], logFile: string, cwd: string): ChildProcess {
  const fd = fs.openSync(logFile, 'a');
  try {
    // A sanitizer run preloads its runtime into node: not into these programs
    // (TSan's signal handling would hold back their SIGTERM).
    const cp = spawn(bin, args, { cwd, stdio: ['ignore', fd, fd], env: { ...process.env, LD_PRELOAD: '' } });
    track(cp);
    cp.on('error', () => {
      /* reported through exit / readiness timeout */
    });
    return cp;
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------
// Small helpers

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tail(text: string, lines = 40): string {
  const all = text.split('\n');
  if (all.length > 0 && all[all.length - 1] === '') all.pop();
  return all.slice(-lines).join('\n');
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function removeDir(dir: string): void {
  if (process.env.MSGS_KEEP_TMP === '1') return;
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    /* best effort */
  }
}

/** n distinct free ports: all listeners are held until every port is known. */
async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const srv = net.createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => resolve());
      });
      ports.push((srv.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

async function getJson(url: string, timeoutMs = 1000): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* keep text */
  }
  return { status: res.status, body };
}

function tcpConnect(port: number, host: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`connect ${host}:${port} timed out`));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve();
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    });
  });
}

// ---------------------------------------------------------------------------
// NATS cluster

export interface NatsCluster {
  /** 'nats://127.0.0.1:<port>' per node; index = node. */
  urls: string[];
  /** Temp dir holding configs (n<i>.conf), store dirs (n<i>/) and logs (n<i>.log). */
  dir: string;
  /** SIGKILL node i and wait for the process to exit. */
  kill(i: number): Promise<void>;
  /** Start node i again with the same config/store; resolves once healthy and rejoined. */
  restart(i: number): Promise<void>;
  /** Every running node reports JetStream healthy and they agree on a running meta leader. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** SIGTERM all, wait for exit; removes dir unless MSGS_KEEP_TMP=1. */
  stop(): Promise<void>;
  /** The node's log text so far (for failure messages). */
  logs(i: number): string;
  // Extras beyond the core API:
  /** Monitoring (HTTP) port per node. */
  monitorPorts: number[];
  /** Cluster (route) port per node. */
  clusterPorts: number[];
  /** Whether node i's process is currently running. */
  running(i: number): boolean;
  /** Sends a signal to node i's process (SIGSTOP/SIGCONT to pause and resume it). */
  signal(i: number, sig: NodeJS.Signals): void;
  /** Node index of a server name ('n1' -> 1), or -1. */
  indexOf(name: string): number;
  /** Name of the meta leader as the running nodes agree on it, or null. */
  metaLeader(): Promise<string | null>;
}

interface NodeState {
  index: number;
  name: string;
  clientPort: number;
  clusterPort: number;
  monitorPort: number;
  confFile: string;
  logFile: string;
  proc: ChildProcess | null;
  /** Set when we killed/stopped the process on purpose. */
  expectedExit: boolean;
}

function natsConfig(opts: {
  name: string;
  clusterName: string;
  clientPort: number;
  clusterPort: number;
  monitorPort: number;
  storeDir: string;
  routes: string[];
}): string {
  const q = (s: string): string => JSON.stringify(s);
  return [
    `# generated by test/support/nats-cluster.ts`,
    `server_name: ${q(opts.name)}`,
    `listen: "127.0.0.1:${opts.clientPort}"`,
    `http: "127.0.0.1:${opts.monitorPort}"`,
    ``,
    `jetstream {`,
    `  store_dir: ${q(opts.storeDir)}`,
    `  max_memory_store: 64MB`,
    `  max_file_store: 1GB`,
    `}`,
    ``,
    `cluster {`,
    `  name: ${q(opts.clusterName)}`,
    `  listen: "127.0.0.1:${opts.clusterPort}"`,
    `  # every node, itself included (nats-server drops the route to itself)`,
    `  routes: [`,
    ...opts.routes.map((r) => `    ${q(r)}`),
    `  ]`,
    `}`,
    ``,
  ].join('\n');
}

interface NodeProbe {
  ok: boolean;
  why: string;
  leader?: string;
}

export async function startNatsCluster(opts: { nodes?: number; name?: string; timeoutMs?: number } = {}): Promise<NatsCluster> {
  const bin = natsServerPath();
  if (!bin) throw new Error('nats-server not found (looked at /usr/bin/nats-server, PATH, /usr/sbin)');
  const n = opts.nodes ?? 3;
  if (!Number.isInteger(n) || n < 1) throw new Error(`nodes must be a positive integer, got ${n}`);
  const clusterName = opts.name ?? 'msgs-test';
  const defaultTimeout = opts.timeoutMs ?? 30_000;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msgs-nats-'));

  const ports = await freePorts(3 * n);
  const nodes: NodeState[] = Array.from({ length: n }, (_, i) => ({
    index: i,
    name: `n${i}`,
    clientPort: ports[3 * i],
    clusterPort: ports[3 * i + 1],
    monitorPort: ports[3 * i + 2],
    confFile: path.join(dir, `n${i}.conf`),
    logFile: path.join(dir, `n${i}.log`),
    proc: null,
    expectedExit: false,
  }));
  const routes = nodes.map((nd) => `nats-route://127.0.0.1:${nd.clusterPort}`);
  for (const nd of nodes) {
    const storeDir = path.join(dir, nd.name);
    fs.mkdirSync(storeDir, { recursive: true });
    fs.writeFileSync(
      nd.confFile,
      natsConfig({
        name: nd.name,
        clusterName,
        clientPort: nd.clientPort,
        clusterPort: nd.clusterPort,
        monitorPort: nd.monitorPort,
        storeDir,
        routes,
      }),
    );
  }

  const isRunning = (nd: NodeState): boolean => nd.proc !== null && alive(nd.proc);
  const logs = (i: number): string => readText(nodes[i].logFile);
  const logTails = (lines = 30): string =>
    nodes.map((nd) => `--- ${nd.name} (${isRunning(nd) ? 'running' : 'not running'}) ${nd.logFile} ---\n${tail(logs(nd.index), lines)}`).join('\n');

  const startNode = (nd: NodeState): void => {
    if (isRunning(nd)) throw new Error(`${nd.name} is already running`);
    fs.appendFileSync(nd.logFile, `=== msgs test support: starting ${nd.name} at ${new Date().toISOString()} ===\n`);
    nd.expectedExit = false;
    nd.proc = spawnLogged(bin, ['-c', nd.confFile, '-l', nd.logFile], nd.logFile, dir);
  };

  const base = (nd: NodeState): string => `http://127.0.0.1:${nd.monitorPort}`;

  /** One node's view: JS enabled, meta-current, leader known, cluster size, routes to the other running nodes. */
  const probeNode = async (nd: NodeState, runningCount: number): Promise<NodeProbe> => {
    try {
      const js = await getJson(`${base(nd)}/healthz?js-enabled-only=true`);
      if (js.status !== 200) return { ok: false, why: `healthz?js-enabled-only=true ${js.status} ${JSON.stringify(js.body)}` };
      const hz = await getJson(`${base(nd)}/healthz`);
      if (hz.status !== 200) return { ok: false, why: `healthz ${hz.status} ${JSON.stringify(hz.body)}` };
      const jsz = await getJson(`${base(nd)}/jsz`);
      const meta = jsz.body?.meta_cluster;
      if (jsz.status !== 200 || !meta) return { ok: false, why: `jsz ${jsz.status} without meta_cluster` };
      if (!meta.leader) return { ok: false, why: 'jsz: no meta leader' };
      const quorum = Math.floor(n / 2) + 1;
      if (!(meta.cluster_size >= quorum)) return { ok: false, why: `jsz: meta cluster_size ${meta.cluster_size} < ${quorum}`, leader: meta.leader };
      const rz = await getJson(`${base(nd)}/routez`);
      const routesUp = Number(rz.body?.num_routes ?? 0);
      if (routesUp < runningCount - 1) return { ok: false, why: `routez: ${routesUp} routes, want ${runningCount - 1}`, leader: meta.leader };
      return { ok: true, why: 'ok', leader: meta.leader };
    } catch (err) {
      return { ok: false, why: `monitor port ${nd.monitorPort}: ${(err as Error).message}` };
    }
  };

  /** Returns null when healthy, else a description of what is not yet. */
  const checkOnce = async (): Promise<string | null> => {
    const up = nodes.filter(isRunning);
    if (up.length === 0) return 'no node is running';
    const probes = await Promise.all(up.map((nd) => probeNode(nd, up.length)));
    const bad = probes.map((p, k) => (p.ok ? null : `${up[k].name}: ${p.why}`)).filter((s) => s !== null);
    if (bad.length) return bad.join('; ');
    const leaders = new Set(probes.map((p) => p.leader));
    if (leaders.size !== 1) return `nodes disagree on the meta leader: ${probes.map((p, k) => `${up[k].name}->${p.leader}`).join(', ')}`;
    const leaderName = [...leaders][0]!;
    const leader = up.find((nd) => nd.name === leaderName);
    if (!leader) return `meta leader ${leaderName} is not a running node (stale leader after a kill)`;
    // Only the leader lists replicas; every other running node must be current.
    try {
      const jsz = await getJson(`${base(leader)}/jsz`);
      const replicas: Array<{ name: string; current?: boolean; offline?: boolean }> = jsz.body?.meta_cluster?.replicas ?? [];
      for (const nd of up) {
        if (nd === leader) continue;
        const r = replicas.find((x) => x.name === nd.name);
        if (!r) return `leader ${leaderName} does not list ${nd.name} as a meta replica yet`;
        if (!r.current || r.offline) return `leader ${leaderName}: replica ${nd.name} current=${r.current} offline=${r.offline ?? false}`;
      }
    } catch (err) {
      return `leader ${leaderName} jsz: ${(err as Error).message}`;
    }
    return null;
  };

  const waitHealthy = async (timeoutMs = defaultTimeout): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let last = 'not checked yet';
    for (;;) {
      // A node that died on its own (bad config, port clash) will never get healthy.
      for (const nd of nodes) {
        if (nd.proc && !alive(nd.proc) && !nd.expectedExit) {
          throw new Error(`nats-server ${nd.name} exited on its own (code ${nd.proc.exitCode}, signal ${nd.proc.signalCode})\n${logTails()}`);
        }
      }
      last = (await checkOnce()) ?? '';
      if (last === '') return;
      if (Date.now() >= deadline) {
        throw new Error(`NATS cluster not healthy after ${timeoutMs} ms: ${last}\n${logTails()}`);
      }
      await sleep(150) // each failed /healthz adds a WRN line to the node's log;
    }
  };

  const kill = async (i: number): Promise<void> => {
    const nd = nodes[i];
    if (!nd) throw new Error(`no node ${i}`);
    const cp = nd.proc;
    if (!cp || !alive(cp)) return;
    nd.expectedExit = true;
    cp.kill('SIGKILL');
    if (!(await waitExit(cp, 10_000))) throw new Error(`${nd.name} (pid ${cp.pid}) did not exit after SIGKILL`);
  };

  const restart = async (i: number): Promise<void> => {
    const nd = nodes[i];
    if (!nd) throw new Error(`no node ${i}`);
    if (isRunning(nd)) await kill(i);
    startNode(nd);
    await waitHealthy();
  };

  const signal = (i: number, sig: NodeJS.Signals): void => {
    const cp = nodes[i]?.proc;
    if (!cp || !alive(cp)) throw new Error(`node ${i} is not running`);
    cp.kill(sig);
  };
  const indexOf = (name: string): number => nodes.findIndex((nd) => nd.name === name);

  let stopped = false;
  const stopProcesses = async (): Promise<void> => {
    await Promise.all(
      nodes.map(async (nd) => {
        if (!nd.proc) return;
        nd.expectedExit = true;
        await terminate(nd.proc, 'SIGTERM', 10_000);
      }),
    );
  };
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await stopProcesses();
    removeDir(dir);
  };

  const metaLeader = async (): Promise<string | null> => {
    const up = nodes.filter(isRunning);
    const seen = await Promise.all(
      up.map((nd) =>
        getJson(`${base(nd)}/jsz`).then(
          (r) => (r.body?.meta_cluster?.leader as string) || null,
          () => null,
        ),
      ),
    );
    if (seen.length === 0 || seen.some((l) => l === null) || new Set(seen).size !== 1) return null;
    return up.some((nd) => nd.name === seen[0]) ? seen[0] : null;
  };

  const cluster: NatsCluster = {
    urls: nodes.map((nd) => `nats://127.0.0.1:${nd.clientPort}`),
    dir,
    kill,
    restart,
    waitHealthy,
    stop,
    logs,
    monitorPorts: nodes.map((nd) => nd.monitorPort),
    clusterPorts: nodes.map((nd) => nd.clusterPort),
    running: (i) => isRunning(nodes[i]),
    signal,
    indexOf,
    metaLeader,
  };

  try {
    for (const nd of nodes) startNode(nd);
    await waitHealthy(defaultTimeout);
  } catch (err) {
    stopped = true;
    await stopProcesses(); // keep the files of a cluster that failed to start
    throw new Error(`${(err as Error).message}\n(logs kept in ${dir})`);
  }
  return cluster;
}

// ---------------------------------------------------------------------------
// HAProxy

/** One nats-server with JetStream (no cluster), for suites that need a single node. */
export interface NatsServer {
  url: string;
  port: number;
  proc: ChildProcess;
  /** The server's log (for failure messages). */
  logs(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves once it exited. */
  stop(): Promise<void>;
}

/**
 * Starts nats-server -js on 127.0.0.1:`port` (a free one when omitted), its
 * store and log in `dir`; resolves once its health check says JetStream is up.
 */
export async function startNatsServer(dir: string, port?: number, timeoutMs = 15_000): Promise<NatsServer> {
  const bin = natsServerPath();
  if (bin === null) throw new Error('nats-server is not installed (apt-get install nats-server)');
  const [p, mon] = port === undefined ? await freePorts(2) : [port, (await freePorts(1))[0]];
  const log = path.join(dir, `nats-${p}.log`);
  const proc = spawnLogged(bin, ['-js', '-a', '127.0.0.1', '-p', String(p), '-m', String(mon), '-sd', path.join(dir, `js-${p}`)], log, dir);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!alive(proc)) throw new Error(`nats-server exited before it was ready:\n${tail(readText(log))}`);
    try {
      if ((await getJson(`http://127.0.0.1:${mon}/healthz?js-enabled-only=true`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await terminate(proc, 'SIGKILL', 0);
      throw new Error(`nats-server not healthy after ${timeoutMs} ms:\n${tail(readText(log))}`);
    }
    await sleep(50);
  }
  return { url: `nats://127.0.0.1:${p}`, port: p, proc, logs: () => readText(log), stop: () => terminate(proc, 'SIGTERM', 5000) };
}

export interface Haproxy {
  /** Frontend port on 127.0.0.1. */
  port: number;
  stop(): Promise<void>;
  /** Temp dir holding haproxy.cfg and haproxy.log. */
  dir: string;
  /** The cfg text (reusable for docs). */
  config: string;
  // Extras beyond the core API:
  /** Port of the CSV/HTML stats page on 127.0.0.1 (GET /stats;csv). */
  statsPort: number;
  /** Backend server name -> status as HAProxy sees it ('UP', 'DOWN', 'UP 1/2', ...); names are s0, s1, ... */
  serverStatus(): Promise<Record<string, string>>;
  /** HAProxy's stderr so far (health-check transitions land here). */
  logs(): string;
}

/** Hard RLIMIT_NOFILE of this process (children inherit it), or null when unlimited/unknown. */
function hardFdLimit(): number | null {
  try {
    const r = spawnSync('/bin/sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8', timeout: 2000 });
    const v = Number.parseInt(r.stdout.trim(), 10);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

export function haproxyConfig(opts: {
  port: number;
  statsPort?: number;
  backends: Array<{ host?: string; port: number }>;
  checkIntervalMs?: number;
  globalMaxconn?: number;
  maxconn?: number;
}): string {
  const inter = opts.checkIntervalMs ?? 300;
  const globalMaxconn = opts.globalMaxconn ?? 20000;
  const maxconn = Math.min(opts.maxconn ?? 4096, globalMaxconn);
  const lines = [
    '# HAProxy in front of several msgserver instances (plain TCP pass-through).',
    '# Run in the foreground: haproxy -f haproxy.cfg -db',
    'global',
    '    # Process-wide connection cap. HAProxy needs ~2 fds per connection and',
    '    # refuses to start if the fd limit (ulimit -n) cannot cover it.',
    `    maxconn ${globalMaxconn}`,
    '    # No "log" line: quiet. Health-check transitions still go to stderr.',
    '',
    'defaults',
    '    mode tcp',
    `    maxconn ${maxconn}`,
    '    # A backend that does not accept within 1s counts as a failed attempt;',
    '    # retry up to 3 times, and let the last retry go to another server.',
    '    timeout connect 1s',
    '    retries 3',
    '    option redispatch',
    '    # Idle limits for the client and server sides of a proxied connection.',
    '    timeout client 60s',
    '    timeout server 60s',
    '',
    'frontend fe_msgserver',
    `    bind 127.0.0.1:${opts.port}`,
    '    default_backend be_msgserver',
    '',
    'backend be_msgserver',
    '    balance roundrobin',
    `    # TCP connect check every ${inter}ms; 2 failures mark a server DOWN, 2 successes UP again.`,
    ...opts.backends.map((b, i) => `    server s${i} ${b.host ?? '127.0.0.1'}:${b.port} check inter ${inter}ms fall 2 rise 2`),
  ];
  if (opts.statsPort !== undefined) {
    lines.push(
      '',
      '# Local status page: curl "http://127.0.0.1:<port>/stats;csv"',
      'frontend fe_stats',
      '    mode http',
      `    bind 127.0.0.1:${opts.statsPort}`,
      '    timeout client 10s',
      '    stats enable',
      '    stats uri /stats',
      '    stats refresh 5s',
    );
  }
  return lines.join('\n') + '\n';
}

export async function startHaproxy(opts: {
  backends: Array<{ host?: string; port: number }>;
  checkIntervalMs?: number;
  /** Global maxconn; default 20000, lowered to what the fd limit allows. */
  globalMaxconn?: number;
  /** defaults-section maxconn; default 4096. */
  maxconn?: number;
  timeoutMs?: number;
}): Promise<Haproxy> {
  const bin = haproxyPath();
  if (!bin) throw new Error('haproxy not found (looked at /usr/sbin/haproxy and PATH)');
  if (!opts.backends.length) throw new Error('startHaproxy: at least one backend is needed');
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msgs-haproxy-'));
  const [port, statsPort] = await freePorts(2);

  let globalMaxconn = opts.globalMaxconn ?? 20000;
  const fdLimit = hardFdLimit();
  if (fdLimit !== null) globalMaxconn = Math.max(64, Math.min(globalMaxconn, Math.floor((fdLimit - 200) / 2)));

  const config = haproxyConfig({
    port,
    statsPort,
    backends: opts.backends,
    checkIntervalMs: opts.checkIntervalMs,
    globalMaxconn,
    maxconn: opts.maxconn,
  });
  const cfgFile = path.join(dir, 'haproxy.cfg');
  const logFile = path.join(dir, 'haproxy.log');
  fs.writeFileSync(cfgFile, config);
  const logs = (): string => readText(logFile);

  const check = spawnSync(bin, ['-c', '-f', cfgFile], { encoding: 'utf8', timeout: 10_000 });
  if (check.status !== 0) {
    throw new Error(`haproxy rejected the config (exit ${check.status}):\n${check.stdout}${check.stderr}\n--- ${cfgFile} ---\n${config}`);
  }

  const proc = spawnLogged(bin, ['-f', cfgFile, '-db'], logFile, dir);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await terminate(proc, 'SIGTERM', 5000);
    removeDir(dir);
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!alive(proc)) {
      throw new Error(`haproxy exited (code ${proc.exitCode}, signal ${proc.signalCode}) before listening\n${tail(logs())}\n(files kept in ${dir})`);
    }
    try {
      await tcpConnect(port, '127.0.0.1', 500);
      break;
    } catch (err) {
      if (Date.now() >= deadline) {
        await terminate(proc, 'SIGKILL', 0);
        throw new Error(`haproxy frontend 127.0.0.1:${port} not accepting after ${timeoutMs} ms: ${(err as Error).message}\n${tail(logs())}\n(files kept in ${dir})`);
      }
      await sleep(50);
    }
  }

  const serverStatus = async (): Promise<Record<string, string>> => {
    const res = await fetch(`http://127.0.0.1:${statsPort}/stats;csv`, { signal: AbortSignal.timeout(1000) });
    const text = await res.text();
    const [header, ...rows] = text.split('\n').filter((l) => l.trim() !== '');
    const cols = header.replace(/^#\s*/, '').split(',');
    const px = cols.indexOf('pxname');
    const sv = cols.indexOf('svname');
    const st = cols.indexOf('status');
    const out: Record<string, string> = {};
    for (const row of rows) {
      const f = row.split(',');
      if (f[px] === 'be_msgserver' && f[sv] !== 'BACKEND') out[f[sv]] = f[st];
    }
    return out;
  };

  return { port, stop, dir, config, statsPort, serverStatus, logs };
}

/** The stream's leader as its cluster reports it (its index), asked of the running nodes in turn. */
export async function streamLeader(cluster: NatsCluster, stream: string): Promise<number> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    for (let i = 0; i < cluster.urls.length; i++) {
      if (!cluster.running(i)) continue;
      const nc = await connect({ servers: cluster.urls[i], timeout: 1000, reconnect: false }).catch(() => null);
      if (!nc) continue;
      try {
        const si = await (await nc.jetstreamManager({ timeout: 1000 })).streams.info(stream);
        const k = cluster.indexOf(si.cluster?.leader ?? '');
        if (k >= 0 && cluster.running(k)) return k;
      } catch {
        // no leader yet, or this node does not know: ask the next
      } finally {
        await nc.close();
      }
    }
    if (Date.now() > deadline) throw new Error(`stream ${stream} has no running leader after 20 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
