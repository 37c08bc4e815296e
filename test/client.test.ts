// MessageClient against a fake server written here with node:net. The fake
// encodes and parses the wire format itself (not through lib/codec), so these
// tests also pin the client's bytes to the protocol in docs/protocol.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { MessageClient } from '../dist/client';
import { AckError, ConnectionClosedError, ConnectTimeoutError, ServerError } from '../dist/errors';
import { ProtocolError } from '../dist/codec';

const T = { timeout: 20_000 };

// ---- the fake server ----------------------------------------------------------

interface RawMsg {
  msgId: bigint;
  name: string;
  payload: Buffer;
}

class FakeConn {
  clientId = -1;
  hello: Buffer | null = null;
  readonly msgs: RawMsg[] = [];
  /** Messages acknowledged so far (ACKs cover the oldest unacked first). */
  acked = 0;
  maxUnacked = 0;
  dataEvents = 0;
  ended = false;
  private buf = Buffer.alloc(0);

  constructor(
    readonly socket: net.Socket,
    private readonly fake: FakeServer,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => {
      this.ended = true;
      socket.end();
    });
    socket.on('error', () => {});
  }

  get unacked(): number {
    return this.msgs.length - this.acked;
  }

  /** ACKs the next `count` messages with one frame. */
  ack(count: number, status = 0): void {
    const last = this.msgs[this.acked + count - 1];
    assert.ok(last !== undefined, `fake: cannot ack ${count}, only ${this.unacked} unacked`);
    this.acked += count;
    this.socket.write(ackFrame(status, count, last.msgId));
  }

  private onData(chunk: Buffer): void {
    this.dataEvents++;
    this.buf = Buffer.concat([this.buf, chunk]);
    if (this.hello === null) {
      if (this.buf.length < 12) return;
      this.hello = this.buf.subarray(0, 12);
      this.clientId = this.hello.readUInt32BE(8);
      this.buf = this.buf.subarray(12);
      this.fake.opts.onHello(this);
    }
    const fresh: RawMsg[] = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (this.buf.length < 4 + len) break;
      assert.equal(this.buf[4], 0x01, 'fake: client sent a non-MSG frame');
      const nameLen = this.buf[5];
      fresh.push({
        msgId: this.buf.readBigUInt64BE(6),
        name: this.buf.toString('utf8', 14, 14 + nameLen),
        payload: Buffer.from(this.buf.subarray(14 + nameLen, 4 + len)),
      });
      this.buf = this.buf.subarray(4 + len);
    }
    this.msgs.push(...fresh);
    this.maxUnacked = Math.max(this.maxUnacked, this.unacked);
    if (fresh.length > 0) this.fake.opts.onMsgs(this, fresh);
  }
}

interface FakeOptions {
  maxMessageBytes: number;
  /** Default: reply HELLO_OK. */
  onHello: (c: FakeConn) => void;
  /** Default: ACK everything received so far with one frame. */
  onMsgs: (c: FakeConn, fresh: RawMsg[]) => void;
}

class FakeServer {
  readonly conns: FakeConn[] = [];
  readonly opts: FakeOptions;
  private readonly server: net.Server;
  private waiters: ((c: FakeConn) => void)[] = [];

  constructor(opts: Partial<FakeOptions> = {}) {
    const maxMessageBytes = opts.maxMessageBytes ?? 1024 * 1024;
    this.opts = {
      maxMessageBytes,
      onHello: opts.onHello ?? ((c) => c.socket.write(helloOk(maxMessageBytes))),
      onMsgs: opts.onMsgs ?? ((c) => c.ack(c.unacked)),
    };
    this.server = net.createServer((s) => {
      const conn = new FakeConn(s, this);
      this.conns.push(conn);
      for (const w of this.waiters.splice(0)) w(conn);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Resolves with the first connection (now or when it arrives). */
  firstConn(): Promise<FakeConn> {
    if (this.conns.length > 0) return Promise.resolve(this.conns[0]);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function helloOk(maxMessageBytes: number): Buffer {
  const b = Buffer.alloc(12);
  b.write('MSGS', 0, 'latin1');
  b[4] = 1;
  b.writeUInt32BE(maxMessageBytes, 8);
  return b;
}

function ackFrame(status: number, count: number, lastMsgId: bigint): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32BE(16, 0);
  b[4] = 0x81;
  b[5] = status;
  b.writeUInt32BE(count, 8);
  b.writeBigUInt64BE(lastMsgId, 12);
  return b;
}

function errFrame(code: number, reason: string): Buffer {
  const r = Buffer.from(reason, 'utf8');
  const b = Buffer.alloc(6 + r.length);
  b.writeUInt32BE(2 + r.length, 0);
  b[4] = 0x82;
  b[5] = code;
  r.copy(b, 6);
  return b;
}

/** Starts a fake, runs fn with a connected client, always cleans up. */
async function withClient(
  fakeOpts: Partial<FakeOptions>,
  clientOpts: { window?: number; clientId?: number },
  fn: (client: MessageClient, fake: FakeServer) => Promise<void>,
): Promise<void> {
  const fake = new FakeServer(fakeOpts);
  const port = await fake.listen();
  const client = await MessageClient.connect({ port, ...clientOpts });
  try {
    await fn(client, fake);
  } finally {
    await client.close();
    await fake.close();
  }
}

/** Settles every promise and returns the outcomes (so rejections are never unhandled). */
function settleAll<T>(ps: Promise<T>[]): Promise<PromiseSettledResult<T>[]> {
  return Promise.allSettled(ps);
}

// ---- tests -----------------------------------------------------------------------

test('handshake: HELLO bytes, client id, maxMessageBytes from HELLO_OK', T, async () => {
  await withClient({ maxMessageBytes: 4321 }, { clientId: 0xdeadbeef }, async (client, fake) => {
    const conn = await fake.firstConn();
    assert.deepEqual(conn.hello, Buffer.from([0x4d, 0x53, 0x47, 0x53, 1, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]));
    assert.equal(client.clientId, 0xdeadbeef);
    assert.equal(client.maxMessageBytes, 4321);
  });
});

test('messages carry auto-incrementing ids, name and payload; explicit ids are sent as given', T, async () => {
  await withClient({}, {}, async (client, fake) => {
    const a = await client.send('hello', { name: 'greeting' });
    const b = await client.send(Buffer.from([0, 255, 1]));
    const c = await client.send(new Uint8Array([7]), { msgId: 1000n, name: Buffer.from('bin') });
    assert.deepEqual(a, { msgId: 1n, status: 0, statusName: 'OK' });
    assert.equal(b.msgId, 2n);
    assert.equal(c.msgId, 1000n);
    const conn = await fake.firstConn();
    assert.deepEqual(conn.msgs, [
      { msgId: 1n, name: 'greeting', payload: Buffer.from('hello') },
      { msgId: 2n, name: '', payload: Buffer.from([0, 255, 1]) },
      { msgId: 1000n, name: 'bin', payload: Buffer.from([7]) },
    ]);
  });
});

test('one coalesced ACK settles every message it covers', T, async () => {
  // The fake waits for all 5 and answers with a single ACK count=5.
  const onMsgs = (c: FakeConn): void => {
    if (c.unacked === 5) c.ack(5);
  };
  await withClient({ onMsgs }, {}, async (client, fake) => {
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => client.send(`m${i}`)));
    assert.deepEqual(results.map((r) => r.msgId), [1n, 2n, 3n, 4n, 5n]);
    assert.ok(results.every((r) => r.statusName === 'OK'));
    assert.equal((await fake.firstConn()).acked, 5);
  });
});

test('ACK frames split into single bytes and several ACKs in one write are both parsed', T, async () => {
  const onMsgs = (c: FakeConn): void => {
    if (c.unacked < 3) return;
    const bytes = Buffer.concat([ackFrame(0, 2, c.msgs[1].msgId), ackFrame(0, 1, c.msgs[2].msgId)]);
    c.acked += 3;
    for (let i = 0; i < bytes.length; i++) c.socket.write(bytes.subarray(i, i + 1));
  };
  await withClient({ onMsgs }, {}, async (client) => {
    const r = await Promise.all([client.send('a'), client.send('b'), client.send('c')]);
    assert.deepEqual(r.map((x) => x.msgId), [1n, 2n, 3n]);
  });
});

test('a non-OK ACK rejects only its message; the connection stays usable', T, async () => {
  // First three messages: OK, TOO_LARGE, OK in separate frames; after that ACK everything OK.
  const onMsgs = (c: FakeConn): void => {
    if (c.acked >= 3) return c.ack(c.unacked);
    if (c.unacked < 3) return;
    c.ack(1, 0);
    c.ack(1, 1);
    c.ack(1, 0);
  };
  await withClient({ onMsgs }, {}, async (client) => {
    const [r1, r2, r3] = await settleAll([client.send('1'), client.send('2'), client.send('3')]);
    assert.equal(r1.status, 'fulfilled');
    assert.equal(r3.status, 'fulfilled');
    assert.equal(r2.status, 'rejected');
    const err = (r2 as PromiseRejectedResult).reason;
    assert.ok(err instanceof AckError);
    assert.equal(err.msgId, 2n);
    assert.equal(err.status, 1);
    assert.equal(err.statusName, 'TOO_LARGE');
    assert.equal(err.message, 'message 2 rejected: TOO_LARGE');
    assert.equal((await client.send('4')).msgId, 4n);
  });
});

test('one ACK covering several messages with an error status rejects all of them', T, async () => {
  const onMsgs = (c: FakeConn): void => {
    if (c.unacked === 2) c.ack(2, 2); // WRITE_FAILED
  };
  await withClient({ onMsgs }, {}, async (client) => {
    const rs = await settleAll([client.send('x'), client.send('y')]);
    for (const [i, r] of rs.entries()) {
      assert.equal(r.status, 'rejected');
      const err = (r as PromiseRejectedResult).reason;
      assert.ok(err instanceof AckError);
      assert.equal(err.msgId, BigInt(i + 1));
      assert.equal(err.statusName, 'WRITE_FAILED');
    }
  });
});

test('ERR rejects every in-flight and queued send with ServerError; later sends fail fast', T, async () => {
  // Window 2: messages 3..5 are still queued client-side when the ERR arrives.
  const onMsgs = (c: FakeConn): void => {
    if (c.unacked < 2) return;
    c.ack(1);
    c.socket.end(errFrame(8, 'server closing'));
  };
  await withClient({ onMsgs }, { window: 2 }, async (client, fake) => {
    const rs = await settleAll([1, 2, 3, 4, 5].map((i) => client.send(`m${i}`)));
    assert.equal(rs[0].status, 'fulfilled');
    for (const r of rs.slice(1)) {
      assert.equal(r.status, 'rejected');
      const err = (r as PromiseRejectedResult).reason;
      assert.ok(err instanceof ServerError, String(err));
      assert.equal(err.code, 8);
      assert.equal(err.codeName, 'SHUTTING_DOWN');
      assert.equal(err.reason, 'server closing');
      assert.equal(err.message, 'server closed the connection: SHUTTING_DOWN (server closing)');
    }
    // The queued ones never reached the wire.
    assert.equal((await fake.firstConn()).msgs.length, 2);
    assert.equal(client.closed, true);
    await assert.rejects(client.send('late'), (err: unknown) => {
      assert.ok(err instanceof ConnectionClosedError);
      assert.ok((err as Error).cause instanceof ServerError);
      return true;
    });
  });
});

test('ERR instead of HELLO_OK rejects connect with ServerError', T, async () => {
  const fake = new FakeServer({ onHello: (c) => c.socket.end(errFrame(7, 'too many connections')) });
  const port = await fake.listen();
  try {
    await assert.rejects(MessageClient.connect({ port }), (err: unknown) => {
      assert.ok(err instanceof ServerError);
      assert.equal(err.codeName, 'BUSY');
      assert.equal(err.message, 'server closed the connection: BUSY (too many connections)');
      return true;
    });
  } finally {
    await fake.close();
  }
});

test('a server that never answers HELLO trips connectTimeoutMs', T, async () => {
  const fake = new FakeServer({ onHello: () => {} });
  const port = await fake.listen();
  try {
    await assert.rejects(MessageClient.connect({ port, connectTimeoutMs: 200 }), ConnectTimeoutError);
  } finally {
    await fake.close();
  }
});

test('connection refused rejects connect with the socket error', T, async () => {
  const fake = new FakeServer();
  const port = await fake.listen();
  await fake.close(); // nothing listens on `port` now
  await assert.rejects(MessageClient.connect({ port }), { code: 'ECONNREFUSED' });
});

test('the socket closing rejects every pending send with ConnectionClosedError', T, async () => {
  const onMsgs = (c: FakeConn): void => {
    if (c.unacked === 3) c.socket.destroy();
  };
  await withClient({ onMsgs }, {}, async (client) => {
    const rs = await settleAll([client.send('a'), client.send('b'), client.send('c')]);
    for (const [i, r] of rs.entries()) {
      assert.equal(r.status, 'rejected');
      const err = (r as PromiseRejectedResult).reason;
      assert.ok(err instanceof ConnectionClosedError, String(err));
      assert.equal(err.msgId, BigInt(i + 1));
    }
  });
});

test('an ACK whose last_msg_id does not match is a ProtocolError and ends the connection', T, async () => {
  const onMsgs = (c: FakeConn): void => {
    c.acked += 1;
    c.socket.write(ackFrame(0, 1, 999n));
  };
  await withClient({ onMsgs }, {}, async (client) => {
    await assert.rejects(client.send('a'), ProtocolError);
    assert.equal(client.closed, true);
  });
});

test('an ACK covering more messages than are outstanding is a ProtocolError', T, async () => {
  const onMsgs = (c: FakeConn): void => {
    c.socket.write(ackFrame(0, 2, c.msgs[0].msgId));
  };
  await withClient({ onMsgs }, {}, async (client) => {
    await assert.rejects(client.send('a'), ProtocolError);
  });
});

test('close() rejects unacknowledged sends, ends the socket and resolves', T, async () => {
  const fake = new FakeServer({ onMsgs: () => {} }); // never ACKs
  const port = await fake.listen();
  try {
    const client = await MessageClient.connect({ port, window: 1 });
    const settled = settleAll([client.send('a'), client.send('b')]);
    const conn = await fake.firstConn();
    await client.close();
    const rs = await settled;
    assert.ok(rs.every((r) => r.status === 'rejected' && r.reason instanceof ConnectionClosedError));
    assert.equal(conn.ended, true);
    await assert.rejects(client.send('c'), ConnectionClosedError);
    await client.close(); // idempotent
  } finally {
    await fake.close();
  }
});

test('the window bounds unacknowledged messages; the rest wait in order', T, async () => {
  const window = 10;
  // The fake ACKs only when exactly `window` are outstanding: a client that
  // sent fewer would stall (test timeout), one that sent more shows in maxUnacked.
  const onMsgs = (c: FakeConn): void => {
    if (c.unacked >= window) c.ack(window);
  };
  await withClient({ onMsgs }, { window }, async (client, fake) => {
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => client.send(`m${i}`)));
    assert.deepEqual(results.map((r) => r.msgId), Array.from({ length: 100 }, (_, i) => BigInt(i + 1)));
    const conn = await fake.firstConn();
    assert.equal(conn.maxUnacked, window);
    assert.deepEqual(conn.msgs.map((m) => m.payload.toString()), Array.from({ length: 100 }, (_, i) => `m${i}`));
  });
});

test('5,000 sends started at once all resolve, with writes batched', T, async () => {
  const proto = net.Socket.prototype as unknown as { write: (...a: unknown[]) => boolean };
  const original = proto.write;
  let port = -1;
  let clientWrites = 0;
  proto.write = function (this: net.Socket, ...args: unknown[]): boolean {
    if (this.remotePort === port) clientWrites++;
    return original.apply(this, args);
  };
  try {
    const fake = new FakeServer();
    port = await fake.listen();
    const client = await MessageClient.connect({ port });
    try {
      const n = 5000;
      const results = await Promise.all(Array.from({ length: n }, (_, i) => client.send(`payload ${i}`, { name: 'bulk' })));
      assert.equal(results.length, n);
      assert.ok(results.every((r, i) => r.msgId === BigInt(i + 1) && r.status === 0));
      const conn = await fake.firstConn();
      assert.equal(conn.msgs.length, n);
      assert.ok(conn.maxUnacked <= 1024, `maxUnacked ${conn.maxUnacked} over the default window`);
      // One write per tick of sends, not one per message (HELLO is one more).
      assert.ok(clientWrites < n / 10, `client made ${clientWrites} socket writes for ${n} messages`);
    } finally {
      await client.close();
      await fake.close();
    }
  } finally {
    proto.write = original;
  }
});

test('payload limits: over the frame bound is refused locally, within it goes to the server', T, async () => {
  const onMsgs = (c: FakeConn, fresh: RawMsg[]): void => {
    for (const m of fresh) c.ack(1, m.payload.length > 100 ? 1 : 0);
  };
  await withClient({ maxMessageBytes: 100, onMsgs }, {}, async (client, fake) => {
    // 10 + 0 + 400 > 10 + 255 + 100: the server would drop the connection, so the client refuses.
    await assert.rejects(client.send(Buffer.alloc(400)), RangeError);
    // 150 bytes: over maxMessageBytes but inside the frame bound -> the server answers TOO_LARGE.
    await assert.rejects(client.send(Buffer.alloc(150)), { name: 'AckError', statusName: 'TOO_LARGE' });
    await assert.rejects(client.send('x', { name: 'n'.repeat(256) }), RangeError);
    assert.equal((await client.send('ok')).status, 0);
    assert.deepEqual((await fake.firstConn()).msgs.map((m) => m.payload.length), [150, 2]);
  });
});

test('connect validates its options', T, async () => {
  await assert.rejects(MessageClient.connect({ port: 0 }), RangeError);
  await assert.rejects(MessageClient.connect({ port: 9000, window: 0 }), RangeError);
  await assert.rejects(MessageClient.connect({ port: 9000, clientId: 2 ** 32 }), RangeError);
});
