// Salvage: readLog(path, { salvage: true, onSkip }) and salvageLog(src, dest)
// recover every record that verifies from a damaged log, resynchronising
// after each damaged range, and report each skipped range.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';

import { readLog, salvageLog, verifyLog, type SkippedRange } from '../dist/index';
import { encodeFileHeader, encodeRecord, type LogRecord } from '../dist/format/record';
import { prng, randomBytes, tempDir } from './helpers';

const root = tempDir('msgs-salvage-');
after(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;

const T0 = 1_700_000_000_000_000n;

interface Built {
  file: string;
  bytes: Buffer;
  offsets: number[]; // of each record
  sizes: number[];
  seqs: bigint[];
}

/** A log of `count` records from `firstSeq`, payload sizes varied by a seeded PRNG. */
function build(count: number, seed: number, firstSeq = 1n, dir = root, name = `s-${n++}.log`): Built {
  const rand = prng(seed);
  const parts = [encodeFileHeader()];
  const offsets: number[] = [];
  const sizes: number[] = [];
  const seqs: bigint[] = [];
  let at = 16;
  for (let i = 0; i < count; i++) {
    const seq = firstSeq + BigInt(i);
    const payload = randomBytes(rand, 1 + Math.floor(rand() * 300));
    const b = encodeRecord({ seq, timeUs: T0 + seq, clientId: 3, msgId: seq * 10n, name: Buffer.from(`n${i % 7}`), payload });
    parts.push(b);
    offsets.push(at);
    sizes.push(b.length);
    seqs.push(seq);
    at += b.length;
  }
  const file = path.join(dir, name);
  const bytes = Buffer.concat(parts);
  fs.writeFileSync(file, bytes);
  return { file, bytes, offsets, sizes, seqs };
}

/** Overwrites [at, at + len) of the file with bytes from a PRNG; returns the damaged record indexes. */
function damage(b: Built, at: number, len: number, seed: number): number[] {
  const junk = randomBytes(prng(seed), len);
  const fd = fs.openSync(b.file, 'r+');
  fs.writeSync(fd, junk, 0, len, at);
  fs.closeSync(fd);
  const hit: number[] = [];
  b.offsets.forEach((o, i) => {
    if (o < at + len && o + b.sizes[i] > at) hit.push(i);
  });
  return hit;
}

async function salvage(p: string): Promise<{ records: LogRecord[]; skipped: SkippedRange[] }> {
  const skipped: SkippedRange[] = [];
  const records: LogRecord[] = [];
  for await (const r of readLog(p, { salvage: true, onSkip: (s) => skipped.push(s), chunkSize: 4096 })) records.push(r);
  return { records, skipped };
}

test('one damaged range: every intact record, the range reported', async () => {
  const b = build(500, 1);
  const hit = damage(b, b.offsets[200] + 10, 700, 99);
  assert.ok(hit.length >= 2);
  // readLog without salvage stops at the damage.
  await assert.rejects(async () => {
    for await (const _ of readLog(b.file)) void _;
  }, /CRC|impossible|name length/);
  const { records, skipped } = await salvage(b.file);
  const want = b.seqs.filter((_, i) => !hit.includes(i));
  assert.deepEqual(records.map((r) => r.seq), want);
  assert.equal(skipped.length, 1);
  const first = hit[0];
  const resume = hit[hit.length - 1] + 1;
  assert.deepEqual(skipped[0].file, b.file);
  assert.equal(skipped[0].offset, b.offsets[first]);
  assert.equal(skipped[0].length, b.offsets[resume] - b.offsets[first]);
  for (const r of records) assert.equal(r.msgId, r.seq * 10n);
});

test('several damaged ranges, zeros, a bad header and a torn tail: each reported, every intact record kept', async () => {
  const b = build(2000, 2);
  const hits = new Set<number>();
  const ranges: Array<[number, number]> = [];
  // Random damage at four places, one run of zeros, and the header.
  for (const [i, len, seed] of [[100, 50, 1], [400, 3000, 2], [401 + 40, 9, 3], [1500, 1, 4]] as const) {
    const at = b.offsets[i] + 3;
    damage(b, at, len, seed).forEach((h) => hits.add(h));
  }
  const z = b.offsets[1800];
  fs.writeSync(fs.openSync(b.file, 'r+'), Buffer.alloc(900), 0, 900, z);
  b.offsets.forEach((o, i) => {
    if (o < z + 900 && o + b.sizes[i] > z) hits.add(i);
  });
  damage(b, 2, 5, 9); // the file header
  // A torn tail: the last record cut short.
  fs.truncateSync(b.file, b.bytes.length - 7);
  hits.add(1999);
  void ranges;
  const { records, skipped } = await salvage(b.file);
  const want = b.seqs.filter((_, i) => !hits.has(i));
  assert.deepEqual(records.map((r) => r.seq), want, 'every intact record, in order');
  // One skipped range per run of damaged records (plus the header).
  const runs: Array<{ from: number; to: number }> = [];
  for (const i of [...hits].sort((a, c) => a - c)) {
    const last = runs[runs.length - 1];
    if (last && last.to === i - 1) last.to = i;
    else runs.push({ from: i, to: i });
  }
  assert.equal(skipped[0].offset, 0, 'the header first');
  assert.equal(skipped[0].length, 16);
  assert.match(skipped[0].reason, /header/);
  const body = skipped.slice(1);
  assert.equal(body.length, runs.length, JSON.stringify(body));
  const size = fs.statSync(b.file).size;
  runs.forEach((run, k) => {
    assert.equal(body[k].offset, b.offsets[run.from], `range ${k} offset`);
    const end = run.to + 1 < b.offsets.length ? b.offsets[run.to + 1] : size;
    assert.equal(body[k].length, end - b.offsets[run.from], `range ${k} length`);
  });
  assert.match(body[body.length - 1].reason, /truncated/);
});

test('salvageLog writes a new valid log; a directory of segments with damage in two of them', async () => {
  const dir = path.join(root, 'segs');
  fs.mkdirSync(dir);
  const a = build(300, 3, 1n, dir, '00000000000000000001.log');
  const b = build(300, 4, 301n, dir, '00000000000000000301.log');
  const c = build(300, 5, 601n, dir, '00000000000000000601.log');
  const hitA = damage(a, a.offsets[10], 200, 11);
  // b's first record is damaged: the resync must find the records after it
  // from the segment's name (no earlier seq in this file).
  const hitB = damage(b, b.offsets[0], 40, 12);
  void c;
  const skipped: SkippedRange[] = [];
  const out = path.join(root, 'salvaged.log');
  const report = await salvageLog(dir, out, { onSkip: (s) => skipped.push(s) });
  const want = [...a.seqs.filter((_, i) => !hitA.includes(i)), ...b.seqs.filter((_, i) => !hitB.includes(i)), ...c.seqs];
  assert.equal(report.records, want.length);
  assert.equal(report.firstSeq, 1n);
  assert.equal(report.lastSeq, 900n);
  assert.deepEqual(report.skipped, skipped);
  assert.deepEqual(skipped.map((s) => [path.basename(s.file), s.offset]), [
    ['00000000000000000001.log', a.offsets[hitA[0]]],
    ['00000000000000000301.log', b.offsets[0]],
  ]);
  const v = await verifyLog(out);
  assert.equal(v.ok, true);
  assert.equal(v.records, want.length);
  assert.equal(report.bytes, fs.statSync(out).size);
  const back: bigint[] = [];
  for await (const r of readLog(out)) back.push(r.seq);
  assert.deepEqual(back, want);
  // The output must be new.
  await assert.rejects(salvageLog(dir, out), /already exists/);
  assert.deepEqual(fs.readdirSync(root).filter((f) => f.includes('.tmp-')), [], 'no temporary file left');
});

test('salvage of an undamaged log yields it all and reports nothing', async () => {
  const b = build(100, 6);
  const { records, skipped } = await salvage(b.file);
  assert.equal(records.length, 100);
  assert.deepEqual(skipped, []);
});
