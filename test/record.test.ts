// Log record format (lib/format/record.ts) and CRC32C (lib/format/crc32c.ts): golden
// vectors of test/vectors/records.txt both ways (the same file the native
// test_record reads), every truncation, every bit flip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '../dist/format/crc32c';
import {
  BODY_FIXED_SIZE,
  FILE_HEADER_SIZE,
  RECORD_HEADER_SIZE,
  checkFileHeader,
  decodeRecord,
  encodeFileHeader,
  encodeRecord,
} from '../dist/format/record';

import { hex, loadVectors, type Vector } from './vectors';

const vectors = loadVectors('records.txt');
const ofKind = (kind: string) => {
  const list = vectors.filter((v) => v.kind === kind);
  assert.ok(list.length > 0, `no ${kind} vectors`);
  return list;
};

// ---- CRC32C ----

// Reference: one bit at a time, straight from the definition.
function crcBitwise(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

test('crc32c known values', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa);
  assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  assert.equal(crc32c(new Uint8Array(0)), 0);
});

test('crc32c matches the bitwise reference for lengths 0..300 at every offset', () => {
  const data = Buffer.alloc(310);
  for (let i = 0; i < data.length; i++) data[i] = (i * 167 + 13) & 0xff;
  for (let off = 0; off < 8; off++) {
    for (let len = 0; len <= 300; len++) {
      const v = data.subarray(off, off + len);
      assert.equal(crc32c(v), crcBitwise(v), `off ${off} len ${len}`);
    }
  }
});

test('crc32c extends: crc32c(b, crc32c(a)) == crc32c(a + b)', () => {
  const data = Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 31) & 0xff));
  for (let split = 0; split <= data.length; split += 7) {
    assert.equal(crc32c(data.subarray(split), crc32c(data.subarray(0, split))), crc32c(data));
  }
});

// ---- vectors ----

test('vectors: every kind is known', () => {
  const known = new Set(['file_header', 'bad_file_header', 'record', 'record_truncated', 'record_bad']);
  for (const v of vectors) assert.ok(known.has(v.kind), `line ${v.line}: ${v.kind}`);
});

test('vectors: file header', () => {
  for (const v of ofKind('file_header')) {
    assert.deepEqual(encodeFileHeader(), hex(v, 'hex'));
    assert.ok(checkFileHeader(hex(v, 'hex')));
  }
  for (const v of ofKind('bad_file_header')) assert.equal(checkFileHeader(hex(v, 'hex')), false, `line ${v.line}`);
});

test('vectors: records encode and decode', () => {
  for (const v of ofKind('record')) {
    const b = hex(v, 'hex');
    const fields = {
      seq: BigInt(v.f.seq),
      timeUs: BigInt(v.f.time_us),
      clientId: Number(v.f.client_id),
      msgId: BigInt(v.f.msg_id),
      name: hex(v, 'name_hex'),
      payload: hex(v, 'payload_hex'),
    };
    assert.deepEqual(encodeRecord(fields), b, `line ${v.line}`);
    const d = decodeRecord(b, 0);
    assert.equal(d.status, 'ok', `line ${v.line}`);
    if (d.status !== 'ok') continue;
    assert.equal(d.size, b.length);
    assert.equal(d.record.seq, fields.seq);
    assert.equal(d.record.timeUs, fields.timeUs);
    assert.equal(d.record.clientId, fields.clientId);
    assert.equal(d.record.msgId, fields.msgId);
    assert.deepEqual(d.record.nameBytes, fields.name);
    assert.equal(d.record.name, fields.name.toString('utf8'));
    assert.deepEqual(d.record.payload, fields.payload);
    assert.equal(d.record.offset, 0);
  }
});

test('vectors: truncated and bad records', () => {
  for (const v of ofKind('record_truncated')) assert.deepEqual(decodeRecord(hex(v, 'hex'), 0), { status: 'truncated' }, `line ${v.line}`);
  for (const v of ofKind('record_bad')) assert.equal(decodeRecord(hex(v, 'hex'), 0).status, 'bad', `line ${v.line}`);
});

// ---- behaviour beyond the vectors ----

const sample = () =>
  encodeRecord({
    seq: 42n,
    timeUs: 1_700_000_000_123_456n,
    clientId: 7,
    msgId: 99n,
    name: Buffer.from('orders'),
    payload: Buffer.from([104, 101, 108, 108, 111, 0, 255]),
  });

test('constants', () => {
  assert.equal(FILE_HEADER_SIZE, 16);
  assert.equal(RECORD_HEADER_SIZE, 8);
  assert.equal(BODY_FIXED_SIZE, 29);
});

test('decode at an offset, with time as a Date', () => {
  const r = sample();
  const buf = Buffer.concat([Buffer.alloc(5), r, r]);
  const d = decodeRecord(buf, 5 + r.length);
  assert.equal(d.status, 'ok');
  if (d.status !== 'ok') return;
  assert.equal(d.record.offset, 5 + r.length);
  assert.equal(d.record.time.getTime(), 1_700_000_000_123);
  assert.equal(d.record.name, 'orders');
});

test('every truncation length is truncated', () => {
  const r = sample();
  for (let n = 0; n < r.length; n++) assert.deepEqual(decodeRecord(r.subarray(0, n), 0), { status: 'truncated' }, `n ${n}`);
});

test('every single bit flip is detected', () => {
  const r = sample();
  for (let byte = 0; byte < r.length; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const m = Buffer.from(r);
      m[byte] ^= 1 << bit;
      const d = decodeRecord(m, 0);
      if (byte >= 4) {
        assert.equal(d.status, 'bad', `byte ${byte} bit ${bit}`);
      } else {
        // A longer length than the bytes present reads as truncated; never ok.
        const longer = m.readUInt32LE(0) > r.length - 8 && m.readUInt32LE(0) <= 29 + 255 + 64 * 1024 * 1024;
        assert.equal(d.status, longer ? 'truncated' : 'bad', `byte ${byte} bit ${bit}`);
      }
    }
  }
});

test('encodeRecord rejects what the format cannot hold', () => {
  const base = { seq: 1n, timeUs: 1n, clientId: 1, msgId: 1n, name: Buffer.alloc(0), payload: Buffer.alloc(0) };
  assert.throws(() => encodeRecord({ ...base, name: Buffer.alloc(256) }), RangeError);
  assert.throws(() => encodeRecord({ ...base, seq: -1n }), RangeError);
  assert.throws(() => encodeRecord({ ...base, clientId: 2 ** 32 }), RangeError);
  assert.equal(encodeRecord({ ...base, name: Buffer.alloc(255) }).length, 8 + 29 + 255);
});

test('checkFileHeader refuses short or altered headers', () => {
  const h = encodeFileHeader();
  for (let n = 0; n < 16; n++) assert.equal(checkFileHeader(h.subarray(0, n)), false);
  for (let i = 0; i < 16; i++) {
    const m = Buffer.from(h);
    m[i] ^= 0x01;
    assert.equal(checkFileHeader(m), false, `byte ${i}`);
  }
});
