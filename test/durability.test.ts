// Durability: crash recovery (SIGKILL at random moments), torn tails and
// corruption on start, group commit in durable mode, disk faults, rotation
// under load.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { MessageClient, MessageServer, readLog, verifyLog } from '../dist/index';
import { encodeRecord } from '../dist/format/record';
import { prng, randomBytes, tempDir } from './helpers';

const CHILD = path.join(__dirname, 'fixtures', 'server-child.js');

interface Child {
  proc: ChildProcess;
  port: number;
  lines: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
}

/** Starts the server in a child process; resolves once it listens. */
function startChild(options: object, wrap: string[] = []): Promise<Child> {
  const argv = [...wrap, process.execPath, CHILD, JSON.stringify(options)];
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Array<Record<string, unknown>> = [];
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout!.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const obj = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        lines.push(obj);
        if (typeof obj.listening === 'number') resolve({ proc, port: obj.listening, lines, exited });
        if (obj.error) reject(new Error(obj.error));
      }
    });
    exited.then((code) => reject(new Error(`server child exited with ${code} before listening`)));
  });
}

test('SIGKILL at random moments, 20 times: every ACKed message is in the file exactly once', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'crash.log');
  const rand = prng(Number(process.env.MSGS_SEED ?? 12345));
  const acked = new Map<number, Set<bigint>>(); // clientId -> acked msg ids
  for (let round = 0; round < 20; round++) {
    const child = await startChild({ port: 0, serviceThreads: 2, ackMode: 'written', file: { path: file } });
    const clients = await Promise.all(
      [0, 1, 2, 3].map((k) => MessageClient.connect({ firstMsgId: 1, port: child.port, clientId: round * 10 + k, window: 64 })),
    );
    // Each client sends continuously until the connection dies with the server.
    const loops = clients.map(async (c) => {
      const mine = new Set<bigint>();
      acked.set(c.clientId, mine);
      const inflight = new Set<Promise<void>>();
      for (let i = 0; !c.closed; i++) {
        const p: Promise<void> = c.send(randomBytes(rand, (rand() * 300) | 0), { name: `r${round}` }).then(
          (a) => void mine.add(a.msgId),
          () => {},
        );
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
        if (inflight.size >= 64) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    });
    await new Promise((r) => setTimeout(r, 30 + rand() * 250)); // the random kill moment, not a synchronisation
    child.proc.kill('SIGKILL');
    await child.exited;
    await Promise.all(loops);
    await Promise.all(clients.map((c) => c.close()));
  }
  // One more start recovers whatever the last kill left, then the file is checked.
  const last = await startChild({ port: 0, serviceThreads: 1, file: { path: file } });
  last.proc.kill('SIGTERM');
  assert.equal(await last.exited, 0);
  const v = await verifyLog(file);
  assert.equal(v.ok, true, `${v.reason} at ${v.firstBadOffset}`);
  const seen = new Map<number, Map<bigint, number>>();
  for await (const rec of readLog(file)) {
    const m = seen.get(rec.clientId) ?? new Map<bigint, number>();
    m.set(rec.msgId, (m.get(rec.msgId) ?? 0) + 1);
    seen.set(rec.clientId, m);
  }
  let total = 0;
  for (const [clientId, ids] of acked) {
    for (const id of ids) assert.equal(seen.get(clientId)?.get(id), 1, `ACKed ${clientId}/${id} exactly once in the file`);
    total += ids.size;
  }
  for (const m of seen.values()) for (const n of m.values()) assert.equal(n, 1, 'no message twice');
  assert.ok(total > 1000, `${total} ACKed messages checked`);
});

async function fillLog(file: string, n: number): Promise<void> {
  const server = new MessageServer({ port: 0, serviceThreads: 1, file: { path: file } });
  const { port } = await server.listen();
  const c = await MessageClient.connect({ firstMsgId: 1, port, clientId: 1 });
  await Promise.all(Array.from({ length: n }, (_, i) => c.send(`record ${i}`)));
  await c.close();
  await server.close();
}

test('a torn tail (partial record, or garbage) is cut on start, reported, and seq continues', async () => {
  for (const kind of ['partial record', 'random bytes'] as const) {
    const dir = tempDir();
    const file = path.join(dir, 'torn.log');
    await fillLog(file, 100);
    const goodSize = fs.statSync(file).size;
    const tail =
      kind === 'partial record'
        ? encodeRecord({ seq: 101n, timeUs: 1n, clientId: 1, msgId: 101n, name: Buffer.from('x'), payload: Buffer.alloc(500, 7) }).subarray(0, 300)
        : randomBytes(prng(3), 777);
    fs.appendFileSync(file, tail);
    const server = new MessageServer({ port: 0, serviceThreads: 1, file: { path: file } });
    const recovered = new Promise<{ offset: number; bytesCut: number; lastSeq: number }>((r) => server.once('recovered', r));
    const { port } = await server.listen();
    const info = await recovered;
    assert.deepEqual([info.offset, info.bytesCut, info.lastSeq], [goodSize, tail.length, 100], kind);
    assert.equal(server.stats().tornBytesCut, tail.length);
    const c = await MessageClient.connect({ firstMsgId: 1, port, clientId: 2 });
    await c.send('after recovery');
    await c.close();
    await server.close();
    const v = await verifyLog(file);
    assert.deepEqual([v.ok, v.records, v.lastSeq], [true, 101, 101n], kind);
  }
});

test('corruption in the middle refuses to start, naming file and offset; repair sets it aside', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'mid.log');
  await fillLog(file, 50);
  const records = [];
  for await (const r of readLog(file)) records.push(r);
  const bad = records[20].offset;
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from([0xff, 0xff]), 0, 2, bad + 20); // inside record 21's body
  fs.closeSync(fd);
  const server = new MessageServer({ port: 0, serviceThreads: 1, file: { path: file } });
  await assert.rejects(server.listen(), new RegExp(`${file.replace(/[.]/g, '\\.')}: corrupt record at byte offset ${bad} .*repair`));
  const repaired = new MessageServer({ port: 0, serviceThreads: 1, file: { path: file, repair: true } });
  const event = new Promise<{ message: string; lastSeq: number }>((r) => repaired.once('recovered', r));
  const { port } = await repaired.listen();
  const info = await event;
  assert.match(info.message, /damaged file kept as .*mid\.log\.corrupt-\d+/);
  assert.equal(info.lastSeq, 50, 'continues after the highest seq found, also after the damage');
  const c = await MessageClient.connect({ firstMsgId: 1, port, clientId: 3 });
  await c.send('in the clean file');
  await c.close();
  await repaired.close();
  const v = await verifyLog(file);
  assert.deepEqual([v.ok, v.records, v.firstSeq], [true, 1, 51n]);
  assert.equal(fs.readdirSync(dir).filter((n) => n.startsWith('mid.log.corrupt-')).length, 1);
});

test('durable mode: no ACK before its fsync, and one fsync covers many messages', async (t) => {
  const dir = tempDir();
  const server = new MessageServer({ port: 0, serviceThreads: 2, ackMode: 'durable', file: { path: path.join(dir, 'd.log') } });
  const { port } = await server.listen();
  t.after(() => server.close());
  const clients = await Promise.all(Array.from({ length: 16 }, (_, i) => MessageClient.connect({ firstMsgId: 1, port, clientId: i, window: 64 })));
  let violations = 0;
  let samples = 0;
  const sampler = setInterval(() => {
    const s = server.stats(); // reads the ACK counters before the fsync counters
    samples++;
    if (s.acks.OK > s.syncedRecords) violations++;
  }, 2);
  await Promise.all(clients.flatMap((c) => Array.from({ length: 2000 }, (_, i) => c.send(`durable ${i}`))));
  clearInterval(sampler);
  const s = server.stats();
  assert.equal(violations, 0, `ACKed beyond synced in ${violations} of ${samples} samples`);
  assert.equal(s.acks.OK, 32_000);
  assert.ok(s.syncedRecords >= s.acks.OK);
  const perFsync = s.syncedRecords / s.fsyncs;
  console.log(`# durable: ${s.fsyncs} fsyncs for ${s.syncedRecords} messages = ${perFsync.toFixed(1)} messages per fsync`);
  assert.ok(perFsync > 4, `group commit: ${perFsync.toFixed(1)} messages per fsync`);
  await Promise.all(clients.map((c) => c.close()));
});

test('disk faults (RLIMIT_FSIZE): WRITE_FAILED, never OK; the file verifies; ingest resumes', async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'full.log');
  const limit = 256 * 1024;
  const child = await startChild({ port: 0, serviceThreads: 1, file: { path: file } }, ['prlimit', `--fsize=${limit}:unlimited`, '--']);
  t.after(() => child.proc.kill('SIGKILL'));
  const c = await MessageClient.connect({ firstMsgId: 1, port: child.port, clientId: 5, window: 8 });
  const ok: bigint[] = [];
  const failed: bigint[] = [];
  const send = async (i: number): Promise<void> => {
    try {
      ok.push((await c.send(Buffer.alloc(1000, i % 251), { name: 'fill' })).msgId);
    } catch (err) {
      const e = err as { statusName?: string; msgId?: bigint };
      assert.equal(e.statusName, 'WRITE_FAILED');
      failed.push(e.msgId!);
    }
  };
  for (let i = 0; i < 400; i++) await send(i);
  assert.ok(ok.length > 100 && failed.length > 0, `${ok.length} OK then ${failed.length} WRITE_FAILED`);
  assert.ok(fs.statSync(file).size <= limit);
  assert.equal((await verifyLog(file)).ok, true, 'the file stays valid after failed writes');
  // Space again: the same server takes writes.
  const raised = spawnSync('prlimit', [`--pid=${child.proc.pid}`, '--fsize=unlimited:unlimited']);
  assert.equal(raised.status, 0, raised.stderr?.toString());
  const before = ok.length;
  for (let i = 0; i < 50; i++) await send(i);
  assert.equal(ok.length, before + 50, 'ingest resumed');
  await c.close();
  child.proc.kill('SIGTERM');
  assert.equal(await child.exited, 0);
  const inFile = new Set<bigint>();
  for await (const r of readLog(file)) inFile.add(r.msgId);
  for (const id of ok) assert.ok(inFile.has(id), `OK ${id} is in the file`);
  for (const id of failed) assert.ok(!inFile.has(id), `WRITE_FAILED ${id} is not`);
});

test('rotation under load: 100,000 messages across many segments, read back in order, none split', async (t) => {
  const dir = path.join(tempDir(), 'segments');
  const server = new MessageServer({ port: 0, serviceThreads: 2, file: { path: dir, rotateBytes: 256 * 1024 } });
  const rotated: string[] = [];
  server.on('rotate', (r) => rotated.push(r.closed));
  const { port } = await server.listen();
  t.after(() => server.close());
  const clients = await Promise.all([1, 2, 3, 4].map((clientId) => MessageClient.connect({ firstMsgId: 1, port, clientId, window: 256 })));
  await Promise.all(clients.flatMap((c) => Array.from({ length: 25_000 }, (_, i) => c.send(`m${i}`.padEnd(20 + (i % 200), '.')))));
  await Promise.all(clients.map((c) => c.close()));
  await server.close();
  const segments = fs.readdirSync(dir).sort();
  assert.ok(segments.length > 20, `${segments.length} segments`);
  assert.equal(rotated.length, segments.length - 1, 'a rotate event for every closed segment');
  for (const s of segments) assert.ok(fs.statSync(path.join(dir, s)).size <= 256 * 1024, `${s} within rotateBytes`);
  let seq = 0n;
  const next = new Map<number, bigint>();
  for await (const r of readLog(dir)) {
    assert.equal(r.seq, ++seq);
    assert.equal(r.msgId, (next.get(r.clientId) ?? 0n) + 1n);
    next.set(r.clientId, r.msgId);
  }
  assert.equal(seq, 100_000n);
  // Every segment is valid on its own: no record straddles two files.
  for (const s of segments) assert.equal((await verifyLog(path.join(dir, s))).ok, true, s);
});
