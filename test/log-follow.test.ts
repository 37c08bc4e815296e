// readLog({ follow: true }): a live tail over a file or a segment directory
// that reads only new bytes, waits for a partial record to be completed,
// follows rotation without losing or repeating a record, stops on an
// AbortSignal or return(), and costs (nearly) no CPU while idle.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';

import { MessageClient, MessageServer, readLog } from '../dist/index';
import { encodeFileHeader, encodeRecord, type LogRecord } from '../dist/format/record';
import { tempDir } from './helpers';

const root = tempDir('msgs-follow-');
after(() => fs.rmSync(root, { recursive: true, force: true }));

const T0 = 1_700_000_000_000_000n;

function rec(seq: bigint, payload: Buffer | string = `payload ${seq}`): Buffer {
  return encodeRecord({ seq, timeUs: T0 + seq, clientId: 7, msgId: seq, name: Buffer.from('n'), payload: Buffer.from(payload) });
}

/** Pulls records from `it` until `n` arrived (or the signal ends the iteration). */
async function take(it: AsyncIterator<LogRecord>, n: number): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  while (out.length < n) {
    const step = await it.next();
    if (step.done) break;
    out.push(step.value);
  }
  return out;
}

/** A promise for the follower's next "caught up" (it read everything and waits). */
function caughtUpTracker(): { onCaughtUp: () => void; next: () => Promise<void> } {
  let waiters: Array<() => void> = [];
  return {
    onCaughtUp: () => {
      const w = waiters;
      waiters = [];
      for (const r of w) r();
    },
    next: () => new Promise<void>((r) => waiters.push(r)),
  };
}

test('follow a file: appends, a record written in pieces, then abort', async () => {
  const file = path.join(root, 'pieces.log');
  fs.writeFileSync(file, Buffer.concat([encodeFileHeader(), rec(1n), rec(2n)]));
  const ac = new AbortController();
  const up = caughtUpTracker();
  const it = readLog(file, { follow: true, signal: ac.signal, onCaughtUp: up.onCaughtUp, pollMs: 50 })[Symbol.asyncIterator]();
  assert.deepEqual((await take(it, 2)).map((r) => r.seq), [1n, 2n]);

  // Record 3 arrives in three pieces: nothing is yielded until it is whole.
  const r3 = rec(3n, 'x'.repeat(5000));
  const pending = it.next();
  let settled = false;
  void pending.then(() => (settled = true));
  const fd = fs.openSync(file, 'a');
  for (const [a, b] of [[0, 5], [5, 3000], [3000, r3.length]]) {
    const seen = up.next();
    fs.writeSync(fd, r3.subarray(a, b));
    if (b < r3.length) {
      await seen; // it read the piece and waits again
      assert.equal(settled, false, `nothing yielded after ${b} of ${r3.length} bytes`);
    }
  }
  const got = await pending;
  assert.equal(got.done, false);
  assert.equal((got.value as LogRecord).seq, 3n);
  assert.equal((got.value as LogRecord).payload.toString(), 'x'.repeat(5000));
  fs.writeSync(fd, Buffer.concat([rec(4n), rec(5n)]));
  fs.closeSync(fd);
  assert.deepEqual((await take(it, 2)).map((r) => r.seq), [4n, 5n]);

  // Abort while it waits: the pending next() ends the iteration.
  const waiting = it.next();
  ac.abort();
  assert.deepEqual(await waiting, { done: true, value: undefined });
});

test('return() stops a follower that is waiting and closes its file', { skip: !fs.existsSync('/proc/self/fd') }, async () => {
  const file = path.join(root, 'ret.log');
  fs.writeFileSync(file, Buffer.concat([encodeFileHeader(), rec(1n)]));
  const openFds = (): number => fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false;
    }
  }).length;
  const it = readLog(file, { follow: true })[Symbol.asyncIterator]();
  assert.equal((await take(it, 1))[0].seq, 1n);
  const waiting = it.next(); // nothing more: it waits (without pollMs, for 1 s polls)
  assert.equal(openFds(), 1);
  await it.return!();
  assert.deepEqual(await waiting, { done: true, value: undefined });
  assert.equal(openFds(), 0, 'file closed');
});

test('follow: fromSeq, an empty directory that gets its first segment, and rotation by hand', async () => {
  const dir = path.join(root, 'byhand');
  fs.mkdirSync(dir);
  const seg = (first: bigint): string => path.join(dir, `${first.toString().padStart(20, '0')}.log`);
  const ac = new AbortController();
  const up = caughtUpTracker();
  const it = readLog(dir, { follow: true, fromSeq: 3n, signal: ac.signal, onCaughtUp: up.onCaughtUp, pollMs: 50 })[Symbol.asyncIterator]();
  const first = it.next();
  await up.next(); // waiting for a segment
  fs.writeFileSync(seg(1n), Buffer.concat([encodeFileHeader(), rec(1n), rec(2n), rec(3n)]));
  assert.equal(((await first).value as LogRecord).seq, 3n, 'records below fromSeq are skipped');
  // Closed by hand: more records in the old segment, then the new segment.
  fs.appendFileSync(seg(1n), rec(4n));
  fs.writeFileSync(seg(5n), Buffer.concat([encodeFileHeader(), rec(5n)]));
  fs.writeFileSync(seg(6n), Buffer.concat([encodeFileHeader(), rec(6n), rec(7n)]));
  assert.deepEqual((await take(it, 4)).map((r) => r.seq), [4n, 5n, 6n, 7n]);
  ac.abort();
  assert.equal((await it.next()).done, true);
});

test('follow: a closed segment that ends in a partial record is corruption', async () => {
  const dir = path.join(root, 'partial-closed');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, '00000000000000000001.log'), Buffer.concat([encodeFileHeader(), rec(1n), rec(2n).subarray(0, 20)]));
  fs.writeFileSync(path.join(dir, '00000000000000000002.log'), Buffer.concat([encodeFileHeader(), rec(2n)]));
  const it = readLog(dir, { follow: true, pollMs: 50 })[Symbol.asyncIterator]();
  assert.equal((await it.next()).value?.seq, 1n);
  await assert.rejects(it.next(), /closed segment ends in a partial record/);
});

test('follow across rotations under load: every record exactly once, in order', async (t) => {
  const dir = path.join(tempDir('msgs-follow-load-'), 'segments');
  t.after(() => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));
  const server = new MessageServer({ port: 0, serviceThreads: 2, file: { path: dir, rotateBytes: 64 * 1024 } });
  let rotations = 0;
  server.on('rotate', () => rotations++);
  const { port } = await server.listen();
  t.after(() => server.close());

  const CLIENTS = 4;
  const PER = 5000;
  const ac = new AbortController();
  const timeout = setTimeout(() => ac.abort(), 60_000); // a bound, not a synchronisation
  t.after(() => clearTimeout(timeout));
  const records: LogRecord[] = [];
  const reading = (async () => {
    for await (const r of readLog(dir, { follow: true, signal: ac.signal })) {
      records.push(r);
      if (records.length === CLIENTS * PER) break;
    }
  })();

  const clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => MessageClient.connect({ firstMsgId: 1, port, clientId: i + 1, window: 256 })));
  await Promise.all(clients.map((c, k) => Promise.all(Array.from({ length: PER }, (_, i) => c.send(`c${k} m${i}`.padEnd(40 + (i % 100), '.'))))));
  await Promise.all(clients.map((c) => c.close()));
  await reading;
  assert.ok(rotations >= 3, `${rotations} rotations (want at least 3)`);
  assert.equal(records.length, CLIENTS * PER, 'every record (the follower did not time out)');
  const next = new Map<number, bigint>();
  records.forEach((r, i) => {
    assert.equal(r.seq, BigInt(i + 1), 'seq in order, none lost or repeated');
    assert.equal(r.msgId, (next.get(r.clientId) ?? 0n) + 1n, `client ${r.clientId} in order`);
    next.set(r.clientId, r.msgId);
  });
  for (let c = 1; c <= CLIENTS; c++) assert.equal(next.get(c), BigInt(PER));
});

/** A log of about `bytes` bytes, written with the record encoder in large appends. Returns the last seq. */
function writeBigLog(file: string, bytes: number): bigint {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, encodeFileHeader());
    const payload = Buffer.alloc(4000, 'p');
    let seq = 0n;
    let written = 16;
    while (written < bytes) {
      const batch: Buffer[] = [];
      for (let i = 0; i < 256; i++) batch.push(encodeRecord({ seq: ++seq, timeUs: T0 + seq, clientId: 1, msgId: seq, name: Buffer.from('big'), payload }));
      const b = Buffer.concat(batch);
      fs.writeSync(fd, b);
      written += b.length;
    }
    return seq;
  } finally {
    fs.closeSync(fd);
  }
}

test('an idle follower on a large file uses (nearly) no CPU', async (t) => {
  const file = path.join(root, 'big.log');
  const last = writeBigLog(file, 256 * 1024 * 1024);
  t.after(() => fs.rmSync(file, { force: true }));
  const ac = new AbortController();
  const up = caughtUpTracker();
  const caughtUp = up.next();
  let count = 0n;
  const reading = (async () => {
    for await (const r of readLog(file, { follow: true, signal: ac.signal, onCaughtUp: up.onCaughtUp })) {
      count++;
      assert.equal(r.seq, count);
    }
  })();
  await caughtUp;
  assert.equal(count, last, 'read the whole file before going idle');
  // The measurement window: 10 s of wall time with nothing written.
  const before = process.cpuUsage();
  await new Promise((r) => setTimeout(r, 10_000));
  const used = process.cpuUsage(before);
  const seconds = (used.user + used.system) / 1e6;
  t.diagnostic(`idle follower on ${(fs.statSync(file).size / 2 ** 20).toFixed(0)} MiB: ${seconds.toFixed(3)} s CPU over 10 s`);
  assert.ok(seconds < 0.5, `idle CPU ${seconds} s over 10 s`);
  // Still following: a new record arrives.
  fs.appendFileSync(file, rec(last + 1n));
  const more = (async () => {
    while (count < last + 1n) await up.next();
  })();
  await more;
  ac.abort();
  await reading;
  assert.equal(count, last + 1n);
});
