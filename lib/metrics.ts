// Prometheus exposition of MessageServer.stats() through prom-client. Nothing
// here runs on the data path: the collectors read one stats() snapshot per
// scrape (a handful of relaxed native counter loads) and copy it into
// prom-client metrics.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Registry, type Metric } from 'prom-client';

import type { MessageServer, ServerStats } from './server';

export interface MetricsOptions {
  /** Prepended to every metric name instead of "msgserver_" (e.g. "ingest_a_" to tell two servers apart). */
  prefix?: string;
}

type Stats = ServerStats;

/** A numeric stats field exposed as one unlabelled series. */
interface Scalar {
  name: string;
  help: string;
  read: (s: Stats) => number;
}

const COUNTERS: readonly Scalar[] = [
  { name: 'connections_accepted_total', help: 'Connections accepted.', read: (s) => s.connectionsAccepted },
  { name: 'connections_rejected_total', help: 'Connections refused with ERR BUSY (over limits.maxConnections).', read: (s) => s.connectionsRejected },
  { name: 'accept_errors_total', help: 'accept() calls that failed (e.g. out of file descriptors).', read: (s) => s.acceptErrors },
  { name: 'messages_in_total', help: 'Messages received and parsed.', read: (s) => s.messagesIn },
  { name: 'received_bytes_total', help: 'Bytes received from clients.', read: (s) => s.bytesIn },
  { name: 'ack_frames_total', help: 'ACK frames sent (one frame can acknowledge several messages).', read: (s) => s.ackFrames },
  { name: 'batches_pushed_total', help: 'Batches of messages handed from the service threads to the writer.', read: (s) => s.batchesPushed },
  { name: 'read_calls_total', help: 'Socket reads by the service threads.', read: (s) => s.readCalls },
  { name: 'paused_for_queue_total', help: 'Times a connection stopped reading because the writer queue was full.', read: (s) => s.pausedForQueue },
  { name: 'writer_batches_total', help: 'Batches taken from the queue by the writer.', read: (s) => s.writerBatches },
  { name: 'writes_total', help: 'Write calls to the log file.', read: (s) => s.writes },
  { name: 'records_written_total', help: 'Records written to the log file.', read: (s) => s.recordsWritten },
  { name: 'written_bytes_total', help: 'Bytes written to the log file.', read: (s) => s.bytesWritten },
  { name: 'fsyncs_total', help: 'fsync calls on the log file.', read: (s) => s.fsyncs },
  { name: 'synced_records_total', help: 'Records known to be on stable storage.', read: (s) => s.syncedRecords },
  { name: 'write_errors_total', help: 'Failed writes or fsyncs of the log file.', read: (s) => s.writeErrors },
  { name: 'failed_records_total', help: 'Records not stored because of a write error (ACKed WRITE_FAILED).', read: (s) => s.failedRecords },
  { name: 'rotations_total', help: 'Segments closed by rotation.', read: (s) => s.rotations },
  { name: 'torn_tail_cut_bytes_total', help: 'Bytes of a torn log tail truncated at start-up.', read: (s) => s.tornBytesCut },
  { name: 'inflight_pauses_total', help: 'Times a connection stopped reading until ACKs caught up (limits.maxInflightBytesPerConnection).', read: (s) => s.inflightPauses },
  { name: 'hook_delivered_messages_total', help: 'Messages delivered to onMessages hooks.', read: (s) => s.hookDelivered },
  { name: 'hook_dropped_messages_total', help: "Messages the onMessages hooks did not see (policy 'drop', hook buffer full).", read: (s) => s.hookDropped },
  { name: 'hook_blocked_total', help: "Times the writer waited for slow hooks (policy 'block').", read: (s) => s.hookBlocked },
  // The JetStream sink (0 without a jetstream section).
  { name: 'jetstream_published_total', help: 'Messages published to JetStream.', read: (s) => s.jetstream?.published ?? 0 },
  { name: 'jetstream_acked_total', help: 'JetStream publish acknowledgements (duplicates included).', read: (s) => s.jetstream?.acked ?? 0 },
  { name: 'jetstream_duplicates_total', help: "Publishes JetStream's duplicate window dropped (a resend already stored).", read: (s) => s.jetstream?.duplicates ?? 0 },
  { name: 'jetstream_failed_total', help: 'Publishes JetStream refused (no stream, no quorum, ...).', read: (s) => s.jetstream?.failed ?? 0 },
  { name: 'jetstream_timeouts_total', help: 'Publishes not acknowledged within jetstream.ackTimeoutMs.', read: (s) => s.jetstream?.timeouts ?? 0 },
  { name: 'jetstream_unavailable_total', help: 'Messages not published: NATS unreachable or the stream missing.', read: (s) => s.jetstream?.unavailable ?? 0 },
  { name: 'jetstream_reconnects_total', help: 'Reconnections to the NATS cluster.', read: (s) => s.jetstream?.reconnects ?? 0 },
];

const GAUGES: readonly Scalar[] = [
  { name: 'connections_open', help: 'Connections open now.', read: (s) => s.connections },
  { name: 'queue_bytes', help: 'Bytes of messages queued for the writer.', read: (s) => s.queueBytes },
  { name: 'queue_batches', help: 'Batches queued for the writer.', read: (s) => s.queueBatches },
  { name: 'last_seq', help: 'Sequence number of the last record written (0 = none).', read: (s) => s.lastSeq },
  { name: 'jetstream_connected', help: '1 while the JetStream sink is connected to NATS (0 when not, or without jetstream).', read: (s) => (s.jetstream?.connected ? 1 : 0) },
];

type ThreadStats = ServerStats['threads'][number];

const THREAD_SERIES: ReadonlyArray<{ name: string; help: string; counter: boolean; read: (t: ThreadStats) => number }> = [
  { name: 'thread_connections_open', help: 'Connections open now, by service thread.', counter: false, read: (t) => t.connections },
  { name: 'thread_connections_accepted_total', help: 'Connections accepted, by service thread.', counter: true, read: (t) => t.accepted },
  { name: 'thread_messages_in_total', help: 'Messages received, by service thread.', counter: true, read: (t) => t.messagesIn },
  { name: 'thread_received_bytes_total', help: 'Bytes received, by service thread.', counter: true, read: (t) => t.bytesIn },
  { name: 'thread_batches_pushed_total', help: 'Batches handed to the writer, by service thread.', counter: true, read: (t) => t.batchesPushed },
];

function num(v: unknown): number {
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

  const counter = (s: Scalar): void => {
    new Counter({
      name: prefix + s.name,
      help: s.help,
      registers,
      collect() {
        this.reset();
        this.inc(s.read(stats()));
      },
    });
  };
  COUNTERS.forEach(counter);

  for (const g of GAUGES) {
    new Gauge({
      name: prefix + g.name,
      help: g.help,
      registers,
      collect() {
        this.set(g.read(stats()));
      },
    });
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
  /** Path that serves the metrics; default "/metrics". Other paths get 404. */
  path?: string;
}

/**
 * A node:http request listener: GET (or HEAD) on /metrics answers the
 * registry's exposition text (Content-Type text/plain; version=0.0.4), another
 * method there 405, any other path 404. A failing scrape answers 500.
 *
 *   http.createServer(metricsHandler(collectMetrics(server))).listen(9464);
 */
export function metricsHandler(registry: Registry, opts: MetricsHandlerOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const wanted = opts.path ?? '/metrics';
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== wanted) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found; metrics are at ' + wanted + '\n');
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
}
