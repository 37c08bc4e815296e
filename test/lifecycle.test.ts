// Lifecycle: close() with messages in flight loses none that were ACKed; two
// servers in one process; start/close cycles leak no threads or fds; errors
// from listen() name the cause.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { MessageClient, MessageServer, readLog, verifyLog } from '../dist/index';
import { fdCount, tempDir, threadNames } from './helpers';

test('close() during a pipelined stream: every ACKed message is in the file', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'messages.log');
  const server = new MessageServer({ port: 0, serviceThreads: 2, file: { path: file } });
  const { port } = await server.listen();
  const clients = await Promise.all([1, 2, 3, 4].map((clientId) => MessageClient.connect({ firstMsgId: 1, port, clientId, window: 512 })));
  const acked = new Map<number, bigint[]>();
  let closeStarted: Promise<unknown> | null = null;
  let failures = 0;
  const sends = clients.flatMap((c) => {
    const mine: bigint[] = [];
    acked.set(c.clientId, mine);
    return Array.from({ length: 20_000 }, (_, i) =>
      c.send(`payload ${i}`).then(
        (r) => {
          mine.push(r.msgId);
          // Close once the stream is well under way, with thousands in flight.
          if (mine.length === 2000 && closeStarted === null) closeStarted = server.close();
        },
        () => failures++,
      ),
    );
  });
  await Promise.all(sends);
  await closeStarted;
  assert.ok(closeStarted !== null, 'close() ran during the stream');
  assert.ok(failures > 0, 'some sends were cut off by the close');
  const inFile = new Map<number, Set<bigint>>();
  for await (const rec of readLog(file)) {
    if (!inFile.has(rec.clientId)) inFile.set(rec.clientId, new Set());
    inFile.get(rec.clientId)!.add(rec.msgId);
  }
  let total = 0;
  for (const [id, ids] of acked) {
    for (const m of ids) assert.ok(inFile.get(id)?.has(m), `ACKed ${id}/${m} is in the file`);
    total += ids.length;
  }
  assert.ok(total >= 2000);
  await Promise.all(clients.map((c) => c.close()));
});

test('two servers in one process, on different ports and files', async () => {
  const dir = tempDir();
  const a = new MessageServer({ port: 0, serviceThreads: 1, file: { path: path.join(dir, 'a.log') } });
  const b = new MessageServer({ port: 0, serviceThreads: 2, file: { path: path.join(dir, 'b.log') } });
  const [pa, pb] = await Promise.all([a.listen(), b.listen()]);
  assert.notEqual(pa.port, pb.port);
  const [ca, cb] = await Promise.all([MessageClient.connect({ firstMsgId: 1, port: pa.port, clientId: 1 }), MessageClient.connect({ firstMsgId: 1, port: pb.port, clientId: 2 })]);
  await Promise.all([
    ...Array.from({ length: 500 }, (_, i) => ca.send(`a${i}`)),
    ...Array.from({ length: 700 }, (_, i) => cb.send(`b${i}`)),
  ]);
  await Promise.all([ca.close(), cb.close()]);
  await Promise.all([a.close(), b.close()]);
  const va = await verifyLog(path.join(dir, 'a.log'));
  const vb = await verifyLog(path.join(dir, 'b.log'));
  assert.deepEqual([va.ok, va.records, vb.ok, vb.records], [true, 500, true, 700]);
});

test('20 start/close cycles leave no extra threads or fds; the file continues', async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'cycles.log');
  const server = new MessageServer({ port: 0, serviceThreads: 3, file: { path: file } });
  t.after(() => server.close()); // a failed assertion must not leave it running
  const cycle = async (i: number): Promise<void> => {
    const { port } = await server.listen();
    const names = threadNames();
    assert.equal(names.filter((n) => n.startsWith('msgs-')).length, 6, 'listener + 3 service + writer + fsync');
    const c = await MessageClient.connect({ firstMsgId: 1, port, clientId: i });
    await Promise.all(Array.from({ length: 50 }, (_, m) => c.send(`cycle ${i} msg ${m}`)));
    await c.close();
    await server.close();
    await server.close(); // idempotent
  };
  await cycle(0); // warm-up: loads the addon, starts libuv's worker pool
  const threads = threadNames().length;
  const fds = fdCount();
  for (let i = 1; i <= 20; i++) await cycle(i);
  assert.equal(threadNames().filter((n) => n.startsWith('msgs-')).length, 0);
  assert.equal(threadNames().length, threads, 'thread count back to the baseline');
  assert.equal(fdCount(), fds, 'fd count back to the baseline');
  const v = await verifyLog(file);
  assert.equal(v.ok, true);
  assert.equal(v.records, 21 * 50);
  assert.equal(v.lastSeq, BigInt(21 * 50), 'sequence numbers continue across restarts');
});

test('the log has a background thread (msgs-fsync) only where it has work: the interval sync outside durable mode, or the cache drops', async () => {
  const dir = tempDir();
  const keep = { dropCache: false };
  const cases: Array<[object, number]> = [
    [{ file: { path: path.join(dir, 'i.log') } }, 1],
    [{ file: { path: path.join(dir, 'i2.log'), ...keep } }, 1],
    [{ file: { path: path.join(dir, 'n.log'), fsync: 'never', ...keep } }, 0],
    [{ file: { path: path.join(dir, 'n2.log'), fsync: 'never' } }, 1],
    [{ file: { path: path.join(dir, 'b.log'), fsync: 'batch', ...keep } }, 0],
    [{ ackMode: 'durable', file: { path: path.join(dir, 'd.log'), ...keep } }, 0],
    [{ ackMode: 'durable', file: { path: path.join(dir, 'd2.log') } }, 1],
  ];
  for (const [opts, want] of cases) {
    const server = new MessageServer({ port: 0, serviceThreads: 1, ...opts });
    await server.listen();
    try {
      assert.equal(threadNames().filter((n) => n === 'msgs-fsync').length, want, JSON.stringify(opts));
    } finally {
      await server.close();
    }
    assert.equal(threadNames().filter((n) => n.startsWith('msgs-')).length, 0, 'close() ends every engine thread');
  }
});

test('listen() errors name the cause: address in use, unopenable file', async (t) => {
  const dir = tempDir();
  const a = new MessageServer({ port: 0, serviceThreads: 1, file: { path: path.join(dir, 'a.log') } });
  const { port } = await a.listen();
  t.after(() => a.close());
  const b = new MessageServer({ port, serviceThreads: 1, file: { path: path.join(dir, 'b.log') } });
  await assert.rejects(b.listen(), { message: `listen EADDRINUSE 127.0.0.1:${port}: Address already in use` });
  assert.equal(b.address(), null);

  const missing = path.join(dir, 'no-such-dir', 'm.log');
  const c = new MessageServer({ port: 0, serviceThreads: 1, file: { path: missing } });
  await assert.rejects(c.listen(), { message: `cannot open ${missing}: No such file or directory` });
  fs.mkdirSync(path.join(dir, 'adir'));
  const d = new MessageServer({ port: 0, serviceThreads: 1, file: { path: path.join(dir, 'adir') } });
  await assert.rejects(d.listen(), /cannot open .*adir: Is a directory/);
  // A failed listen leaves nothing running.
  assert.equal(
    threadNames().filter((n) => n.startsWith('msgs-')).length,
    4,
    'only server a runs (listener, 1 service, writer, fsync)',
  );
});

test('a bad config value names the field, the value and what is allowed', () => {
  assert.throws(
    () => new MessageServer({ port: 70000, ackMode: 'sometimes' as never }),
    (e: Error) => /port = 70000/.test(e.message) && /ackMode = 'sometimes'/.test(e.message) && /allowed/.test(e.message),
  );
});
