// The fuzz seed corpora and known-bug reproducers (fuzz/corpus/, fuzz/regressions/)
// replayed through the TypeScript codecs, which share the formats with the native
// code the fuzzers test (scripts/fuzz.js). Each input is laid out as its harness
// reads it (see the header comment of fuzz/fuzz_<name>.cc).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ProtocolError, decodeClientFrame, decodeHello, decodeServerFrame } from '../dist/format/codec';
import { encodeFileHeader } from '../dist/format/record';
import { verifyLog } from '../dist/read/log-reader';

const root = path.join(__dirname, '..');
const inputs = (dir: string): [string, Buffer][] => {
  const d = path.join(root, 'fuzz', dir);
  if (!fs.existsSync(d)) return [];
  return fs.readdirSync(d).sort().map((f) => [f, fs.readFileSync(path.join(d, f))]);
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'msgs-fuzz-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

// fuzz_frames: u8 limit class, u32 raw limit, two u16 split points, then the stream.
function limitOf(cls: number, raw: number): number {
  switch (cls % 4) {
    case 0: return raw & 0xff;
    case 1: return raw & 0xffff;
    case 2: return cls & 4 ? 1 << 20 : raw % (64 * 1024 * 1024 + 1);
    default: return raw;
  }
}

test('fuzz corpus frames: decodeHello/decodeClientFrame only throw ProtocolError, frames tile the stream', () => {
  const files = inputs('corpus/frames');
  assert.ok(files.length > 0);
  for (const [name, buf] of files) {
    const limit = limitOf(buf[0], buf.readUInt32BE(1));
    const stream = buf.subarray(9);
    try {
      if (decodeHello(stream) === null) {
        assert.ok(stream.length < 12, name);
        continue;
      }
      let pos = 12;
      for (;;) {
        const f = decodeClientFrame(stream, pos, limit);
        if (f === null) break;
        assert.equal(f.size, 14 + f.name.length + f.payload.length, name);
        assert.ok(f.name.length + f.payload.length <= 255 + limit, name);
        pos += f.size;
      }
      assert.ok(pos <= stream.length, name);
    } catch (e) {
      assert.ok(e instanceof ProtocolError, `${name}: ${e}`);
    }
  }
});

test('fuzz corpus server_frames: decodeServerFrame only throws ProtocolError', () => {
  const files = inputs('corpus/server_frames');
  assert.ok(files.length > 0);
  for (const [name, buf] of files) {
    let pos = 0;
    try {
      for (;;) {
        const f = decodeServerFrame(buf, pos);
        if (f === null) break;
        if (f.type === 'ack') assert.equal(f.size, 20, name);
        else assert.ok(f.size >= 6 && f.size <= 261, name);
        pos += f.size;
      }
    } catch (e) {
      assert.ok(e instanceof ProtocolError, `${name}: ${e}`);
    }
  }
});

// fuzz_records raw mode (byte 0 even): the bytes after a valid file header.
test('fuzz corpus and regressions records: verifyLog never throws and agrees with itself', async () => {
  const files = [...inputs('corpus/records'), ...inputs('regressions/records')].filter(([, b]) => (b[0] & 1) === 0);
  assert.ok(files.length > 0);
  for (const [name, buf] of files) {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, Buffer.concat([encodeFileHeader(), buf.subarray(1)]));
    const v = await verifyLog(p);
    assert.equal(v.bytes, 16 + buf.length - 1, name);
    if (v.ok) assert.equal(v.firstBadOffset, null, name);
    else assert.ok(v.firstBadOffset !== null && v.firstBadOffset >= 16 && v.firstBadOffset < v.bytes, name);
  }
});

// fuzz/regressions/records/seq-wrap-torn-instead-of-corrupt: the TS reader (bigint
// seqs) finds the valid record after the damaged byte, which is what the native
// scan() must also report (it calls the damage a torn tail, see the fuzz report).
test('seq window near 2^64: damage followed by a valid record is corruption, not a torn tail', async () => {
  const f = inputs('regressions/records').find(([n]) => n === 'seq-wrap-torn-instead-of-corrupt');
  if (!f) return;
  const p = path.join(tmp, 'seq-wrap.log');
  fs.writeFileSync(p, Buffer.concat([encodeFileHeader(), f[1].subarray(1)]));
  const v = await verifyLog(p);
  assert.equal(v.ok, false);
  assert.equal(v.records, 1);
  assert.equal(v.lastSeq, 2n ** 64n - 2n);
  assert.equal(v.firstBadOffset, 53);
  assert.equal(v.tornTail, false);
});
