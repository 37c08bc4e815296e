// Replicated mode through NATS failures (docs/scale-out.md, "Failures"): a
// 3-node cluster just started, a 3-replica stream msgserver creates, one
// pipelining client, and under its load the stream's leader is SIGKILLed and
// restarted, twice; then a node is paused (SIGSTOP) for longer than
// ackTimeoutMs and resumed. Sends during an election are ACKed late (the
// publish is retried within jetstream.retryMs with the same Nats-Msg-Id),
// not failed; every message ACKed OK is in the stream exactly once, read back
// through readStream. Each test reports availability and the ACK p99 during
// the faults as a diagnostic.
//
// Skips when nats-server is missing, unless MSGS_REQUIRE_NATS=1 (CI).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';

import { MessageClient, MessageServer, type LogEntry } from '../dist/index';
import { tempDir } from './helpers';
import { natsServerPath, startNatsCluster, streamLeader, type NatsCluster } from './support/nats-cluster';
import { checkStream, describe, runLoad, type Fault } from './support/replicated-load';

const skip = natsServerPath() === null && process.env.MSGS_REQUIRE_NATS !== '1' ? 'nats-server is not installed' : false;
const TOTAL = Number(process.env.MSGS_FAILOVER_MESSAGES ?? 5000);
const CLIENT_ID = 4242;


async function setup(t: TestContext, stream: string): Promise<{ cluster: NatsCluster; server: MessageServer; client: MessageClient; logs: LogEntry[] }> {
  const dir = tempDir('msgserver-failover-');
  const cluster = await startNatsCluster({ nodes: 3 });
  const server = new MessageServer({
    port: 0,
    serviceThreads: 1,
    ackMode: 'replicated',
    file: { path: path.join(dir, 'audit.log') },
    jetstream: { servers: cluster.urls, stream, subjectPrefix: stream.toLowerCase(), replicas: 3, ackTimeoutMs: 1000, retryMs: 20_000 },
  });
  const logs: LogEntry[] = [];
  server.on('log', (e) => logs.push(e));
  let client: MessageClient | undefined;
  t.after(async () => {
    await client?.close().catch(() => {});
    await server.close();
    for (let i = 0; i < 3; i++) if (cluster.running(i)) cluster.signal(i, 'SIGCONT');
    await cluster.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  // Ready means the new stream answered a publish: no send is refused for a stream not yet usable.
  const { port } = await server.listen({ waitForSink: true });
  assert.equal(server.stats().jetstream!.ready, true);
  client = await MessageClient.connect({ port, clientId: CLIENT_ID, window: 256 });
  return { cluster, server, client, logs };
}

test('the stream leader SIGKILLed and restarted twice under load: every send ACKed OK (late during elections), each in the stream once', { skip, timeout: 90_000 }, async (t) => {
  const { cluster, server, client, logs } = await setup(t, 'KILL');
  const killLeader = (label: string): Fault['run'] => async () => {
    const k = await streamLeader(cluster, 'KILL');
    await cluster.kill(k);
    // Back in the background after a moment: the election runs without it.
    await new Promise((r) => setTimeout(r, 1000));
    await cluster.restart(k);
    void label;
  };
  const faults: Fault[] = [
    { at: 0.2, name: 'leader SIGKILL #1 (restarted)', run: killLeader('1'), holdAt: 0.55 },
    { at: 0.6, name: 'leader SIGKILL #2 (restarted)', run: killLeader('2'), holdAt: 0.95 },
  ];
  const report = await runLoad(client, TOTAL, 256, faults);
  t.diagnostic(`kill-the-leader: ${describe(report)}`);
  t.diagnostic(report.events.join('; '));
  const js = server.stats().jetstream!;
  t.diagnostic(`jetstream stats: retries ${js.retries}, retryExhausted ${js.retryExhausted}, timeouts ${js.timeouts}, duplicates ${js.duplicates}, reconnects ${js.reconnects}`);
  assert.deepEqual(report.statuses, { OK: TOTAL }, `every send ACKed OK\n${logs.map((l) => l.message).join('\n')}`);
  assert.equal(js.retryExhausted, 0);
  const check = await checkStream(cluster.urls, 'KILL', CLIENT_ID, report.okIds);
  assert.deepEqual(check.missing, [], 'no message ACKed OK is missing');
  assert.deepEqual(check.duplicated, [], 'no message is in the stream twice');
  assert.equal(check.records, TOTAL);
});

test('a node paused (SIGSTOP) longer than ackTimeoutMs, then resumed: sends ACKed OK late, each in the stream once', { skip, timeout: 90_000 }, async (t) => {
  const { cluster, server, client } = await setup(t, 'PAUSE');
  const faults: Fault[] = [
    {
      at: 0.3,
      name: 'stream leader SIGSTOP for 3 s (ackTimeoutMs 1000)',
      holdAt: 0.9,
      run: async () => {
        const k = await streamLeader(cluster, 'PAUSE');
        cluster.signal(k, 'SIGSTOP');
        await new Promise((r) => setTimeout(r, 3000));
        cluster.signal(k, 'SIGCONT');
        await cluster.waitHealthy(30_000);
      },
    },
  ];
  const report = await runLoad(client, TOTAL, 256, faults);
  t.diagnostic(`pause-the-leader: ${describe(report)}`);
  t.diagnostic(report.events.join('; '));
  const js = server.stats().jetstream!;
  t.diagnostic(`jetstream stats: retries ${js.retries}, retryExhausted ${js.retryExhausted}, timeouts ${js.timeouts}, duplicates ${js.duplicates}`);
  assert.deepEqual(report.statuses, { OK: TOTAL });
  const check = await checkStream(cluster.urls, 'PAUSE', CLIENT_ID, report.okIds);
  assert.deepEqual(check.missing, []);
  assert.deepEqual(check.duplicated, []);
  assert.equal(check.records, TOTAL);
});
