// MessageClient with several endpoints, against real servers: connect() skips
// endpoints that do not answer, a lost connection fails over to the next
// endpoint at once (round-robin, back-off once per whole round), the client id
// and the resent messages' ids stay the same across endpoints, and the options
// are validated.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';

import { MessageClient, type ClientEvents, type ResolvedEndpoint } from '../dist/client/client';
import { AckStatus, decodeClientFrame, encodeAck, encodeHelloOk, HELLO_SIZE } from '../dist/format/codec';
import { AckError, ReconnectFailedError } from '../dist/errors';
import { MessageServer, readLog } from '../dist/index';
import { freePort, tempDir } from './helpers';

const T = { timeout: 60_000 };


async function startServer(file: string, extra: Record<string, unknown> = {}): Promise<{ server: MessageServer; endpoint: ResolvedEndpoint }> {
  const server = new MessageServer({
    port: 0,
    serviceThreads: 2,
    file: { path: file, fsync: 'never' },
    limits: { maxMessageBytes: 64 * 1024, maxQueueBytes: 1024 * 1024 },
    ...extra,
  });
  const { host, port } = await server.listen();
  return { server, endpoint: { host, port } };
}

async function msgIdsIn(file: string, clientId: number): Promise<bigint[]> {
  if (!fs.existsSync(file)) return [];
  const ids: bigint[] = [];
  for await (const rec of readLog(file)) {
    assert.equal(rec.clientId, clientId, `${path.basename(file)}: record ${rec.seq} has another client id`);
    ids.push(rec.msgId);
  }
  return ids;
}

test('server A closed mid-stream: the client fails over to B at once, every message resolves OK and is stored', T, async (t) => {
  const dir = tempDir();
  const fileA = path.join(dir, 'a.log');
  const fileB = path.join(dir, 'b.log');
  // One fdatasync per message on A (durable, batches of one) and a small
  // server queue keep A well behind the client, so frames are unread in its
  // socket buffers when it closes: those are resent to B. (With group commit
  // A can keep up, and then nothing is in flight to resend.)
  const a = await startServer(fileA, { ackMode: 'durable', file: { path: fileA, fsync: 'batch' }, batch: { maxMessages: 1 } });
  const b = await startServer(fileB);
  t.after(() => a.server.close());
  t.after(() => b.server.close());

  const CLIENT_ID = 777;
  const TOTAL = 3_000;
  const CLOSE_AT = 800;
  const PAD = 'p'.repeat(32 * 1024); // 1024 in flight x 32 KiB against a 1 MiB queue
  const client = await MessageClient.connect({
      firstMsgId: 1,
    endpoints: [a.endpoint, b.endpoint],
    clientId: CLIENT_ID,
    window: 1024,
    maxQueued: 1_000,
    // A huge initial delay: if the first attempt were not immediate, the test would time out.
    reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000, maxAttempts: 2 },
    resend: true,
  });
  t.after(() => client.close());
  assert.deepEqual(client.endpoint, a.endpoint, 'connect() uses the first endpoint when it answers');

  const reconnects: ClientEvents['reconnect'][0][] = [];
  const failovers: ClientEvents['failover'][0][] = [];
  const reconnected: ClientEvents['reconnected'][0][] = [];
  const resentIds: bigint[] = [];
  client.on('reconnect', (e) => reconnects.push(e));
  client.on('failover', (e) => failovers.push(e));
  client.on('reconnected', (e) => reconnected.push(e));
  client.on('resend', ({ msgIds }) => resentIds.push(...msgIds));
  const failedOver = new Promise<void>((resolve) => client.once('failover', () => resolve()));

  let acked = 0;
  let closeA: Promise<unknown> | null = null;
  const sends: Promise<unknown>[] = [];
  for (let i = 1; i <= TOTAL; i++) {
    await client.ready();
    sends.push(
      client.send(`message ${i} ${PAD}`).then((r) => {
        assert.equal(r.msgId, BigInt(i));
        assert.equal(r.statusName, 'OK');
        if (++acked === CLOSE_AT) closeA = a.server.close();
      }),
    );
  }
  await Promise.all(sends); // rejects if any send failed
  assert.ok(closeA !== null, 'server A was closed during the stream');
  await closeA;
  await failedOver;

  const st = client.stats();
  assert.equal(st.acked, TOTAL);
  assert.equal(st.failed, 0);
  assert.equal(st.reconnects, 1);
  assert.equal(st.failovers, 1);
  assert.equal(st.sent, TOTAL + st.resent);
  assert.equal(st.resent, resentIds.length);
  assert.ok(st.resent > 0, 'nothing was resent: the close did not catch messages in flight');
  assert.deepEqual(client.endpoint, b.endpoint, 'the current endpoint is B');
  assert.equal(client.connected, true);
  assert.deepEqual(failovers, [{ from: a.endpoint, to: b.endpoint }]);
  assert.deepEqual(reconnects, [{ attempt: 1, delayMs: 0, endpoint: b.endpoint }], 'one attempt, to B, without back-off');
  assert.deepEqual(reconnected, [{ attempts: 1, endpoint: b.endpoint }]);
  assert.equal(client.clientId, CLIENT_ID);

  await client.close();
  await b.server.close();

  // Every message in A's or B's file at least once (with the same client id,
  // checked by msgIdsIn); more than once only if it was resent.
  const inA = await msgIdsIn(fileA, CLIENT_ID);
  const inB = await msgIdsIn(fileB, CLIENT_ID);
  console.log(`# A stored ${inA.length}, B stored ${inB.length}, resent ${resentIds.length}`);
  assert.ok(inA.length >= CLOSE_AT, `A stored ${inA.length} messages, fewer than the ${CLOSE_AT} it ACKed`);
  assert.ok(inB.length > 0, 'B stored nothing: no failover happened');
  const seen = new Map<bigint, number>();
  for (const id of [...inA, ...inB]) seen.set(id, (seen.get(id) ?? 0) + 1);
  const resent = new Set(resentIds);
  for (let i = 1n; i <= BigInt(TOTAL); i++) {
    const n = seen.get(i) ?? 0;
    assert.ok(n >= 1, `message ${i} is in neither file`);
    if (n > 1) assert.ok(resent.has(i), `message ${i} is stored ${n} times but was not reported as resent`);
  }
  assert.equal(seen.size, TOTAL, 'no ids other than the ones sent');
  // Resent messages kept their ids (and the client id) on the new endpoint.
  const setB = new Set(inB);
  for (const id of resent) assert.ok(setB.has(id), `resent message ${id} is not in B's file`);
  // B's records are in send order after the failover: the resent ones first, then the rest.
  for (let i = 1; i < inB.length; i++) assert.ok(inB[i] > inB[i - 1], `B's records out of order at ${i}`);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('connect() skips a first endpoint that refuses, and one that never answers HELLO', T, async (t) => {
  const dir = tempDir();
  const b = await startServer(path.join(dir, 'b.log'));
  t.after(() => b.server.close());
  const refused = await freePort();
  // Accepts TCP but never sends HELLO_OK: only connectTimeoutMs gets past it.
  const silent = net.createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const silentPort = (silent.address() as net.AddressInfo).port;
  t.after(() => {
    silent.close();
  });

  const client = await MessageClient.connect({
      firstMsgId: 1,
    endpoints: [{ port: refused }, { host: '127.0.0.1', port: silentPort }, b.endpoint],
    connectTimeoutMs: 300,
    clientId: 5,
  });
  t.after(() => client.close());
  assert.deepEqual(client.endpoint, b.endpoint);
  const ack = await client.send('hello');
  assert.equal(ack.statusName, 'OK');
  assert.equal(client.stats().failovers, 0, 'the first connection is not a failover');
  await client.close();
  await b.server.close();
  const recs = [];
  for await (const r of readLog(path.join(dir, 'b.log'))) recs.push(r);
  assert.equal(recs.length, 1);
  assert.equal(recs[0].clientId, 5);
  assert.equal(recs[0].payload.toString(), 'hello');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('connect() with no endpoint answering rejects with an AggregateError naming each one', T, async () => {
  const p1 = await freePort();
  const p2 = await freePort();
  await assert.rejects(MessageClient.connect({ firstMsgId: 1, endpoints: [{ port: p1 }, { host: '127.0.0.1', port: p2 }] }), (err: unknown) => {
    assert.ok(err instanceof AggregateError);
    assert.equal(err.errors.length, 2);
    for (const e of err.errors) assert.equal((e as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    assert.match(err.message, new RegExp(`could not connect to any of 2 endpoints: 127\\.0\\.0\\.1:${p1} \\(.*\\); 127\\.0\\.0\\.1:${p2} \\(`));
    return true;
  });
  // A single endpoint rejects with its own error, as with port.
  await assert.rejects(MessageClient.connect({ firstMsgId: 1, endpoints: [{ port: p1 }] }), { code: 'ECONNREFUSED' });
});

test('reconnection goes round-robin: a round of endpoints at once, then back-off, then give up after maxAttempts', T, async (t) => {
  const dir = tempDir();
  const a = await startServer(path.join(dir, 'a.log'));
  t.after(() => a.server.close());
  const deadB = { host: '127.0.0.1', port: await freePort() };
  const deadC = { host: '127.0.0.1', port: await freePort() };
  const client = await MessageClient.connect({
      firstMsgId: 1,
    endpoints: [a.endpoint, deadB, deadC],
    reconnect: { initialDelayMs: 40, maxDelayMs: 1_000, maxAttempts: 5 },
  });
  t.after(() => client.close());
  const events: ClientEvents['reconnect'][0][] = [];
  client.on('reconnect', (e) => events.push(e));
  const closed = new Promise<Error | null>((resolve) => client.once('close', ({ error }) => resolve(error)));
  // Sent once the connection is gone, so it is queued (never written) and rejects when the client gives up.
  const pending = new Promise<unknown>((resolve) => client.once('disconnect', () => resolve(client.send('never stored'))));
  await a.server.close();
  const error = await closed;
  await assert.rejects(pending as Promise<unknown>, ReconnectFailedError);

  assert.ok(error instanceof ReconnectFailedError);
  assert.equal(error.attempts, 5);
  assert.deepEqual(
    events.map((e) => [e.attempt, e.endpoint]),
    [
      [1, deadB],
      [2, deadC],
      [3, a.endpoint],
      [4, deadB],
      [5, deadC],
    ],
  );
  // Round 1 (attempts 1-3) at once; round 2 starts after back-off step 1 (base 40: 20..40 ms with jitter).
  assert.deepEqual(
    events.map((e) => e.delayMs === 0),
    [true, true, true, false, true],
  );
  assert.ok(events[3].delayMs >= 20 && events[3].delayMs <= 40, `round 2 delay ${events[3].delayMs}`);
  assert.deepEqual(client.endpoint, a.endpoint, 'the endpoint stays the lost one while no other answered');
  assert.equal(client.stats().failovers, 0);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('one endpoint: reconnecting keeps its back-off from the first attempt (no failover)', T, async (t) => {
  const dir = tempDir();
  const a = await startServer(path.join(dir, 'a.log'));
  t.after(() => a.server.close());
  const client = await MessageClient.connect({ firstMsgId: 1, endpoints: [a.endpoint], reconnect: { initialDelayMs: 30, maxDelayMs: 30, maxAttempts: 1 } });
  t.after(() => client.close());
  const scheduled = new Promise<ClientEvents['reconnect'][0]>((resolve) => client.once('reconnect', resolve));
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  await a.server.close();
  const ev = await scheduled;
  assert.deepEqual(ev.endpoint, a.endpoint);
  assert.ok(ev.delayMs >= 15 && ev.delayMs <= 30, `delay ${ev.delayMs}`);
  await closed;
  fs.rmSync(dir, { recursive: true, force: true });
});

test('endpoints: validation names the option', async () => {
  const bad = (opts: unknown, re: RegExp, type: typeof TypeError | typeof RangeError) =>
    assert.rejects(MessageClient.connect(opts as never), (err: unknown) => {
      assert.ok(err instanceof type, `${String(err)} is not a ${type.name}`);
      assert.match((err as Error).message, re);
      return true;
    });
  await bad({}, /needs port \(or endpoints/, TypeError);
  await bad({ host: '127.0.0.1' }, /needs port \(or endpoints/, TypeError);
  await bad({ endpoints: [] }, /endpoints must be a non-empty array/, TypeError);
  await bad({ endpoints: 'localhost:9000' }, /endpoints must be a non-empty array/, TypeError);
  await bad({ port: 9000, endpoints: [{ port: 9001 }] }, /either host\/port or endpoints, not both/, TypeError);
  await bad({ host: 'h', endpoints: [{ port: 9001 }] }, /either host\/port or endpoints, not both/, TypeError);
  await bad({ endpoints: [{ port: 9000 }, { port: 0 }] }, /endpoints\[1\]\.port must be an integer 1\.\.65535, got 0/, RangeError);
  await bad({ endpoints: [{ host: 'h' }] }, /endpoints\[0\]\.port must be an integer/, RangeError);
  await bad({ endpoints: [{ host: '', port: 9000 }] }, /endpoints\[0\]\.host must be a non-empty string/, TypeError);
  await bad({ endpoints: [null] }, /endpoints\[0\] must be an object/, TypeError);
  await bad({ port: 0 }, /port must be an integer 1\.\.65535/, RangeError);
});

test('an ACK with status REPLICATION_FAILED rejects that send with AckError; no reconnect, no failover', T, async (t) => {
  // A fake server: HELLO_OK, then every message whose payload is 'fail' is ACKed REPLICATION_FAILED, the rest OK.
  const conns: net.Socket[] = [];
  const fake = net.createServer((sock) => {
    conns.push(sock);
    let buf = Buffer.alloc(0);
    let hello = false;
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!hello) {
        if (buf.length < HELLO_SIZE) return;
        buf = buf.subarray(HELLO_SIZE);
        hello = true;
        sock.write(encodeHelloOk(0, 1024));
      }
      for (let f = decodeClientFrame(buf, 0, 1024); f !== null; f = decodeClientFrame(buf, 0, 1024)) {
        buf = buf.subarray(f.size);
        const status = f.payload.toString() === 'fail' ? AckStatus.REPLICATION_FAILED : AckStatus.OK;
        sock.write(encodeAck(status, 1, f.msgId));
      }
    });
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  const port = (fake.address() as net.AddressInfo).port;
  t.after(() => {
    for (const c of conns) c.destroy();
    fake.close();
  });
  const other = await freePort();
  const client = await MessageClient.connect({ firstMsgId: 1, endpoints: [{ port }, { port: other }], reconnect: true, resend: true });
  t.after(() => client.close());
  assert.equal(AckStatus.REPLICATION_FAILED, 4);
  const [ok1, failed, ok2] = await Promise.allSettled([client.send('a'), client.send('fail'), client.send('b')]);
  assert.equal(ok1.status, 'fulfilled');
  assert.equal(ok2.status, 'fulfilled');
  assert.equal(failed.status, 'rejected');
  const err = (failed as PromiseRejectedResult).reason;
  assert.ok(err instanceof AckError, String(err));
  assert.equal(err.status, 4);
  assert.equal(err.statusName, 'REPLICATION_FAILED');
  assert.equal(err.msgId, 2n);
  const st = client.stats();
  assert.deepEqual([st.acked, st.failed, st.reconnects, st.failovers, st.resent], [2, 1, 0, 0, 0]);
  assert.equal(client.connected, true);
  assert.deepEqual(client.endpoint, { host: '127.0.0.1', port });
});
