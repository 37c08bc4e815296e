// Client reconnect against the real server: the server is closed and
// restarted (same port, same file) under a running client. With resend on,
// every message is in the file at least once, and a message is in it more
// than once only if the client reported it as resent.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { MessageClient, MessageServer, readLog } from '../dist/index';
import { freePort, tempDir } from './helpers';


const TOTAL = 2_000;
const RESTART_AT = 600; // ACKs seen before the server is closed
// 1024 in flight x 32 KiB = 32 MiB on its way, against a 1 MiB server queue
// and durable ACKs (each waits for an fdatasync): most of what is in flight
// sits unread in socket buffers when close() comes. The server discards it
// (it ACKs only what it parsed), so the client must resend it.
const PAD = 'x'.repeat(32 * 1024);
const CLIENT_ID = 4242;

test('server closed and restarted under a running client: with resend, every message is in the file at least once', { timeout: 60_000 }, async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'messages.log');
  const port = await freePort();
  // A small queue makes the service thread stop reading while the writer
  // catches up (TCP back-pressure), so frames wait unread when close() comes.
  const server = new MessageServer({
    port,
    serviceThreads: 2,
    ackMode: 'durable',
    file: { path: file, fsync: 'batch' },
    limits: { maxMessageBytes: 64 * 1024, maxQueueBytes: 1024 * 1024 },
  });
  await server.listen();
  t.after(() => server.close());

  const client = await MessageClient.connect({
      firstMsgId: 1,
    port,
    clientId: CLIENT_ID,
    window: 1024,
    maxQueued: 1_000,
    reconnect: { initialDelayMs: 10, maxDelayMs: 200, maxAttempts: 100 },
    resend: true,
  });
  t.after(() => client.close());
  const resentIds: bigint[] = [];
  let resendEvents = 0;
  let disconnects = 0;
  const disconnectErrors: string[] = [];
  client.on('resend', ({ count, msgIds }) => {
    assert.equal(count, msgIds.length);
    resendEvents++;
    resentIds.push(...msgIds);
  });
  client.on('disconnect', ({ error }) => {
    disconnects++;
    disconnectErrors.push(error.message);
  });

  let acked = 0;
  let restart: Promise<void> | null = null;
  const sends: Promise<unknown>[] = [];
  for (let i = 1; i <= TOTAL; i++) {
    await client.ready(); // back-pressure: keep at most window + maxQueued in the client
    sends.push(
      client.send(`message ${i} ${PAD}`, { name: 'reconnect-test' }).then((r) => {
        assert.equal(r.msgId, BigInt(i));
        if (++acked === RESTART_AT && restart === null) {
          // Close mid-stream (the client keeps sending) and start again on the same port and file.
          restart = server.close().then(async () => {
            await server.listen();
          });
        }
      }),
    );
  }
  await Promise.all(sends); // every send is ACKed OK in the end: none failed
  assert.ok(restart !== null, 'the server was restarted during the stream');
  await restart;
  await client.close();
  await server.close();

  const st = client.stats();
  console.log(`# disconnects ${disconnects} (${[...new Set(disconnectErrors)].join('; ')}), reconnects ${st.reconnects}, resent ${st.resent}`);
  assert.ok(disconnects >= 1, 'the client saw the server go away');
  assert.ok(st.resent > 0, 'nothing was resent: the restart did not catch messages in flight');
  assert.ok(st.reconnects >= 1, 'the client reconnected');
  assert.equal(st.acked, TOTAL);
  assert.equal(st.failed, 0);
  assert.equal(st.resent, resentIds.length, 'stats().resent matches the resend events');
  assert.equal(st.sent, TOTAL + st.resent);

  // Every message at least once; more than once only if it was resent.
  const seen = new Map<bigint, number>();
  for await (const rec of readLog(file)) {
    assert.equal(rec.clientId, CLIENT_ID);
    assert.equal(rec.payload.toString(), `message ${rec.msgId} ${PAD}`);
    seen.set(rec.msgId, (seen.get(rec.msgId) ?? 0) + 1);
  }
  const resent = new Set(resentIds);
  for (const id of resent) assert.ok(id >= 1n && id <= BigInt(TOTAL), `resent id ${id} was never sent`);
  for (let i = 1n; i <= BigInt(TOTAL); i++) {
    const n = seen.get(i) ?? 0;
    assert.ok(n >= 1, `message ${i} is not in the file`);
    if (n > 1) assert.ok(resent.has(i), `message ${i} is in the file ${n} times but was not reported as resent`);
  }
  assert.equal(seen.size, TOTAL);
  const duplicates = [...seen.values()].filter((n) => n > 1).length;
  console.log(`# resend events ${resendEvents}, ids resent ${resent.size}, duplicates in the file ${duplicates}`);
  fs.rmSync(dir, { recursive: true, force: true }); // kept for a look when the test fails
});
