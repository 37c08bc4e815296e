// Streaming log reader (lib/read/log-reader.ts) over files built with
// lib/format/record.ts: chunk boundaries, records bigger than a chunk, torn tails,
// corruption offsets, sequence order.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeFileHeader, encodeRecord, LogRecord } from '../dist/format/record';
import { LogCorruptError, readLog, verifyLog } from '../dist/read/log-reader';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msgs-log-reader-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;

// Deterministic pseudo-random numbers (xorshift32), so failures reproduce.
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

type Spec = { seq: bigint; timeUs: bigint; clientId: number; msgId: bigint; name: Buffer; payload: Buffer };

function makeRecords(count: number, maxPayload: number, seed = 1, firstSeq = 1n): Spec[] {
  const r = rng(seed);
  const out: Spec[] = [];
  for (let i = 0; i < count; i++) {
    const payload = Buffer.alloc(Math.floor(r() * maxPayload));
    for (let j = 0; j < payload.length; j++) payload[j] = Math.floor(r() * 256);
    out.push({
      seq: firstSeq + BigInt(i),
      timeUs: 1_700_000_000_000_000n + BigInt(i),
      clientId: Math.floor(r() * 2 ** 32),
      msgId: BigInt(i) * 3n + 1n,
      name: Buffer.from('q'.repeat(Math.floor(r() * 12)) + (i % 3 === 0 ? 'é' : '')),
      payload,
    });
  }
  return out;
}

// Writes header + records (+ extra bytes); returns the path and record offsets.
function writeLog(recs: Spec[], extra?: Buffer): { file: string; offsets: number[]; bytes: Buffer } {
  const parts: Buffer[] = [encodeFileHeader()];
  const offsets: number[] = [];
  let at = 16;
  for (const r of recs) {
    const b = encodeRecord(r);
    offsets.push(at);
    at += b.length;
    parts.push(b);
  }
  if (extra) parts.push(extra);
  const bytes = Buffer.concat(parts);
  const file = path.join(dir, `log-${fileNo++}.bin`);
  fs.writeFileSync(file, bytes);
  return { file, offsets, bytes };
}

function rewrite(bytes: Buffer): string {
  const file = path.join(dir, `log-${fileNo++}.bin`);
  fs.writeFileSync(file, bytes);
  return file;
}

async function collect(file: string, opts?: Parameters<typeof readLog>[1]): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const r of readLog(file, opts)) out.push(r);
  return out;
}

// Reads until the error; returns what was yielded and the error.
async function collectUntilError(file: string, opts?: Parameters<typeof readLog>[1]): Promise<{ recs: LogRecord[]; err: LogCorruptError }> {
  const recs: LogRecord[] = [];
  try {
    for await (const r of readLog(file, opts)) recs.push(r);
  } catch (e) {
    assert.ok(e instanceof LogCorruptError, String(e));
    return { recs, err: e };
  }
  assert.fail('readLog did not throw');
}

function sameRecords(got: LogRecord[], want: Spec[], offsets: number[]): void {
  assert.equal(got.length, want.length);
  got.forEach((g, i) => {
    const w = want[i];
    assert.equal(g.seq, w.seq);
    assert.equal(g.timeUs, w.timeUs);
    assert.equal(g.clientId, w.clientId);
    assert.equal(g.msgId, w.msgId);
    assert.deepEqual(g.nameBytes, w.name);
    assert.equal(g.name, w.name.toString('utf8'));
    assert.deepEqual(g.payload, w.payload);
    assert.equal(g.offset, offsets[i]);
  });
}

test('round trip of many records across 1 MiB chunk boundaries', async () => {
  const recs = makeRecords(3000, 1500, 1); // about 2.3 MB
  const { file, offsets } = writeLog(recs);
  const got = await collect(file);
  sameRecords(got, recs, offsets);
  // Records stay intact after the reader has moved on (no buffer reuse).
  assert.deepEqual(got[0].payload, recs[0].payload);
});

test('round trip with tiny chunks (every record straddles a boundary)', async () => {
  const recs = makeRecords(200, 120, 2);
  const { file, offsets } = writeLog(recs);
  for (const chunkSize of [1, 7, 37, 64, 100, 4096]) {
    sameRecords(await collect(file, { chunkSize }), recs, offsets);
  }
});

test('a record larger than the chunk size', async () => {
  const big = makeRecords(3, 10, 3);
  big[1].payload = Buffer.alloc(3 * 1024 * 1024 + 17, 0x5a); // 3 MiB > 1 MiB chunk
  const { file, offsets } = writeLog(big);
  sameRecords(await collect(file), big, offsets);
  sameRecords(await collect(file, { chunkSize: 1000 }), big, offsets);
  const v = await verifyLog(file);
  assert.equal(v.ok, true);
  assert.equal(v.records, 3);
});

test('fromSeq skips earlier records', async () => {
  const recs = makeRecords(50, 50, 4, 100n);
  const { file, offsets } = writeLog(recs);
  const got = await collect(file, { fromSeq: 130n });
  sameRecords(got, recs.slice(30), offsets.slice(30));
});

test('verifyLog on a clean file', async () => {
  const recs = makeRecords(100, 300, 5, 10n);
  const { file, bytes } = writeLog(recs);
  assert.deepEqual(await verifyLog(file), {
    path: file,
    ok: true,
    records: 100,
    bytes: bytes.length,
    firstSeq: 10n,
    lastSeq: 109n,
    firstBadOffset: null,
    reason: null,
    tornTail: false,
    segments: 1,
    file: null,
  });
});

test('torn tail: every cut of the last record', async () => {
  const recs = makeRecords(6, 80, 6);
  const { bytes, offsets } = writeLog(recs);
  const lastAt = offsets[5];
  for (let cut = lastAt + 1; cut < bytes.length; cut++) {
    const file = rewrite(bytes.subarray(0, cut));
    const { recs: got, err } = await collectUntilError(file, { chunkSize: 64 });
    assert.equal(got.length, 5, `cut ${cut}`);
    assert.equal(err.offset, lastAt);
    assert.equal(err.tornTail, true);
    assert.equal(err.path, file);
    // allowTornTail: the good records, then a quiet end.
    assert.equal((await collect(file, { allowTornTail: true })).length, 5);
    const v = await verifyLog(file);
    assert.equal(v.ok, false);
    assert.equal(v.tornTail, true);
    assert.equal(v.firstBadOffset, lastAt);
    assert.equal(v.records, 5);
    assert.equal(v.bytes, cut);
    assert.match(v.reason ?? '', /torn tail/);
  }
});

test('torn tail: garbage or zeros after the last record', async () => {
  const recs = makeRecords(10, 100, 7);
  const r = rng(99);
  const garbage = Buffer.from(Array.from({ length: 5000 }, () => Math.floor(r() * 256)));
  for (const extra of [garbage, Buffer.alloc(4096)]) {
    const { file, bytes } = writeLog(recs, extra);
    const v = await verifyLog(file, { chunkSize: 512 });
    assert.equal(v.tornTail, true);
    assert.equal(v.firstBadOffset, bytes.length - extra.length);
    assert.equal(v.records, 10);
  }
});

test('corruption in the middle: verifyLog reports its offset', async () => {
  const recs = makeRecords(20, 200, 8);
  const { bytes, offsets } = writeLog(recs);
  const m = Buffer.from(bytes);
  m[offsets[7] + 8 + 20] ^= 0x40; // in record 7's msg_id
  const file = rewrite(m);
  const v = await verifyLog(file);
  assert.equal(v.ok, false);
  assert.equal(v.tornTail, false);
  assert.equal(v.firstBadOffset, offsets[7]);
  assert.equal(v.records, 7);
  assert.equal(v.lastSeq, recs[6].seq);
  assert.match(v.reason ?? '', /CRC mismatch/);
  assert.match(v.reason ?? '', new RegExp(`follows at offset ${offsets[8]}`));
  const { recs: got, err } = await collectUntilError(file);
  assert.equal(got.length, 7);
  assert.equal(err.offset, offsets[7]);
  assert.equal(err.tornTail, false);
  // allowTornTail does not hide corruption.
  await assert.rejects(collect(file, { allowTornTail: true }), LogCorruptError);
});

test('the CRC of every record is checked', async () => {
  const recs = makeRecords(15, 60, 9);
  const { bytes, offsets } = writeLog(recs);
  for (let i = 0; i < recs.length; i++) {
    const m = Buffer.from(bytes);
    m[offsets[i] + 8 + 10] ^= 0x01; // a body byte (time_us): only the CRC can tell
    const { recs: got, err } = await collectUntilError(rewrite(m), { chunkSize: 50 });
    assert.equal(got.length, i);
    assert.equal(err.offset, offsets[i]);
    assert.equal(err.tornTail, i === recs.length - 1); // nothing valid after the last one
  }
});

test('sequence numbers must increase', async () => {
  const recs = makeRecords(5, 30, 10);
  recs[3].seq = recs[2].seq; // repeat
  const { file, offsets } = writeLog(recs);
  const v = await verifyLog(file);
  assert.equal(v.ok, false);
  assert.equal(v.firstBadOffset, offsets[3]);
  assert.equal(v.tornTail, false);
  assert.match(v.reason ?? '', /sequence/);
});

test('header cases: empty, header only, torn header, not a log', async () => {
  const empty = rewrite(Buffer.alloc(0));
  assert.deepEqual(await collect(empty), []);
  assert.equal((await verifyLog(empty)).ok, true);

  const only = rewrite(encodeFileHeader());
  assert.deepEqual(await collect(only), []);
  const v = await verifyLog(only);
  assert.equal(v.ok, true);
  assert.equal(v.firstSeq, null);

  const torn = rewrite(encodeFileHeader().subarray(0, 9));
  const t = await verifyLog(torn);
  assert.equal(t.tornTail, true);
  assert.equal(t.firstBadOffset, 0);

  const notLog = rewrite(Buffer.from('hello world, this is not a log file'));
  const n = await verifyLog(notLog);
  assert.equal(n.ok, false);
  assert.equal(n.tornTail, false);
  assert.equal(n.firstBadOffset, 0);
  assert.match(n.reason ?? '', /not a log file/);
  await assert.rejects(collect(notLog, { allowTornTail: true }), LogCorruptError);
});

test('a missing file rejects with the fs error', async () => {
  await assert.rejects(collect(path.join(dir, 'nope.bin')), { code: 'ENOENT' });
  await assert.rejects(verifyLog(path.join(dir, 'nope.bin')), { code: 'ENOENT' });
});

test('stopping early closes the file', { skip: !fs.existsSync('/proc/self/fd') }, async () => {
  const { file } = writeLog(makeRecords(20, 10, 11));
  const fds = () => fs.readdirSync('/proc/self/fd').length;
  const before = fds();
  for (let i = 0; i < 50; i++) {
    for await (const r of readLog(file)) if (r.seq === 3n) break;
  }
  assert.equal(fds(), before);
});
