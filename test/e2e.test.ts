// End to end: 4 service threads, 16 concurrent clients x 5,000 messages of
// random sizes and names; every message ACKed OK, and the file then holds
// exactly those messages, each connection's in its order, every CRC valid.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';

import { MessageClient, MessageServer, readLog, verifyLog } from '../dist/index';
import { prng, randomBytes, tempDir, threadNames } from './helpers';

const MAX_MESSAGE_BYTES = 64 * 1024;
const CLIENTS = 16;
const PER_CLIENT = Number(process.env.MSGS_E2E_PER_CLIENT ?? 5000);

interface Sent {
  name: Buffer;
  payload: Buffer;
}

function payloadSize(rand: () => number): number {
  const r = rand();
  if (r < 0.01) return (rand() * MAX_MESSAGE_BYTES) | 0; // ~1 in 100: up to 64 KiB
  if (r < 0.015) return MAX_MESSAGE_BYTES; // some exactly at the limit
  return (rand() * 1025) | 0; // most: 0 to 1 KiB
}

function randomName(rand: () => number): Buffer {
  const len = rand() < 0.05 ? 255 : (rand() * 24) | 0;
  return Buffer.from(randomBytes(rand, len).toString('base64').slice(0, len));
}

test('16 clients x 5,000 random messages: all ACKed, all in the file, in order, CRCs valid', async (t) => {
  const seed = Number(process.env.MSGS_SEED ?? Date.now() % 1e9);
  console.log(`# seed ${seed} (set MSGS_SEED to reproduce)`);
  const dir = tempDir();
  const file = path.join(dir, 'messages.log');
  const server = new MessageServer({
    port: 0,
    serviceThreads: 4,
    file: { path: file },
    limits: { maxMessageBytes: MAX_MESSAGE_BYTES },
  });
  const { port } = await server.listen();
  t.after(() => server.close());

  // The acceptance criterion: listener, N service threads and the writer are
  // native threads of this process.
  const names = threadNames();
  assert.equal(names.filter((n) => n === 'msgs-listener').length, 1);
  assert.equal(names.filter((n) => /^msgs-svc-\d+$/.test(n)).length, 4);
  assert.equal(names.filter((n) => n === 'msgs-writer').length, 1);
  // fsync 'interval' (the default): the interval sync's own thread.
  assert.equal(names.filter((n) => n === 'msgs-fsync').length, 1);

  const sent = new Map<number, Sent[]>();
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, i) => {
      const clientId = 1000 + i;
      const rand = prng(seed + i);
      const client = await MessageClient.connect({ firstMsgId: 1, port, clientId, window: 256 });
      assert.equal(client.maxMessageBytes, MAX_MESSAGE_BYTES);
      const mine: Sent[] = [];
      sent.set(clientId, mine);
      const acks = [];
      for (let m = 0; m < PER_CLIENT; m++) {
        const msg = { name: randomName(rand), payload: randomBytes(rand, payloadSize(rand)) };
        mine.push(msg);
        acks.push(client.send(msg.payload, { name: msg.name }));
      }
      const results = await Promise.all(acks);
      results.forEach((r, m) => {
        assert.equal(r.statusName, 'OK');
        assert.equal(r.msgId, BigInt(m + 1));
      });
      await client.close();
    }),
  );
  const stats = server.stats();
  assert.equal(stats.messagesIn, CLIENTS * PER_CLIENT);
  assert.equal(stats.acks.OK, CLIENTS * PER_CLIENT);
  assert.ok(stats.ackFrames <= stats.acks.OK, 'ACK frames never outnumber ACKed messages');
  await server.close();

  // Every record, checked by readLog (CRC and sequence order), matches what
  // its client sent, in its client's order, exactly once.
  const next = new Map<number, number>();
  let count = 0;
  let lastSeq = 0n;
  for await (const rec of readLog(file)) {
    assert.ok(rec.seq > lastSeq);
    lastSeq = rec.seq;
    const mine = sent.get(rec.clientId);
    assert.ok(mine, `unknown client ${rec.clientId}`);
    const idx = next.get(rec.clientId) ?? 0;
    assert.equal(rec.msgId, BigInt(idx + 1), `client ${rec.clientId} order`);
    assert.ok(rec.nameBytes.equals(mine[idx].name), `name of ${rec.clientId}/${idx + 1}`);
    assert.ok(rec.payload.equals(mine[idx].payload), `payload of ${rec.clientId}/${idx + 1}`);
    next.set(rec.clientId, idx + 1);
    count++;
  }
  assert.equal(count, CLIENTS * PER_CLIENT);
  for (const [id, mine] of sent) assert.equal(next.get(id), mine.length, `all of client ${id}`);
  const v = await verifyLog(file);
  assert.equal(v.ok, true);
  assert.equal(v.records, CLIENTS * PER_CLIENT);
});

test('ackMode received and durable both store every message', async (t) => {
  for (const ackMode of ['received', 'durable'] as const) {
    const dir = tempDir();
    const file = path.join(dir, 'messages.log');
    const server = new MessageServer({ port: 0, serviceThreads: 2, ackMode, file: { path: file } });
    const { port } = await server.listen();
    t.after(() => server.close());
    const clients = await Promise.all([1, 2, 3].map((clientId) => MessageClient.connect({ firstMsgId: 1, port, clientId })));
    await Promise.all(clients.flatMap((c) => Array.from({ length: 2000 }, (_, i) => c.send(`m${i}`))));
    await Promise.all(clients.map((c) => c.close()));
    const stats = server.stats();
    if (ackMode === 'durable') {
      // Group commit: an fsync covered every acknowledged message, and one
      // fsync covered many of them.
      assert.ok(stats.syncedRecords >= stats.acks.OK, `${stats.syncedRecords} synced >= ${stats.acks.OK} acked`);
      assert.ok(stats.fsyncs < stats.acks.OK / 2, `${stats.fsyncs} fsyncs for ${stats.acks.OK} messages`);
    }
    await server.close();
    const v = await verifyLog(file);
    assert.equal(v.ok, true, ackMode);
    assert.equal(v.records, 6000, ackMode);
  }
});
