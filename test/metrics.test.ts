// Prometheus metrics: collectMetrics() on a real server with traffic (OK and
// TOO_LARGE ACKs, an ERR frame, two service threads). The exposition text is
// parsed here, checked for validity, and its counters compared with stats().
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { Registry } from 'prom-client';

import { AckError, MessageClient, MessageServer, type ServerStats } from '../dist/index';
import { collectMetrics, metricsHandler } from '../dist/server/metrics';
import { rawExchange, tempDir } from './helpers';
import { parseExposition, sample, type Family } from './prometheus-text';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

// ---- the expected mapping, written out independently of lib/server/metrics.ts ------

const COUNTERS: Record<string, (s: ServerStats) => number> = {
  msgserver_connections_accepted_total: (s) => s.connectionsAccepted,
  msgserver_connections_rejected_total: (s) => s.connectionsRejected,
  msgserver_accept_errors_total: (s) => s.acceptErrors,
  msgserver_event_loop_errors_total: (s) => s.loopErrors,
  msgserver_messages_in_total: (s) => s.messagesIn,
  msgserver_received_bytes_total: (s) => s.bytesIn,
  msgserver_ack_frames_total: (s) => s.ackFrames,
  msgserver_batches_pushed_total: (s) => s.batchesPushed,
  msgserver_read_calls_total: (s) => s.readCalls,
  msgserver_paused_for_queue_total: (s) => s.pausedForQueue,
  msgserver_writer_batches_total: (s) => s.writerBatches,
  msgserver_writes_total: (s) => s.writes,
  msgserver_records_written_total: (s) => s.recordsWritten,
  msgserver_written_bytes_total: (s) => s.bytesWritten,
  msgserver_fsyncs_total: (s) => s.fsyncs,
  msgserver_synced_records_total: (s) => s.syncedRecords,
  msgserver_write_errors_total: (s) => s.writeErrors,
  msgserver_failed_records_total: (s) => s.failedRecords,
  msgserver_rotations_total: (s) => s.rotations,
  msgserver_torn_tail_cut_bytes_total: (s) => s.tornBytesCut,
  msgserver_inflight_pauses_total: (s) => s.inflightPauses,
  msgserver_hook_delivered_messages_total: (s) => s.hookDelivered,
  msgserver_hook_dropped_messages_total: (s) => s.hookDropped,
  msgserver_hook_blocked_total: (s) => s.hookBlocked,
};

const GAUGES: Record<string, (s: ServerStats) => number> = {
  msgserver_connections_open: (s) => s.connections,
  msgserver_queue_bytes: (s) => s.queueBytes,
  msgserver_queue_batches: (s) => s.queueBatches,
  msgserver_last_seq: (s) => Number(s.lastSeq),
};

const THREAD_SERIES: Record<string, [string, (t: ServerStats['threads'][number]) => number]> = {
  msgserver_thread_connections_open: ['gauge', (t) => t.connections],
  msgserver_thread_connections_accepted_total: ['counter', (t) => t.accepted],
  msgserver_thread_messages_in_total: ['counter', (t) => t.messagesIn],
  msgserver_thread_received_bytes_total: ['counter', (t) => t.bytesIn],
  msgserver_thread_batches_pushed_total: ['counter', (t) => t.batchesPushed],
};

/** Every msgserver_* series agrees with `s`. */
function assertMatchesStats(families: Map<string, Family>, s: ServerStats): void {
  for (const [name, read] of Object.entries(COUNTERS)) {
    assert.equal(families.get(name)?.type, 'counter', `${name} is a counter`);
    assert.equal(sample(families, name), read(s), name);
  }
  for (const [name, read] of Object.entries(GAUGES)) {
    assert.equal(families.get(name)?.type, 'gauge', `${name} is a gauge`);
    assert.equal(sample(families, name), read(s), name);
  }
  for (const [status, n] of Object.entries(s.acks)) assert.equal(sample(families, 'msgserver_acks_total', { status }), n, `acks ${status}`);
  for (const [code, n] of Object.entries(s.errors)) assert.equal(sample(families, 'msgserver_err_frames_total', { code }), n, `err ${code}`);
  for (const [name, [type, read]] of Object.entries(THREAD_SERIES)) {
    assert.equal(families.get(name)?.type, type, `${name} is a ${type}`);
    assert.equal(families.get(name)?.samples.length, s.threads.length, `${name}: one series per thread`);
    s.threads.forEach((t, i) => assert.equal(sample(families, name, { thread: String(i) }), read(t), `${name} thread ${i}`));
  }
  // The write latency histogram: cumulative buckets ending in +Inf = _count.
  const h = families.get('msgserver_write_latency_seconds');
  assert.equal(h?.type, 'histogram');
  const buckets = h!.samples.filter((x) => x.name === 'msgserver_write_latency_seconds_bucket');
  assert.equal(buckets.at(-1)?.labels.le, '+Inf');
  for (let i = 1; i < buckets.length; i++) {
    assert.ok(buckets[i].value >= buckets[i - 1].value, 'buckets are cumulative');
    if (buckets[i].labels.le !== '+Inf') assert.ok(Number(buckets[i].labels.le) > Number(buckets[i - 1].labels.le), 'le ascending');
  }
  const total = s.writeLatencyUs.reduce((a, b) => a + b, 0);
  assert.equal(sample(families, 'msgserver_write_latency_seconds_count'), total);
  assert.equal(buckets.at(-1)?.value, total);
  assert.equal(buckets.length, Math.max(1, s.writeLatencyUs.length));
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('collectMetrics: valid exposition whose counters equal stats()', async () => {
  const dir = tempDir();
  dirs.push(dir);
  const server = new MessageServer({
    port: 0,
    serviceThreads: 2,
    file: { path: path.join(dir, 'm.log'), fsync: 'batch' },
    limits: { maxMessageBytes: 1024 },
  });
  const { port } = await server.listen();
  try {
    const registry = collectMetrics(server, new Registry());

    // Before any traffic: valid, and all zero.
    const empty = parseExposition(await registry.metrics());
    assert.equal(sample(empty, 'msgserver_messages_in_total'), 0);

    // Traffic: three clients (both threads), OK and TOO_LARGE ACKs, one ERR frame.
    const clients = await Promise.all([1, 2, 3].map((clientId) => MessageClient.connect({ firstMsgId: 1, port, clientId, window: 256 })));
    let tooLarge = 0;
    await Promise.all(
      clients.flatMap((c, ci) =>
        Array.from({ length: 1000 }, (_, i) =>
          c.send(i % 100 === 99 ? Buffer.alloc(1025, 1) : `client ${ci} message ${i}`, { name: 'metrics' }).catch((err: unknown) => {
            assert.ok(err instanceof AckError, String(err));
            tooLarge++;
          }),
        ),
      ),
    );
    assert.equal(tooLarge, 30);
    const bad = await rawExchange(port, [Buffer.from('NOPE\x01\x00\x00\x00\x00\x00\x00\x00', 'latin1')]);
    assert.ok(bad.closed);
    await Promise.all(clients.map((c) => c.close()));
    await waitFor(() => server.stats().connections === 0 && server.stats().queueBatches === 0, 'connections to close');

    const families = parseExposition(await registry.metrics());
    const s = server.stats(); // traffic has stopped: the scrape saw the same numbers
    assert.equal(s.messagesIn, 3000);
    assert.equal(s.acks.OK, 2970);
    assert.equal(s.acks.TOO_LARGE, 30);
    assert.equal(s.errors.BAD_MAGIC, 1);
    assert.ok(s.threads.length === 2 && s.threads.every((t) => t.accepted > 0), 'both threads had connections');
    assertMatchesStats(families, s);
    assert.equal(sample(families, 'msgserver_messages_in_total'), 3000);
    assert.equal(sample(families, 'msgserver_acks_total', { status: 'OK' }), 2970);
    assert.equal(sample(families, 'msgserver_err_frames_total', { code: 'BAD_MAGIC' }), 1);
    assert.ok(sample(families, 'msgserver_write_latency_seconds_count') > 0, 'writes were timed');
    // Per-thread counters add up to the totals.
    const perThread = families.get('msgserver_thread_messages_in_total')!.samples.reduce((a, x) => a + x.value, 0);
    assert.equal(perThread, 3000);

    // After close(): the last values are still exposed.
    await server.close();
    const closed = parseExposition(await registry.metrics());
    assertMatchesStats(closed, server.stats());
    assert.equal(sample(closed, 'msgserver_records_written_total'), 2970);
  } finally {
    await server.close();
  }
});

test('collectMetrics reads stats() once per scrape, into the given registry, with a prefix', async () => {
  const server = new MessageServer({ port: 0, file: { path: path.join(tempDir(), 'm.log') } });
  let calls = 0;
  const original = server.stats.bind(server);
  server.stats = () => {
    calls++;
    return original();
  };
  const registry = new Registry();
  assert.equal(collectMetrics(server, registry, { prefix: 'ingest_' }), registry);
  calls = 0;
  const families = parseExposition(await registry.metrics());
  assert.equal(calls, 1, 'one stats() per scrape');
  assert.ok([...families.keys()].every((n) => n.startsWith('ingest_')), 'every name has the prefix');
  assert.equal(sample(families, 'ingest_messages_in_total'), 0);
  await registry.metrics();
  assert.equal(calls, 2);
  // A second server in the same registry needs its own prefix.
  assert.throws(() => collectMetrics(server, registry, { prefix: 'ingest_' }), /already been registered/);
});

test('metricsHandler serves GET /metrics, 404 elsewhere, 405 for other methods', async () => {
  const server = new MessageServer({ port: 0, file: { path: path.join(tempDir(), 'm.log') } });
  const registry = collectMetrics(server);
  const httpServer = http.createServer(metricsHandler(registry));
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
  try {
    const ok = await fetch(`${base}/metrics`);
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    assert.equal(sample(parseExposition(await ok.text()), 'msgserver_connections_open'), 0);
    const withQuery = await fetch(`${base}/metrics?x=1`);
    assert.equal(withQuery.status, 200);
    await withQuery.text();
    const missing = await fetch(`${base}/`);
    assert.equal(missing.status, 404);
    await missing.text();
    const post = await fetch(`${base}/metrics`, { method: 'POST' });
    assert.equal(post.status, 405);
    await post.text();
  } finally {
    await new Promise((r) => httpServer.close(r));
  }
});
