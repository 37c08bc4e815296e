// The load engine refills the window after a read that exactly filled its
// 256 KiB receive buffer and found nothing more (EAGAIN): before, it returned
// without writing, and with nothing in flight no ACK ever woke the connection
// again (a stall with windows above ~13k messages).
//
// A peer ACKs every message with its own 20-byte ACK frame. Window W = 13108:
// once the engine has sent all W messages, the peer sends HELLO_OK and the
// first 16 bytes of ACK 1 (the engine keeps them as its carry), then the rest:
// 4 + 20 x 13107 = 262144 bytes, so the carry plus one full read are exactly
// W ACK frames and the next read is EAGAIN. The pause between the two writes
// only arranges those read boundaries: if the engine happened to read across
// them the trigger is missed and the run passes anyway; it never makes the
// test fail. Three rounds of W messages must all be ACKed.
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { test } from 'node:test';

import { runLoad } from '../dist/bench/bench';
import { decodeClientFrame, encodeAck, encodeHelloOk, HELLO_SIZE } from '../dist/format/codec';

test('msgbench: a read that exactly fills the receive buffer, then EAGAIN, still refills the window', { timeout: 60_000 }, async (t) => {
  const W = 13108;
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    let hello = false;
    let first = true;
    const ids: bigint[] = [];
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!hello) {
        if (buf.length < HELLO_SIZE) return;
        buf = buf.subarray(HELLO_SIZE);
        hello = true;
      }
      for (let f = decodeClientFrame(buf, 0, 1 << 20); f !== null; f = decodeClientFrame(buf, 0, 1 << 20)) {
        buf = buf.subarray(f.size);
        ids.push(f.msgId);
      }
      if (ids.length < W) return;
      const acks = Buffer.concat(ids.splice(0, W).map((id) => encodeAck(0, 1, id)));
      s.write(first ? Buffer.concat([encodeHelloOk(0, 1 << 20), acks.subarray(0, 16)]) : acks.subarray(0, 16));
      first = false;
      setTimeout(() => s.write(acks.subarray(16)), 300);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const r = await runLoad({ port: (server.address() as net.AddressInfo).port, connections: 1, window: W, messages: 3 * W, payload: 0, stallTimeoutMs: 5000 });
  assert.equal(r.errorsByKind.timeout, 0, r.errorSamples.join('; '));
  assert.equal(r.messagesAcked, 3 * W);
});
