// Wire codec (lib/format/codec.ts): golden vectors of test/vectors/frames.txt both
// ways (the same file the native test_codec reads), plus incremental parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACK_FRAME_SIZE,
  AckStatus,
  ErrCode,
  FrameType,
  HELLO_SIZE,
  MAX_ERR_REASON,
  MSG_HEADER_SIZE,
  PROTOCOL_VERSION,
  ProtocolError,
  ackStatusName,
  decodeClientFrame,
  decodeHello,
  decodeHelloOk,
  decodeServerFrame,
  encodeAck,
  encodeErr,
  encodeHello,
  encodeHelloOk,
  encodeMsg,
  encodeMsgHeader,
  errCodeName,
} from '../dist/format/codec';

import { hex, loadVectors, type Vector } from './vectors';
const num = (v: Vector, k: string): number => Number(v.f[k]);
const big = (v: Vector, k: string): bigint => BigInt(v.f[k]);

const vectors = loadVectors('frames.txt');
const ofKind = (kind: string) => {
  const list = vectors.filter((v) => v.kind === kind);
  assert.ok(list.length > 0, `no ${kind} vectors`);
  return list;
};

test('vectors: every kind is known', () => {
  const known = new Set(['hello', 'hello_ok', 'msg', 'ack', 'err', 'err_cut', 'bad_hello', 'need_more_hello',
    'bad_client_frame', 'need_more_frame', 'bad_server_frame']);
  for (const v of vectors) assert.ok(known.has(v.kind), `line ${v.line}: ${v.kind}`);
});

test('vectors: hello', () => {
  for (const v of ofKind('hello')) {
    const b = hex(v, 'hex');
    assert.deepEqual(encodeHello(num(v, 'client_id')), b, `line ${v.line}`);
    assert.deepEqual(decodeHello(b), { clientId: num(v, 'client_id'), auth: false });
    for (let n = 0; n < b.length; n++) assert.equal(decodeHello(b.subarray(0, n)), null);
  }
});

test('vectors: hello_ok', () => {
  for (const v of ofKind('hello_ok')) {
    const b = hex(v, 'hex');
    assert.deepEqual(encodeHelloOk(num(v, 'status'), num(v, 'max_message_bytes')), b, `line ${v.line}`);
    assert.deepEqual(decodeHelloOk(b), {
      version: PROTOCOL_VERSION,
      status: num(v, 'status'),
      maxMessageBytes: num(v, 'max_message_bytes'),
    });
  }
});

test('vectors: msg encode and decode', () => {
  for (const v of ofKind('msg')) {
    const b = hex(v, 'hex');
    const name = hex(v, 'name_hex');
    const payload = hex(v, 'payload_hex');
    const max = 'max_message_bytes' in v.f ? num(v, 'max_message_bytes') : 1 << 20;
    const msgId = big(v, 'msg_id');
    assert.deepEqual(encodeMsg(msgId, name, payload), b, `line ${v.line}`);
    assert.deepEqual(Buffer.concat([encodeMsgHeader(msgId, name, payload.length), payload]), b);

    const f = decodeClientFrame(b, 0, max);
    assert.ok(f, `line ${v.line}`);
    assert.equal(f.type, 'msg');
    assert.equal(f.msgId, msgId);
    assert.deepEqual(f.name, name);
    assert.deepEqual(f.payload, payload);
    assert.equal(f.size, b.length);
    // Every strict prefix needs more bytes; at an offset it parses the same.
    for (let n = 0; n < b.length; n++) assert.equal(decodeClientFrame(b.subarray(0, n), 0, max), null);
    const shifted = Buffer.concat([Buffer.from([9, 9, 9]), b, b]);
    assert.equal(decodeClientFrame(shifted, 3, max)?.msgId, msgId);
    assert.equal(decodeClientFrame(shifted, 3 + b.length, max)?.size, b.length);
  }
});

test('vectors: ack', () => {
  for (const v of ofKind('ack')) {
    const b = hex(v, 'hex');
    assert.deepEqual(encodeAck(num(v, 'status'), num(v, 'count'), big(v, 'last_msg_id')), b, `line ${v.line}`);
    assert.deepEqual(decodeServerFrame(b), {
      type: 'ack',
      status: num(v, 'status'),
      count: num(v, 'count'),
      lastMsgId: big(v, 'last_msg_id'),
      size: ACK_FRAME_SIZE,
    });
    for (let n = 0; n < b.length; n++) assert.equal(decodeServerFrame(b.subarray(0, n)), null);
  }
});

test('vectors: err and err_cut', () => {
  for (const v of [...ofKind('err'), ...ofKind('err_cut')]) {
    const b = hex(v, 'hex');
    const reason = hex(v, 'reason_hex');
    const input = v.kind === 'err_cut' ? hex(v, 'input_hex') : reason;
    assert.deepEqual(encodeErr(num(v, 'code'), input.toString('utf8')), b, `line ${v.line}`);
    assert.deepEqual(decodeServerFrame(b), {
      type: 'err',
      code: num(v, 'code'),
      reason: reason.toString('utf8'),
      size: b.length,
    });
  }
});

function throwsCode(fn: () => unknown, code: number, what: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `${what}: ${String(e)}`);
    assert.equal(e.errCode, code, `${what}: ${e.message}`);
    return true;
  });
}

test('vectors: bad and incomplete hellos', () => {
  for (const v of ofKind('bad_hello')) throwsCode(() => decodeHello(hex(v, 'hex')), num(v, 'err'), `line ${v.line}`);
  for (const v of ofKind('need_more_hello')) assert.equal(decodeHello(hex(v, 'hex')), null, `line ${v.line}`);
});

test('vectors: bad and incomplete client frames', () => {
  for (const v of ofKind('bad_client_frame')) {
    throwsCode(() => decodeClientFrame(hex(v, 'hex'), 0, num(v, 'max_message_bytes')), num(v, 'err'), `line ${v.line}`);
  }
  for (const v of ofKind('need_more_frame')) {
    assert.equal(decodeClientFrame(hex(v, 'hex'), 0, num(v, 'max_message_bytes')), null, `line ${v.line}`);
  }
});

test('vectors: bad server frames', () => {
  for (const v of ofKind('bad_server_frame')) throwsCode(() => decodeServerFrame(hex(v, 'hex')), num(v, 'err'), `line ${v.line}`);
});

// ---- behaviour beyond the vectors ----

test('constants match the protocol', () => {
  assert.equal(HELLO_SIZE, 12);
  assert.equal(MSG_HEADER_SIZE, 10);
  assert.equal(ACK_FRAME_SIZE, 20);
  assert.equal(MAX_ERR_REASON, 255);
  assert.deepEqual(FrameType, { MSG: 0x01, AUTH: 0x02, ACK: 0x81, ERR: 0x82 });
  assert.equal(ErrCode.BAD_MAGIC, 1);
  assert.equal(ErrCode.INTERNAL, 12);
  assert.equal(ErrCode.UNAUTHENTICATED, 13);
  assert.equal(ErrCode.FORBIDDEN, 14);
  assert.deepEqual(AckStatus, { OK: 0, TOO_LARGE: 1, WRITE_FAILED: 2, SHUTTING_DOWN: 3, REPLICATION_FAILED: 4 });
});

test('code and status names', () => {
  const names = ['BAD_MAGIC', 'BAD_VERSION', 'BAD_HELLO', 'UNKNOWN_TYPE', 'FRAME_TOO_LARGE', 'MALFORMED', 'BUSY',
    'SHUTTING_DOWN', 'IDLE_TIMEOUT', 'HANDSHAKE_TIMEOUT', 'SLOW_FRAME', 'INTERNAL', 'UNAUTHENTICATED', 'FORBIDDEN'];
  names.forEach((n, i) => assert.equal(errCodeName(i + 1), n));
  assert.equal(errCodeName(0), 'UNKNOWN');
  assert.equal(errCodeName(15), 'UNKNOWN');
  assert.deepEqual([0, 1, 2, 3, 4, 5].map(ackStatusName), ['OK', 'TOO_LARGE', 'WRITE_FAILED', 'SHUTTING_DOWN', 'REPLICATION_FAILED', 'UNKNOWN']);
});

test('ProtocolError carries its code and name', () => {
  const e = new ProtocolError(ErrCode.MALFORMED, 'short frame');
  assert.ok(e instanceof Error);
  assert.equal(e.code, 'ERR_MSGS_PROTOCOL');
  assert.equal(e.errCode, 6);
  assert.equal(e.codeName, 'MALFORMED');
  assert.equal(e.name, 'ProtocolError');
  assert.match(e.message, /MALFORMED: short frame/);
});

test('a stream of frames fed one byte at a time', () => {
  const frames: Buffer[] = [];
  for (let i = 1; i <= 40; i++) {
    frames.push(encodeMsg(BigInt(i), Buffer.from('n'.repeat(i % 4)), Buffer.alloc(i * 5, i)));
  }
  const stream = Buffer.concat(frames);
  let start = 0;
  const got: bigint[] = [];
  for (let end = 1; end <= stream.length; end++) {
    const f = decodeClientFrame(stream.subarray(0, end), start, 1000);
    if (f) {
      got.push(f.msgId);
      assert.equal(f.payload.length, Number(f.msgId) * 5);
      start += f.size;
    }
  }
  assert.equal(got.length, 40);
  assert.equal(start, stream.length);
});

test('a payload over the limit parses (the server ACKs it TOO_LARGE)', () => {
  const b = encodeMsg(5n, Buffer.from('n'), Buffer.alloc(50));
  const f = decodeClientFrame(b, 0, 10);
  assert.equal(f?.payload.length, 50);
  // One byte past 10 + 255 + max is refused from the length alone.
  const len = Buffer.alloc(4);
  len.writeUInt32BE(10 + 255 + 10 + 1);
  throwsCode(() => decodeClientFrame(len, 0, 10), ErrCode.FRAME_TOO_LARGE, 'too large');
  len.writeUInt32BE(10 + 255 + 10);
  assert.equal(decodeClientFrame(len, 0, 10), null);
});

test('decodeHelloOk refuses a wrong magic and a short buffer', () => {
  throwsCode(() => decodeHelloOk(Buffer.from('HTTP/1.1 400')), ErrCode.BAD_MAGIC, 'magic');
  throwsCode(() => decodeHelloOk(encodeHelloOk(0, 100).subarray(0, 8)), ErrCode.MALFORMED, 'short');
});

test('encodeHello can build wrong HELLOs for tests', () => {
  throwsCode(() => decodeHello(encodeHello(1, { version: 2 })), ErrCode.BAD_VERSION, 'version');
  throwsCode(() => decodeHello(encodeHello(1, { flags: 4 })), ErrCode.BAD_HELLO, 'flags');
});

test('encoders reject values that do not fit', () => {
  assert.throws(() => encodeMsg(1n, Buffer.alloc(256), Buffer.alloc(0)), RangeError);
  assert.throws(() => encodeMsg(-1n, Buffer.alloc(0), Buffer.alloc(0)), RangeError);
  assert.throws(() => encodeMsg(1n << 64n, Buffer.alloc(0), Buffer.alloc(0)), RangeError);
  assert.throws(() => encodeHello(2 ** 32), RangeError);
  assert.throws(() => encodeAck(0, -1, 1n), RangeError);
});

test('encodeErr cuts long reasons at a character boundary', () => {
  for (const ch of ['a', 'é', '日', '😀']) {
    const f = encodeErr(ErrCode.INTERNAL, ch.repeat(300));
    const d = decodeServerFrame(f);
    assert.ok(d && d.type === 'err');
    assert.ok(Buffer.byteLength(d.reason) <= MAX_ERR_REASON);
    assert.ok(Buffer.byteLength(d.reason) > MAX_ERR_REASON - 4);
    assert.equal(d.reason, ch.repeat([...d.reason].length)); // whole characters only
  }
});

test('decodeClientFrame works on a plain Uint8Array and returns views', () => {
  const b = encodeMsg(3n, Buffer.from('ab'), Buffer.from('xyz'));
  const u = new Uint8Array(b.length + 2);
  u.set(b, 2);
  const f = decodeClientFrame(u, 2, 100);
  assert.ok(f);
  assert.equal(f.payload.toString(), 'xyz');
  u[u.length - 1] = 'Z'.charCodeAt(0);
  assert.equal(f.payload.toString(), 'xyZ'); // a view, not a copy
});
