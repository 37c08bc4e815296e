// Message hooks and connection events.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';

import { MessageClient, MessageServer, readLog, type HookMessage } from '../dist/index';
import { rawExchange, tempDir } from './helpers';
import { encodeHello } from '../dist/format/codec';

const N = 100_000;

/** Resolves once `hook` has been called with `n` messages in all. */
function counting(n: number): { hook: (m: HookMessage[]) => void; seen: HookMessage[]; done: Promise<void> } {
  const seen: HookMessage[] = [];
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  return {
    seen,
    done,
    hook: (m) => {
      for (const x of m) seen.push(x);
      if (seen.length >= n) resolve();
    },
  };
}

test("policy 'block': the hook sees every message of a 100,000-message run exactly once", async (t) => {
  const dir = tempDir();
  const server = new MessageServer({ port: 0, serviceThreads: 2, file: { path: path.join(dir, 'h.log') } });
  const c = counting(N);
  let calls = 0;
  let maxBatch = 0;
  server.onMessages((m) => {
    calls++;
    maxBatch = Math.max(maxBatch, m.length);
    c.hook(m);
  }, { policy: 'block', maxBatch: 1000, maxBufferBytes: 64 * 1024 });
  const { port } = await server.listen();
  t.after(() => server.close());
  const clients = await Promise.all([1, 2, 3, 4].map((clientId) => MessageClient.connect({ firstMsgId: 1, port, clientId, window: 512 })));
  await Promise.all(clients.flatMap((cl) => Array.from({ length: N / 4 }, (_, i) => cl.send(`p${i}`, { name: `n${cl.clientId}` }))));
  await c.done;
  assert.equal(c.seen.length, N);
  assert.ok(maxBatch <= 1000 && calls > 1, `${calls} calls of at most ${maxBatch}`);
  const seqs = new Set(c.seen.map((m) => m.seq));
  assert.equal(seqs.size, N, 'every message exactly once');
  const next = new Map<number, bigint>();
  for (const m of c.seen) {
    assert.equal(m.msgId, (next.get(m.clientId) ?? 0n) + 1n, 'per-connection order');
    next.set(m.clientId, m.msgId);
    assert.equal(m.name, `n${m.clientId}`);
    assert.equal(m.payload.toString(), `p${Number(m.msgId) - 1}`);
  }
  const s = server.stats();
  assert.equal(s.hookDelivered, N);
  assert.equal(s.hookDropped, 0);
  await Promise.all(clients.map((cl) => cl.close()));
});

test("policy 'drop' with a slow hook: all ACKed and written, and the drop counter accounts for every unseen message", async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'd.log');
  const server = new MessageServer({ port: 0, serviceThreads: 2, file: { path: file } });
  let seen = 0;
  server.onMessages(
    (m) => {
      seen += m.length;
      const until = Date.now() + 5; // a deliberately slow hook
      while (Date.now() < until);
    },
    { policy: 'drop', maxBufferBytes: 4096 },
  );
  const { port } = await server.listen();
  const clients = await Promise.all([1, 2].map((clientId) => MessageClient.connect({ firstMsgId: 1, port, clientId, window: 256 })));
  const acks = await Promise.all(clients.flatMap((cl) => Array.from({ length: 25_000 }, (_, i) => cl.send(`drop ${i}`))));
  assert.equal(acks.length, 50_000);
  await Promise.all(clients.map((cl) => cl.close()));
  await server.close();
  // Hook calls already queued for the JS thread still arrive: wait until the
  // counters say every message was either delivered and seen, or dropped.
  const s = server.stats();
  while (seen < s.hookDelivered) await new Promise((r) => setImmediate(r));
  assert.equal(seen, s.hookDelivered);
  assert.equal(s.hookDelivered + s.hookDropped, 50_000, `${s.hookDelivered} seen + ${s.hookDropped} dropped`);
  assert.ok(s.hookDropped > 0, 'the slow hook made the server drop batches');
  let stored = 0;
  for await (const _ of readLog(file)) stored++;
  assert.equal(stored, 50_000, 'every message written regardless');
  void t;
});

test('a hook that throws emits error and keeps the server going; hooks can be removed while running', async (t) => {
  const dir = tempDir();
  const server = new MessageServer({ port: 0, serviceThreads: 1, file: { path: path.join(dir, 'e.log') } });
  const errors: Error[] = [];
  server.on('error', (e) => errors.push(e));
  const off = server.onMessages(() => {
    throw new Error('hook failed');
  });
  const { port } = await server.listen();
  t.after(() => server.close());
  const c = await MessageClient.connect({ firstMsgId: 1, port, clientId: 1 });
  await c.send('one');
  while (errors.length === 0) await new Promise((r) => setImmediate(r));
  assert.equal(errors[0].message, 'hook failed');
  off();
  const later = counting(1);
  server.onMessages(later.hook, { policy: 'block' });
  assert.equal((await c.send('two')).statusName, 'OK');
  await later.done;
  assert.equal(later.seen[0].payload.toString(), 'two');
  await c.close();
});

test('connection and disconnect events carry the documented payload', async (t) => {
  const dir = tempDir();
  const server = new MessageServer({ port: 0, serviceThreads: 2, file: { path: path.join(dir, 'ev.log') } });
  const conns: Array<{ id: number; remoteAddress: string; serviceThread: number }> = [];
  const gone: Array<{ id: number; reason: string; messagesReceived: number; unacked: number }> = [];
  let waiting: (() => void) | null = null;
  server.on('connection', (c) => conns.push(c));
  server.on('disconnect', (d) => {
    gone.push(d);
    waiting?.();
  });
  const listening = new Promise((r) => server.once('listening', r));
  const { port } = await server.listen();
  await listening;
  t.after(() => server.close());
  const c = await MessageClient.connect({ firstMsgId: 1, port, clientId: 1 });
  await Promise.all([c.send('a'), c.send('b'), c.send('c')]);
  let closed = new Promise<void>((r) => (waiting = r));
  await c.close();
  await closed;
  closed = new Promise<void>((r) => (waiting = r));
  await rawExchange(port, [encodeHello(2), Buffer.from([0, 0, 0, 5, 0x42, 0, 0, 0, 0])]);
  await closed;
  assert.equal(conns.length, 2);
  assert.match(conns[0].remoteAddress, /^127\.0\.0\.1:\d+$/);
  assert.ok(conns.every((x) => x.serviceThread >= 0 && x.serviceThread < 2));
  assert.notEqual(conns[0].id, conns[1].id);
  assert.deepEqual(gone[0], { id: conns[0].id, reason: 'closed by client', messagesReceived: 3, unacked: 0 });
  assert.equal(gone[1].id, conns[1].id);
  assert.equal(gone[1].reason, 'unknown frame type');
  const events: string[] = [];
  server.on('close', () => events.push('close'));
  await server.close();
  assert.deepEqual(events, ['close']);
});
