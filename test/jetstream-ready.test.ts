// Replicated mode before the stream is usable, against one real nats-server
// started late: /readyz is 503 until the stream answers a publish, the
// 'ready' event comes once, listen({ waitForSink: true }) resolves only then;
// with whileNotReady 'hold' messages sent meanwhile wait (within
// jetstream.retryMs) and are ACKed OK once the stream answers; with 'refuse'
// connections get ERR BUSY saying why; a budget that runs out answers
// REPLICATION_FAILED and is counted.
//
// Skips when nats-server is missing, unless MSGS_REQUIRE_NATS=1 (CI).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, test } from 'node:test';

import { AckError, checkReadiness, MessageClient, MessageServer, ServerError, type ServerOptions } from '../dist/index';
import { readStream } from '../dist/read/stream-reader';
import { freePort, tempDir } from './helpers';
import { natsServerPath, startNatsServer, type NatsServer } from './support/nats-cluster';

const skip = natsServerPath() === null && process.env.MSGS_REQUIRE_NATS !== '1' ? 'nats-server is not installed' : false;

let dir = '';
const cleanups: Array<() => Promise<unknown>> = [];
before(() => {
  if (!skip) dir = tempDir('msgserver-ready-');
});
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function replicated(url: string, stream: string, extra: object = {}): ServerOptions {
  return {
    port: 0,
    serviceThreads: 1,
    ackMode: 'replicated',
    file: { enabled: false },
    jetstream: { servers: url, stream, subjectPrefix: stream.toLowerCase(), ackTimeoutMs: 1000, ...extra },
  };
}

async function lateNats(port: number): Promise<NatsServer> {
  const n = await startNatsServer(dir, port);
  cleanups.push(() => n.stop());
  return n;
}

test("hold: not ready until the stream answers; messages sent meanwhile are ACKed OK once it does; 'ready' once; waitForSink waits", { skip, timeout: 60_000 }, async () => {
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  const server = new MessageServer(replicated(url, 'HOLD', { retryMs: 30_000 }));
  cleanups.push(() => server.close());
  let readyEvents = 0;
  server.on('ready', (info) => {
    readyEvents++;
    assert.equal(info.stream, 'HOLD');
  });
  let resolved = false;
  const bound = new Promise<void>((r) => server.once('listening', () => r()));
  const listening = server.listen({ waitForSink: true }).then((a) => {
    resolved = true;
    return a;
  });
  await bound;
  const { port: msgPort } = server.address()!;
  const r0 = checkReadiness(server);
  assert.equal(r0.status, 'fail');
  assert.match(r0.checks.jetstream.detail ?? '', /not connected/);
  assert.equal(server.ready, false);

  const client = await MessageClient.connect({ port: msgPort, clientId: 5 });
  cleanups.push(() => client.close());
  const sends = Array.from({ length: 50 }, (_, i) => client.send(`early-${i}`));
  // Held, not failed: the sink waits for the stream within the budget.
  const deadline = Date.now() + 10_000;
  while (server.stats().jetstream!.held < 50) {
    assert.ok(Date.now() < deadline, `held ${server.stats().jetstream!.held}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(resolved, false, 'listen({ waitForSink }) waits for the stream');
  assert.equal(server.stats().acks.REPLICATION_FAILED, 0);

  await lateNats(port);
  await listening;
  assert.equal(server.ready, true);
  assert.equal(checkReadiness(server).status, 'ok');
  const acks = await Promise.all(sends);
  assert.equal(acks.length, 50);
  assert.equal(server.stats().jetstream!.held, 0);
  assert.equal(readyEvents, 1);
  let stored = 0;
  for await (const rec of readStream({ servers: url, stream: 'HOLD' })) {
    assert.equal(rec.clientId, 5);
    stored++;
  }
  assert.equal(stored, 50);
});

test("refuse: connections get ERR BUSY naming the reason until the stream answers, then are served", { skip, timeout: 60_000 }, async () => {
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  const server = new MessageServer(replicated(url, 'REFUSE', { whileNotReady: 'refuse' }));
  cleanups.push(() => server.close());
  const { port: msgPort } = await server.listen();
  await assert.rejects(MessageClient.connect({ port: msgPort, clientId: 6, connectTimeoutMs: 5000 }), (err: unknown) => {
    assert.ok(err instanceof ServerError, String(err));
    assert.equal(err.codeName, 'BUSY');
    assert.match(err.message, /not ready/);
    return true;
  });
  assert.equal(server.stats().jetstream!.refusedNotReady, 1);
  const ready = new Promise<void>((r) => server.once('ready', () => r()));
  await lateNats(port);
  await ready;
  const client = await MessageClient.connect({ port: msgPort, clientId: 6 });
  cleanups.push(() => client.close());
  assert.equal((await client.send('after')).statusName, 'OK');
});

test('a budget that runs out: REPLICATION_FAILED after retryMs, counted in retryExhausted, never OK', { skip, timeout: 30_000 }, async () => {
  const url = `nats://127.0.0.1:${await freePort()}`; // nothing listens there
  const server = new MessageServer(replicated(url, 'GONE', { retryMs: 800 }));
  cleanups.push(() => server.close());
  const { port } = await server.listen();
  const client = await MessageClient.connect({ port, clientId: 7 });
  cleanups.push(() => client.close());
  const t0 = Date.now();
  const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => client.send(`x-${i}`)));
  const waited = Date.now() - t0;
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.ok(r.reason instanceof AckError && r.reason.statusName === 'REPLICATION_FAILED', String(r.reason));
  }
  assert.ok(waited >= 700 && waited < 10_000, `answered after ${waited} ms`);
  const js = server.stats().jetstream!;
  assert.equal(js.retryExhausted, 20);
  assert.equal(js.held, 0);
  assert.equal(server.stats().acks.OK, 0);
});
