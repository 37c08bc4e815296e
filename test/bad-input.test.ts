// Bad input: garbage, bad magic, bad version, an unknown frame type, a frame
// over the length bound and a MSG shorter than its header each get an ERR and
// a close, while a well-behaved client on the same server keeps being served
// and loses nothing. A payload over maxMessageBytes inside the frame bound is
// an error for that message only.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';

import { MessageClient, MessageServer, readLog } from '../dist/index';
import { AckStatus, encodeHello, encodeMsg, ErrCode } from '../dist/format/codec';
import { prng, randomBytes, rawExchange, tempDir } from './helpers';

const MAX = 1024;

function frame(length: number, type: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(length, 0);
  head[4] = type;
  return Buffer.concat([head, body]);
}

test('hostile input gets ERR and a close; other clients lose nothing', async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'messages.log');
  const server = new MessageServer({ port: 0, serviceThreads: 2, file: { path: file }, limits: { maxMessageBytes: MAX } });
  const { port } = await server.listen();
  t.after(() => server.close());

  // A good client sends steadily while the bad ones do their worst.
  const good = await MessageClient.connect({ firstMsgId: 1, port, clientId: 42, window: 16 });
  let stop = false;
  let goodSent = 0;
  const goodLoop = (async () => {
    while (!stop) {
      const batch = Array.from({ length: 50 }, () => good.send(`good ${++goodSent}`, { name: 'good' }));
      for (const r of await Promise.all(batch)) assert.equal(r.statusName, 'OK');
    }
  })();

  const rand = prng(7);
  const hello = encodeHello(9);
  const cases: Array<{ what: string; bytes: Buffer[]; code: number; helloOk: boolean }> = [
    { what: 'random garbage', bytes: [Buffer.concat([Buffer.from([0x00]), randomBytes(rand, 4000)])], code: ErrCode.BAD_MAGIC, helloOk: false },
    { what: 'bad magic', bytes: [Buffer.from('MSGX\x01\x00\x00\x00\x00\x00\x00\x09', 'latin1')], code: ErrCode.BAD_MAGIC, helloOk: false },
    { what: 'bad version', bytes: [encodeHello(9, { version: 2 })], code: ErrCode.BAD_VERSION, helloOk: false },
    { what: 'bad hello flags (bit 0 announces AUTH; the others stay zero)', bytes: [encodeHello(9, { flags: 2 })], code: ErrCode.BAD_HELLO, helloOk: false },
    { what: 'unknown frame type', bytes: [hello, frame(20, 0x7f, Buffer.alloc(19))], code: ErrCode.UNKNOWN_TYPE, helloOk: true },
    { what: 'an ACK sent by a client', bytes: [hello, frame(16, 0x81, Buffer.alloc(15))], code: ErrCode.UNKNOWN_TYPE, helloOk: true },
    { what: 'length over the bound', bytes: [hello, frame(10 + 255 + MAX + 1, 0x01)], code: ErrCode.FRAME_TOO_LARGE, helloOk: true },
    { what: 'huge length', bytes: [hello, frame(0xffffffff, 0x01)], code: ErrCode.FRAME_TOO_LARGE, helloOk: true },
    { what: 'MSG shorter than its header', bytes: [hello, frame(5, 0x01, Buffer.alloc(4))], code: ErrCode.MALFORMED, helloOk: true },
    { what: 'zero length', bytes: [hello, Buffer.alloc(4)], code: ErrCode.MALFORMED, helloOk: true },
  ];
  for (const c of cases) {
    const r = await rawExchange(port, c.bytes);
    assert.equal(r.closed, true, `${c.what}: connection closed`);
    assert.equal(r.helloOk, c.helloOk, `${c.what}: HELLO_OK`);
    const last = r.frames.at(-1);
    assert.ok(last && last.type === 'err', `${c.what}: ends with ERR (got ${JSON.stringify(r.frames)})`);
    assert.equal(last.type === 'err' && last.code, c.code, `${c.what}: ERR code`);
    assert.ok(last.type === 'err' && last.reason.length > 0, `${c.what}: ERR has a reason`);
  }

  // ACKs owed come before the ERR: three good messages, then garbage, in one write.
  const owed = await rawExchange(port, [
    Buffer.concat([hello, encodeMsg(1n, Buffer.from('a'), Buffer.from('x')), encodeMsg(2n, Buffer.alloc(0), Buffer.alloc(0)),
      encodeMsg(3n, Buffer.from('c'), Buffer.from('zz')), frame(7, 0x55, Buffer.alloc(6))]),
  ]);
  const acked = owed.frames.filter((f) => f.type === 'ack').reduce((n, f) => n + (f.type === 'ack' ? f.count : 0), 0);
  assert.equal(acked, 3, 'all three messages ACKed before the ERR');
  const lastAck = owed.frames.filter((f) => f.type === 'ack').at(-1);
  assert.equal(lastAck?.type === 'ack' && lastAck.lastMsgId, 3n);
  assert.equal(owed.frames.at(-1)?.type, 'err');

  // A payload over maxMessageBytes but within the frame bound: TOO_LARGE for
  // that message only; the connection stays usable.
  const client = await MessageClient.connect({ firstMsgId: 1, port, clientId: 43 });
  await assert.rejects(client.send(Buffer.alloc(MAX + 1)), (e: Error & { status?: number }) => e.status === AckStatus.TOO_LARGE);
  assert.equal((await client.send(Buffer.alloc(MAX), { name: 'fits' })).statusName, 'OK');
  await client.close();

  stop = true;
  await goodLoop;
  await good.close();
  const stats = server.stats();
  assert.ok(stats.errors.BAD_MAGIC >= 2 && stats.errors.UNKNOWN_TYPE >= 3 && stats.errors.FRAME_TOO_LARGE >= 2);
  assert.equal(stats.acks.TOO_LARGE, 1);
  await server.close();

  // Every message of the good client is in the file, in order; the rejected
  // one is not; the three before the garbage are.
  const goodIds: bigint[] = [];
  let fits = 0;
  let owedStored = 0;
  for await (const rec of readLog(file)) {
    if (rec.clientId === 42) goodIds.push(rec.msgId);
    if (rec.clientId === 43) fits += rec.name === 'fits' ? 1 : 100;
    if (rec.clientId === 9) owedStored++;
  }
  assert.equal(goodIds.length, goodSent);
  goodIds.forEach((id, i) => assert.equal(id, BigInt(i + 1)));
  assert.equal(fits, 1);
  assert.equal(owedStored, 3);
});

test('ERR BUSY over maxConnections; the connections within the limit keep working', async (t) => {
  const dir = tempDir();
  const server = new MessageServer({ port: 0, serviceThreads: 2, file: { path: path.join(dir, 'm.log') }, limits: { maxConnections: 3 } });
  const { port } = await server.listen();
  t.after(() => server.close());
  const clients = await Promise.all([1, 2, 3].map((clientId) => MessageClient.connect({ firstMsgId: 1, port, clientId })));
  const r = await rawExchange(port, [encodeHello(4)]);
  assert.equal(r.closed, true);
  assert.equal(r.helloOk, false);
  assert.deepEqual(r.frames.map((f) => f.type === 'err' && f.code), [ErrCode.BUSY]);
  for (const c of clients) assert.equal((await c.send('still here')).statusName, 'OK');
  assert.equal(server.stats().connectionsRejected, 1);
  await Promise.all(clients.map((c) => c.close()));
});
