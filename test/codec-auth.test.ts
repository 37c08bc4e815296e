// The authentication extension of the wire codec (lib/format/codec.ts):
// golden vectors of test/vectors/auth.txt both ways (HELLO with the AUTH flag,
// the AUTH frame, its bad and incomplete forms, ERR UNAUTHENTICATED and
// FORBIDDEN), plus the encoder's limits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AuthMechanism,
  decodeAuth,
  decodeClientFrame,
  decodeHello,
  decodeServerFrame,
  encodeAuth,
  encodeErr,
  encodeHello,
  errCodeName,
  ErrCode,
  HelloFlag,
  MAX_TOKEN_BYTES,
  ProtocolError,
} from '../dist/format/codec';
import { hex, loadVectors, type Vector } from './vectors';

const num = (v: Vector, k: string): number => Number(v.f[k]);
const vectors = loadVectors('auth.txt');
const ofKind = (kind: string): Vector[] => {
  const list = vectors.filter((v) => v.kind === kind);
  assert.ok(list.length > 0, `no ${kind} vectors`);
  return list;
};

function throwsCode(fn: () => unknown, code: number, what: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `${what}: ${String(e)}`);
    assert.equal(e.errCode, code, `${what}: ${e.message}`);
    return true;
  });
}

test('auth vectors: every kind is known', () => {
  const known = new Set(['hello_auth', 'bad_hello', 'auth', 'bad_auth', 'need_more_auth', 'err', 'bad_client_frame']);
  for (const v of vectors) assert.ok(known.has(v.kind), `line ${v.line}: ${v.kind}`);
});

test('auth vectors: HELLO with the AUTH flag', () => {
  for (const v of ofKind('hello_auth')) {
    const b = hex(v, 'hex');
    assert.deepEqual(encodeHello(num(v, 'client_id'), { flags: HelloFlag.AUTH }), b, `line ${v.line}`);
    assert.equal(b[5], 0x01);
    assert.deepEqual(decodeHello(b), { clientId: num(v, 'client_id'), auth: true });
    for (let n = 0; n < b.length; n++) assert.equal(decodeHello(b.subarray(0, n)), null);
  }
  for (const v of ofKind('bad_hello')) throwsCode(() => decodeHello(hex(v, 'hex')), num(v, 'err'), `line ${v.line}`);
});

test('auth vectors: AUTH frames encode and decode', () => {
  for (const v of ofKind('auth')) {
    const b = hex(v, 'hex');
    const token = hex(v, 'token_hex');
    const mechanism = num(v, 'mechanism');
    assert.deepEqual(encodeAuth(token, mechanism), b, `line ${v.line}`);
    assert.deepEqual(decodeAuth(b), { type: 'auth', mechanism, token, size: b.length }, `line ${v.line}`);
    for (let n = 0; n < b.length; n++) assert.equal(decodeAuth(b.subarray(0, n)), null, `line ${v.line} prefix ${n}`);
    const shifted = Buffer.concat([Buffer.from([7, 7]), b, b]);
    assert.deepEqual(decodeAuth(shifted, 2)?.token, token);
    assert.equal(decodeAuth(shifted, 2 + b.length)?.size, b.length);
  }
  // A string token is sent as its UTF-8 bytes.
  const utf8 = ofKind('auth').find((v) => hex(v, 'token_hex').toString('utf8') === 'tökén-✓') as Vector;
  assert.deepEqual(encodeAuth('tökén-✓'), hex(utf8, 'hex'));
  assert.equal(AuthMechanism.TOKEN, 1);
});

test('auth vectors: bad and incomplete AUTH frames', () => {
  for (const v of ofKind('bad_auth')) throwsCode(() => decodeAuth(hex(v, 'hex')), num(v, 'err'), `line ${v.line}`);
  for (const v of ofKind('need_more_auth')) assert.equal(decodeAuth(hex(v, 'hex')), null, `line ${v.line}`);
  for (const v of ofKind('bad_client_frame')) {
    throwsCode(() => decodeClientFrame(hex(v, 'hex'), 0, num(v, 'max_message_bytes')), num(v, 'err'), `line ${v.line}`);
  }
});

test('auth vectors: ERR UNAUTHENTICATED and FORBIDDEN', () => {
  const codes = new Set<number>();
  for (const v of ofKind('err')) {
    const b = hex(v, 'hex');
    const code = num(v, 'code');
    const reason = hex(v, 'reason_hex').toString('utf8');
    codes.add(code);
    assert.deepEqual(encodeErr(code, reason), b, `line ${v.line}`);
    assert.deepEqual(decodeServerFrame(b), { type: 'err', code, reason, size: b.length });
  }
  assert.deepEqual([...codes].sort(), [ErrCode.UNAUTHENTICATED, ErrCode.FORBIDDEN]);
  assert.equal(errCodeName(13), 'UNAUTHENTICATED');
  assert.equal(errCodeName(14), 'FORBIDDEN');
});

test('encodeAuth refuses an empty or oversized token without echoing it', () => {
  assert.throws(() => encodeAuth(''), RangeError);
  assert.throws(() => encodeAuth(Buffer.alloc(0)), RangeError);
  assert.equal(encodeAuth(Buffer.alloc(MAX_TOKEN_BYTES, 0x41)).length, 4 + 2 + MAX_TOKEN_BYTES);
  const secret = 'Z'.repeat(MAX_TOKEN_BYTES + 1);
  assert.throws(
    () => encodeAuth(secret),
    (e: unknown) => e instanceof RangeError && !e.message.includes('ZZZZ') && /1025/.test(e.message),
  );
  assert.throws(() => encodeAuth('t', 256), RangeError);
});
