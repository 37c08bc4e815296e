// Prometheus exposition of MessageServer.stats() through prom-client. Nothing
// here runs on the data path: the collectors read one stats() snapshot per
// scrape (a handful of relaxed native counter loads) and copy it into
// prom-client metrics.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Registry, type Metric } from 'prom-client';

import { loadAddon } from './native';
import type { MessageServer } from './server';
import type { ServerStats, ThreadStats } from './stats';

export interface MetricsOptions {
  /** Prepended to every metric name instead of "msgserver_" (e.g. "ingest_a_" to tell two servers apart). */
  prefix?: string;
}

type Stats = ServerStats;

const THREAD_SERIES: ReadonlyArray<{ name: string; help: string; counter: boolean; read: (t: ThreadStats) => number }> = [
  { name: 'thread_connections_open', help: 'Connections open now, by service thread.', counter: false, read: (t) => t.connections },
  { name: 'thread_connections_accepted_total', help: 'Connections accepted, by service thread.', counter: true, read: (t) => t.accepted },
  { name: 'thread_messages_in_total', help: 'Messages received, by service thread.', counter: true, read: (t) => t.messagesIn },
  { name: 'thread_received_bytes_total', help: 'Bytes received, by service thread.', counter: true, read: (t) => t.bytesIn },
  { name: 'thread_batches_pushed_total', help: 'Batches handed to the writer, by service thread.', counter: true, read: (t) => t.batchesPushed },
];

/** Reads a scalar the stats table names: 'field' or 'section.field' (booleans as 0/1). */
function reader(name: string): (s: Stats) => number {
  const [a, b] = name.split('.');
  return (s) => {
    const top = (s as unknown as Record<string, unknown>)[a];
    const v = b === undefined ? top : (top as Record<string, unknown> | null)?.[b];
    return typeof v === 'boolean' ? (v ? 1 : 0) : num(v);
  };
}

function num(v: unknown): number {
  if (typeof v === 'bigint') return Number(v); // e.g. lastSeq (exact up to 2^53)
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/**
 * A histogram the engine already aggregated, as stats().writeLatencyUs holds
 * it: counts[i] (i < last) are the observations under 2^i microseconds that
 * were not in an earlier bucket; the last entry counts the rest. The engine
 * keeps no sum, so no _sum series is exposed (histogram_quantile() needs only
 * the buckets). prom-client's Histogram can only observe() single values, so
 * this implements just what a Registry needs: name, help, type, get(), reset().
 */
class Log2Histogram {
  readonly type = 'histogram';
  readonly labelNames: string[] = [];
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => readonly number[],
  ) {}

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> }> {
    const counts = this.read();
    const bucket = `${this.name}_bucket`;
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    let cumulative = 0;
    for (let i = 0; i < counts.length - 1; i++) {
      cumulative += num(counts[i]);
      values.push({ labels: { le: 2 ** i / 1e6 }, value: cumulative, metricName: bucket });
    }
    if (counts.length > 0) cumulative += num(counts[counts.length - 1]);
    values.push({ labels: { le: '+Inf' }, value: cumulative, metricName: bucket });
    values.push({ labels: {}, value: cumulative, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {}
}

/**
 * Registers msgserver_* metrics for `server` in `registry` (a new Registry
 * when omitted) and returns the registry. Every scrape reads server.stats()
 * once; counters are copied from it, so they restart from 0 when the server
 * is restarted (listen() after close()), which Prometheus treats as a counter
 * reset. Registering two servers in one registry needs distinct prefixes.
 */
export function collectMetrics(server: MessageServer, registry: Registry = new Registry(), opts: MetricsOptions = {}): Registry {
  const prefix = opts.prefix ?? 'msgserver_';
  // One stats() per scrape: Registry.metrics() calls every collect()
  // synchronously in one pass, so a snapshot kept until the next microtask is
  // shared by all of them and never outlives the scrape.
  let snapshot: Stats | null = null;
  const stats = (): Stats => {
    if (snapshot === null) {
      snapshot = server.stats() as Stats;
      queueMicrotask(() => {
        snapshot = null;
      });
    }
    return snapshot;
  };
  const registers = [registry];

  // The scalars come from the engine's stats table: one row names each
  // counter once (native/addon_stats.cc). The jetstream section exists only
  // with a JetStream sink, and so do its metrics.
  const withJetStream = server.config.jetstream !== null;
  for (const d of loadAddon().statsSchema) {
    if (d.name.startsWith('jetstream.') && !withJetStream) continue;
    const read = reader(d.name);
    if (d.type === 'counter') {
      new Counter({
        name: prefix + d.metric,
        help: d.help,
        registers,
        collect() {
          this.reset();
          this.inc(read(stats()));
        },
      });
    } else {
      new Gauge({
        name: prefix + d.metric,
        help: d.help,
        registers,
        collect() {
          this.set(read(stats()));
        },
      });
    }
  }

  new Counter({
    name: `${prefix}acks_total`,
    help: 'Messages acknowledged, by ACK status.',
    labelNames: ['status'],
    registers,
    collect() {
      this.reset();
      for (const [status, n] of Object.entries(stats().acks)) this.inc({ status }, n);
    },
  });
  new Counter({
    name: `${prefix}err_frames_total`,
    help: 'ERR frames sent (each closes its connection), by error code.',
    labelNames: ['code'],
    registers,
    collect() {
      this.reset();
      for (const [code, n] of Object.entries(stats().errors)) this.inc({ code }, n);
    },
  });

  new Counter({
    name: `${prefix}io_errors_total`,
    help: 'Failed system calls on the log file, by kind (each also logged and emitted as an error event).',
    labelNames: ['op'],
    registers,
    collect() {
      this.reset();
      for (const [op, n] of Object.entries(stats().ioErrors)) this.inc({ op }, n);
    },
  });

  for (const t of THREAD_SERIES) {
    const config = {
      name: prefix + t.name,
      help: t.help,
      labelNames: ['thread'],
      registers,
    };
    if (t.counter) {
      new Counter({
        ...config,
        collect() {
          this.reset();
          stats().threads.forEach((th, i) => this.inc({ thread: String(i) }, t.read(th)));
        },
      });
    } else {
      new Gauge({
        ...config,
        collect() {
          this.reset();
          stats().threads.forEach((th, i) => this.set({ thread: String(i) }, t.read(th)));
        },
      });
    }
  }

  const latency = new Log2Histogram(
    `${prefix}write_latency_seconds`,
    'Duration of log file writes (with the fsync when fsync is per batch).',
    () => stats().writeLatencyUs,
  );
  registry.registerMetric(latency as unknown as Metric);
  return registry;
}

export interface MetricsHandlerOptions {
  /** Path that serves the metrics; default "/metrics". */
  path?: string;
  /**
   * The server whose health and readiness to answer on /healthz and /readyz
   * (see checkHealth and checkReadiness). Without it those paths get 404.
   */
  server?: MessageServer;
}

// ---- health and readiness ----

/** One check of a health or readiness answer. */
export interface HealthCheck {
  ok: boolean;
  /** Why it failed (or what it saw), for a person reading the body. */
  detail?: string;
}

/** The body of /healthz and /readyz: status 'ok' (HTTP 200) only when every check is ok, else 'fail' (503). */
export interface HealthReport {
  status: 'ok' | 'fail';
  checks: Record<string, HealthCheck>;
}

/** A 0/1 gauge of stats() that may be missing (older engines): missing counts as 0. */
function gauge(s: ServerStats, name: 'diskLow' | 'lastStoreFailed'): number {
  const v = (s as unknown as Record<string, unknown>)[name];
  return typeof v === 'boolean' ? (v ? 1 : 0) : num(v);
}

function report(checks: Record<string, HealthCheck>): HealthReport {
  return { status: Object.values(checks).every((c) => c.ok) ? 'ok' : 'fail', checks };
}

function listeningCheck(server: MessageServer): HealthCheck {
  const a = server.address();
  return server.listening && a ? { ok: true, detail: `${a.host}:${a.port}` } : { ok: false, detail: 'not listening (not started, or closing)' };
}

function lastStoreCheck(s: ServerStats): HealthCheck {
  return gauge(s, 'lastStoreFailed') === 0 ? { ok: true } : { ok: false, detail: 'the last write to the log failed (WRITE_FAILED)' };
}

/**
 * Liveness, for /healthz: the server is listening (its engine and threads
 * run) and the last store of a batch did not fail (stats().lastStoreFailed
 * is 0; it goes back to 0 with the next batch that is stored). Checks:
 * `listening`, `lastWrite`.
 */
export function checkHealth(server: MessageServer): HealthReport {
  const listening = listeningCheck(server);
  const s = server.stats();
  return report({ listening, lastWrite: lastStoreCheck(s) });
}

/**
 * Readiness, for /readyz: everything /healthz checks, and the log is above
 * its free-space guard (stats().diskLow is 0: below it the server stops
 * reading new messages), and, when ackMode is 'replicated', the JetStream
 * sink is ready: connected, and the stream answered a publish (without it no
 * message can be ACKed OK). Checks:
 * `listening`, `logWritable`, `diskSpace`, and `jetstream` (replicated only).
 */
export function checkReadiness(server: MessageServer): HealthReport {
  const listening = listeningCheck(server);
  const s = server.stats();
  const checks: Record<string, HealthCheck> = {
    listening,
    logWritable: lastStoreCheck(s),
    diskSpace: gauge(s, 'diskLow') === 0 ? { ok: true } : { ok: false, detail: 'free space below file.minFreeBytes: not reading new messages' },
  };
  if (server.config.ackMode === 'replicated') {
    const js = s.jetstream;
    checks.jetstream = js?.ready
      ? { ok: true }
      : {
          ok: false,
          detail: !js?.connected
            ? 'not connected to the JetStream cluster'
            : `stream ${server.config.jetstream?.stream} does not answer publishes yet (missing, or without a leader)`,
        };
  }
  return report(checks);
}

/**
 * A node:http request listener for /healthz and /readyz alone (GET or HEAD;
 * 200 or 503 with a HealthReport as JSON). Other paths: 404, or `fallback`.
 */
export function healthHandler(
  server: MessageServer,
  fallback?: (req: IncomingMessage, res: ServerResponse) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const check = path === '/healthz' ? checkHealth : path === '/readyz' ? checkReadiness : null;
    if (check === null) {
      if (fallback) return fallback(req, res);
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found; try /healthz or /readyz\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    let body: string;
    let code: number;
    try {
      const r = check(server);
      body = JSON.stringify(r) + '\n';
      code = r.status === 'ok' ? 200 : 503;
    } catch (err) {
      body = JSON.stringify({ status: 'fail', checks: { stats: { ok: false, detail: err instanceof Error ? err.message : String(err) } } }) + '\n';
      code = 503;
    }
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}

/**
 * A node:http request listener: GET (or HEAD) on /metrics answers the
 * registry's exposition text (Content-Type text/plain; version=0.0.4), another
 * method there 405. With opts.server it also answers /healthz and /readyz
 * (healthHandler). Any other path 404. A failing scrape answers 500.
 *
 *   http.createServer(metricsHandler(collectMetrics(server), { server })).listen(9464);
 */
export function metricsHandler(registry: Registry, opts: MetricsHandlerOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const wanted = opts.path ?? '/metrics';
  const metrics = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== wanted) {
      const also = opts.server ? ', health at /healthz and /readyz' : '';
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`not found; metrics are at ${wanted}${also}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': registry.contentType, 'Content-Length': Buffer.byteLength(text) });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`cannot collect metrics: ${err instanceof Error ? err.message : String(err)}\n`);
      },
    );
  };
  return opts.server ? healthHandler(opts.server, metrics) : metrics;
}
