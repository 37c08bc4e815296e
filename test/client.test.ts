// MessageClient against a fake server written here with node:net. The fake
// encodes and parses the wire format itself (not through lib/format/codec), so these
// tests also pin the client's bytes to the protocol in docs/protocol.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { MessageClient, type AckResult, type ClientOptions } from '../dist/client/client';
import { AckError, ConnectionClosedError, ConnectTimeoutError, ReconnectFailedError, SendManyError, ServerError } from '../dist/errors';
import { ProtocolError } from '../dist/format/codec';

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
  private msgWaiters: { n: number; resolve: () => void }[] = [];

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

  /** Resolves once at least n messages arrived on this connection. */
  waitMsgs(n: number): Promise<void> {
    if (this.msgs.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.msgWaiters.push({ n, resolve }));
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
    this.msgWaiters = this.msgWaiters.filter((w) => {
      if (this.msgs.length < w.n) return true;
      w.resolve();
      return false;
    });
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
  private server: net.Server | null = null;
  private waiters: { index: number; resolve: (c: FakeConn) => void }[] = [];

  constructor(opts: Partial<FakeOptions> = {}) {
    const maxMessageBytes = opts.maxMessageBytes ?? 1024 * 1024;
    this.opts = {
      maxMessageBytes,
      onHello: opts.onHello ?? ((c) => c.socket.write(helloOk(maxMessageBytes))),
      onMsgs: opts.onMsgs ?? ((c) => c.ack(c.unacked)),
    };
  }

  /** Listens on `port` (0 = any free port); also used to restart on the same port after stop(). */
  async listen(port = 0): Promise<number> {
    const server = net.createServer((s) => {
      const conn = new FakeConn(s, this);
      this.conns.push(conn);
      this.waiters = this.waiters.filter((w) => {
        if (w.index >= this.conns.length) return true;
        w.resolve(this.conns[w.index]);
        return false;
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    return (server.address() as net.AddressInfo).port;
  }

  /** Resolves with the index-th connection (now or when it arrives). */
  conn(index: number): Promise<FakeConn> {
    if (this.conns.length > index) return Promise.resolve(this.conns[index]);
    return new Promise((resolve) => this.waiters.push({ index, resolve }));
  }

  /** Resolves with the first connection (now or when it arrives). */
  firstConn(): Promise<FakeConn> {
    return this.conn(0);
  }

  /** Stops listening and drops every connection; listen(port) starts it again. */
  async close(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
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
  clientOpts: Omit<ClientOptions, 'port'>,
  fn: (client: MessageClient, fake: FakeServer) => Promise<void>,
): Promise<void> {
  const fake = new FakeServer(fakeOpts);
  const port = await fake.listen();
  const client = await MessageClient.connect({ firstMsgId: 1, port, ...clientOpts });
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
      assert.equal(err.code, 'ERR_MSGS_SERVER');
      assert.equal(err.errCode, 8);
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
    await assert.rejects(MessageClient.connect({ firstMsgId: 1, port }), (err: unknown) => {
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
    await assert.rejects(MessageClient.connect({ firstMsgId: 1, port, connectTimeoutMs: 200 }), ConnectTimeoutError);
  } finally {
    await fake.close();
  }
});

test('connection refused rejects connect with the socket error', T, async () => {
  const fake = new FakeServer();
  const port = await fake.listen();
  await fake.close(); // nothing listens on `port` now
  await assert.rejects(MessageClient.connect({ firstMsgId: 1, port }), { code: 'ECONNREFUSED' });
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
    const client = await MessageClient.connect({ firstMsgId: 1, port, window: 1 });
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
    const client = await MessageClient.connect({ firstMsgId: 1, port });
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
  await assert.rejects(MessageClient.connect({ firstMsgId: 1, port: 0 }), RangeError);
  await assert.rejects(MessageClient.connect({ firstMsgId: 1, port: 9000, window: 0 }), RangeError);
  await assert.rejects(MessageClient.connect({ firstMsgId: 1, port: 9000, clientId: 2 ** 32 }), RangeError);
});

// ---- reconnect, resend, back-pressure, sendMany ------------------------------------

/**
 * Waits until `pred` holds, re-checking after every turn of the event loop
 * (not a timed sleep: it returns as soon as the state is reached). Bounded.
 */
async function until(pred: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Records every event the client emits, in order. */
function recordEvents(client: MessageClient): Array<[string, unknown]> {
  const log: Array<[string, unknown]> = [];
  for (const name of ['disconnect', 'reconnect', 'reconnected', 'resend', 'close'] as const) {
    client.on(name, (arg: unknown) => log.push([name, arg]));
  }
  return log;
}

const FAST = { initialDelayMs: 5, maxDelayMs: 40 };

test('reconnect: the server closes, the client reconnects with the same client id and carries on', T, async () => {
  const fake = new FakeServer();
  const port = await fake.listen();
  const client = await MessageClient.connect({ firstMsgId: 1, port, clientId: 77, reconnect: FAST });
  const events = recordEvents(client);
  try {
    assert.equal((await client.send('a')).msgId, 1n);
    const disconnected = once(client, 'disconnect');
    await fake.close(); // drops the connection and stops listening
    const [{ error }] = (await disconnected) as [{ error: Error }];
    assert.ok(error instanceof Error);
    assert.equal(client.connected, false);
    assert.equal(client.closed, false);
    // Sent while disconnected: held, written after the reconnect, with the next id.
    const b = client.send('b');
    assert.equal(client.queuedCount, 1);
    const reconnected = once(client, 'reconnected');
    await fake.listen(port);
    await reconnected;
    assert.deepEqual(await b, { msgId: 2n, status: 0, statusName: 'OK' });
    const conn2 = await fake.conn(1);
    assert.equal(conn2.clientId, 77);
    assert.deepEqual(conn2.msgs.map((m) => [m.msgId, m.payload.toString()]), [[2n, 'b']]);
    assert.equal(client.connected, true);
    const st = client.stats();
    assert.equal(st.reconnects, 1);
    assert.equal(st.resent, 0);
    assert.equal(st.acked, 2);
    assert.equal(st.sent, 2);
    assert.equal(st.failed, 0);
    const names = events.map(([n]) => n);
    assert.equal(names[0], 'disconnect');
    assert.ok(names.includes('reconnect'));
    assert.equal(names.at(-1), 'reconnected');
    assert.ok(!names.includes('close'));
  } finally {
    await client.close();
    await fake.close();
  }
});

test('reconnect: ERR SHUTTING_DOWN is a drop like any other; fatal ERRs are not retried', T, async () => {
  // Connection 0 ACKs the first message, then says SHUTTING_DOWN and closes.
  const onMsgs = (c: FakeConn): void => {
    if (fake.conns.indexOf(c) === 0) {
      c.ack(1);
      c.socket.end(errFrame(8, 'server shutting down'));
    } else {
      c.ack(c.unacked);
    }
  };
  const fake = new FakeServer({ onMsgs });
  const port = await fake.listen();
  const client = await MessageClient.connect({ firstMsgId: 1, port, reconnect: FAST });
  try {
    const disconnected = once(client, 'disconnect');
    assert.equal((await client.send('first')).msgId, 1n);
    const [{ error }] = (await disconnected) as [{ error: Error }];
    assert.ok(error instanceof ServerError);
    assert.equal(error.codeName, 'SHUTTING_DOWN');
    assert.equal((await client.send('second')).msgId, 2n); // waits for the reconnect
    assert.equal(client.stats().reconnects, 1);
  } finally {
    await client.close();
    await fake.close();
  }

  // A framing ERR (MALFORMED) means our bytes are wrong: reconnecting cannot help.
  const fake2 = new FakeServer({ onMsgs: (c) => c.socket.end(errFrame(6, 'bad frame')) });
  const port2 = await fake2.listen();
  const client2 = await MessageClient.connect({ firstMsgId: 1, port: port2, reconnect: FAST });
  try {
    const closed = once(client2, 'close');
    await assert.rejects(client2.send('x'), { name: 'ServerError', codeName: 'MALFORMED' });
    await closed;
    assert.equal(client2.closed, true);
    assert.equal(fake2.conns.length, 1);
  } finally {
    await client2.close();
    await fake2.close();
  }
});

test('back-off: attempts are counted, delays grow with jitter up to maxDelayMs, and stop at maxAttempts', T, async () => {
  const fake = new FakeServer();
  const port = await fake.listen();
  const reconnect = { initialDelayMs: 4, maxDelayMs: 20, maxAttempts: 5 };
  const client = await MessageClient.connect({ firstMsgId: 1, port, reconnect });
  const events = recordEvents(client);
  try {
    const closed = once(client, 'close');
    await fake.close(); // nothing listens any more: every attempt is refused
    const [{ error }] = (await closed) as [{ error: Error }];
    assert.ok(error instanceof ReconnectFailedError, String(error));
    assert.equal(error.attempts, 5);
    assert.equal((error.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    const attempts = events.filter(([n]) => n === 'reconnect').map(([, a]) => a as { attempt: number; delayMs: number });
    assert.deepEqual(attempts.map((a) => a.attempt), [1, 2, 3, 4, 5]);
    for (const { attempt, delayMs } of attempts) {
      const base = Math.min(reconnect.maxDelayMs, reconnect.initialDelayMs * 2 ** (attempt - 1));
      assert.ok(delayMs >= base / 2 && delayMs <= base, `attempt ${attempt}: delay ${delayMs} outside [${base / 2}, ${base}]`);
    }
    assert.equal(events.filter(([n]) => n === 'disconnect').length, 1);
    assert.equal(events.filter(([n]) => n === 'reconnected').length, 0);
    assert.equal(client.closed, true);
    await assert.rejects(client.send('late'), ConnectionClosedError);
  } finally {
    await client.close();
  }
});

test('maxAttempts exhausted: every pending send (resend, queued, parked) rejects with the last error', T, async () => {
  // Never ACKs: messages stay in flight until the connection is dropped.
  const fake = new FakeServer({ onMsgs: () => {} });
  const port = await fake.listen();
  const client = await MessageClient.connect({
      firstMsgId: 1,
    port,
    window: 2,
    maxQueued: 1,
    reconnect: { initialDelayMs: 1, maxDelayMs: 5, maxAttempts: 3 },
    resend: true,
  });
  try {
    const sends = [1, 2, 3, 4, 5].map((i) => client.send(`m${i}`)); // 2 in flight, 1 queued, 2 parked
    const settled = settleAll(sends);
    assert.deepEqual([client.inFlightCount, client.queuedCount, client.parkedCount], [2, 1, 2]);
    await (await fake.firstConn()).waitMsgs(2);
    await fake.close();
    const rs = await settled;
    for (const [i, r] of rs.entries()) {
      assert.equal(r.status, 'rejected');
      const err = (r as PromiseRejectedResult).reason;
      assert.ok(err instanceof ReconnectFailedError, String(err));
      assert.ok(err instanceof ConnectionClosedError);
      assert.equal(err.msgId, BigInt(i + 1));
      assert.equal(err.attempts, 3);
      assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    }
    assert.equal(client.closed, true);
    assert.equal(client.stats().failed, 5);
    assert.deepEqual([client.inFlightCount, client.queuedCount, client.parkedCount], [0, 0, 0]);
  } finally {
    await client.close();
    await fake.close();
  }
});

test('resend: written-but-unACKed messages are resent first, in order, with their ids (K of N unACKed)', T, async () => {
  const N = 10;
  const K = 3;
  // Connection 0 receives all N, ACKs N-K, then closes. Later connections ACK everything.
  const onMsgs = (c: FakeConn): void => {
    if (fake.conns.indexOf(c) !== 0) return c.ack(c.unacked);
    if (c.msgs.length < N) return;
    c.ack(N - K);
    c.socket.end();
  };
  const fake = new FakeServer({ onMsgs });
  const port = await fake.listen();
  const client = await MessageClient.connect({ firstMsgId: 1, port, reconnect: FAST, resend: true });
  const events = recordEvents(client);
  try {
    const disconnected = once(client, 'disconnect');
    const first = Array.from({ length: N }, (_, i) => client.send(`m${i + 1}`, { name: 'r' }));
    await disconnected;
    // A new send during the outage goes after the resent ones and gets the next id.
    const late = client.send('late');
    const results = await Promise.all(first);
    assert.deepEqual(results.map((r) => r.msgId), Array.from({ length: N }, (_, i) => BigInt(i + 1)));
    assert.equal((await late).msgId, BigInt(N + 1));
    const conn1 = await fake.conn(1);
    assert.deepEqual(
      conn1.msgs.map((m) => [m.msgId, m.name, m.payload.toString()]),
      [
        [8n, 'r', 'm8'],
        [9n, 'r', 'm9'],
        [10n, 'r', 'm10'],
        [11n, '', 'late'],
      ],
    );
    const st = client.stats();
    assert.equal(st.resent, K);
    assert.equal(st.acked, N + 1);
    assert.equal(st.sent, N + K + 1);
    assert.equal(st.reconnects, 1);
    const resend = events.filter(([n]) => n === 'resend');
    assert.deepEqual(resend, [['resend', { count: K, msgIds: [8n, 9n, 10n] }]]);
    // 'resend' comes right after 'reconnected'.
    const names = events.map(([n]) => n);
    assert.equal(names.indexOf('resend'), names.indexOf('reconnected') + 1);
  } finally {
    await client.close();
    await fake.close();
  }
});

test('without resend: unACKed messages reject with ConnectionClosedError, unwritten ones carry on, ids keep increasing', T, async () => {
  // Window 2: messages 1,2 are written, 3 waits in the client. Connection 0 drops without ACKing.
  const onMsgs = (c: FakeConn): void => {
    if (fake.conns.indexOf(c) !== 0) return c.ack(c.unacked);
    if (c.msgs.length === 2) c.socket.destroy();
  };
  const fake = new FakeServer({ onMsgs });
  const port = await fake.listen();
  const client = await MessageClient.connect({ firstMsgId: 1, port, window: 2, reconnect: FAST });
  try {
    const rs = await settleAll([client.send('a'), client.send('b'), client.send('c')]);
    for (const [i, r] of rs.slice(0, 2).entries()) {
      assert.equal(r.status, 'rejected');
      const err = (r as PromiseRejectedResult).reason;
      assert.ok(err instanceof ConnectionClosedError, String(err));
      assert.equal(err.msgId, BigInt(i + 1));
    }
    assert.equal(rs[2].status, 'fulfilled');
    assert.equal((rs[2] as PromiseFulfilledResult<AckResult>).value.msgId, 3n);
    assert.equal((await client.send('d')).msgId, 4n);
    assert.deepEqual((await fake.conn(1)).msgs.map((m) => m.msgId), [3n, 4n]);
    assert.equal(client.stats().resent, 0);
    assert.equal(client.stats().failed, 2);
  } finally {
    await client.close();
    await fake.close();
  }
});

test('resend: an ACK with status SHUTTING_DOWN (not stored) is resent after the reconnect instead of failing', T, async () => {
  const onMsgs = (c: FakeConn): void => {
    if (fake.conns.indexOf(c) !== 0) return c.ack(c.unacked);
    if (c.msgs.length < 3) return;
    c.ack(1, 0);
    c.ack(2, 3); // SHUTTING_DOWN for messages 2 and 3
    c.socket.end(errFrame(8, 'closing'));
  };
  const fake = new FakeServer({ onMsgs });
  const port = await fake.listen();
  const client = await MessageClient.connect({ firstMsgId: 1, port, reconnect: FAST, resend: true });
  try {
    const rs = await Promise.all([client.send('a'), client.send('b'), client.send('c')]);
    assert.deepEqual(rs.map((r) => r.statusName), ['OK', 'OK', 'OK']);
    assert.deepEqual((await fake.conn(1)).msgs.map((m) => m.msgId), [2n, 3n]);
    assert.equal(client.stats().resent, 2);
  } finally {
    await client.close();
    await fake.close();
  }
});

test('close() while reconnecting cancels it and rejects what is pending', T, async () => {
  const fake = new FakeServer({ onMsgs: () => {} });
  const port = await fake.listen();
  const client = await MessageClient.connect({ firstMsgId: 1, port, reconnect: { initialDelayMs: 60_000 }, resend: true });
  try {
    const p = settleAll([client.send('a')]);
    await (await fake.firstConn()).waitMsgs(1);
    const reconnecting = once(client, 'reconnect');
    await fake.close();
    await reconnecting; // the attempt is scheduled a minute away
    const closeEvent = once(client, 'close');
    await client.close();
    const [{ error }] = (await closeEvent) as [{ error: Error | null }];
    assert.equal(error, null);
    const [r] = await p;
    assert.equal(r.status, 'rejected');
    assert.ok((r as PromiseRejectedResult).reason instanceof ConnectionClosedError);
    assert.equal(client.closed, true);
  } finally {
    await client.close();
    await fake.close();
  }
});

test('bounded queue: with window W and maxQueued Q, send W+Q+1 parks until earlier ones are ACKed', T, async () => {
  const W = 4;
  const Q = 3;
  let autoAck = false;
  let maxHeld = 0;
  let client: MessageClient | null = null;
  const onMsgs = (c: FakeConn): void => {
    if (client !== null) maxHeld = Math.max(maxHeld, client.inFlightCount + client.queuedCount);
    if (autoAck) c.ack(c.unacked);
  };
  await withClient({ onMsgs }, { window: W, maxQueued: Q }, async (cl, fake) => {
    client = cl;
    const done: boolean[] = [];
    const sends = Array.from({ length: W + Q + 1 }, (_, i) => {
      const p = cl.send(`m${i + 1}`);
      void p.then(() => (done[i] = true));
      return p;
    });
    assert.deepEqual([cl.inFlightCount, cl.queuedCount, cl.parkedCount], [W, Q, 1]);
    let readyResolved = false;
    const ready = cl.ready().then(() => (readyResolved = true));
    const conn = await fake.firstConn();
    await conn.waitMsgs(W);
    assert.equal(conn.msgs.length, W); // the window holds the rest back
    // One ACK: message 1 resolves, 5 goes on the wire, the parked one is taken in.
    conn.ack(1);
    await sends[0];
    assert.deepEqual([cl.inFlightCount, cl.queuedCount, cl.parkedCount], [W, Q, 0]);
    assert.equal(done[W + Q], undefined, 'the (W+Q+1)-th send resolved before its ACK');
    assert.equal(readyResolved, false, 'ready() resolved while the client is full');
    await conn.waitMsgs(W + 1);
    conn.ack(1);
    await ready; // room now
    autoAck = true;
    conn.ack(conn.unacked);
    const results = await Promise.all(sends);
    assert.deepEqual(results.map((r) => r.msgId), Array.from({ length: W + Q + 1 }, (_, i) => BigInt(i + 1)));

    // A larger run: 200 sends at once, the fake ACKs as they come; never more than W+Q held.
    const many = Array.from({ length: 200 }, (_, i) => cl.send(`n${i}`));
    assert.equal(cl.inFlightCount + cl.queuedCount, W + Q);
    assert.equal(cl.parkedCount, 200 - W - Q);
    await Promise.all(many);
    assert.ok(maxHeld <= W + Q, `held ${maxHeld} > ${W + Q}`);
    assert.ok(conn.maxUnacked <= W, `on the wire ${conn.maxUnacked} > ${W}`);
    assert.equal(cl.stats().acked, W + Q + 1 + 200);
  });
});

test('sendMany: mixed items, results in order, one coalesced write', T, async () => {
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
    const client = await MessageClient.connect({ firstMsgId: 1, port, window: 2000 });
    try {
      const items = [
        'text',
        Buffer.from([1, 2]),
        { payload: 'named', name: 'own' },
        { payload: new Uint8Array([9]), msgId: 500n },
        ...Array.from({ length: 996 }, (_, i) => `bulk ${i}`),
      ];
      clientWrites = 0;
      const results = await client.sendMany(items, { name: 'dflt' });
      assert.equal(results.length, 1000);
      assert.deepEqual(results.slice(0, 5).map((r) => r.msgId), [1n, 2n, 3n, 500n, 4n]);
      assert.ok(results.every((r) => r.statusName === 'OK'));
      const conn = await fake.firstConn();
      assert.deepEqual(conn.msgs.slice(0, 4).map((m) => [m.msgId, m.name, m.payload.toString('hex')]), [
        [1n, 'dflt', Buffer.from('text').toString('hex')],
        [2n, 'dflt', '0102'],
        [3n, 'own', Buffer.from('named').toString('hex')],
        [500n, 'dflt', '09'],
      ]);
      assert.ok(clientWrites <= 2, `sendMany of 1000 made ${clientWrites} socket writes`);
      assert.deepEqual(await client.sendMany([]), []);
    } finally {
      await client.close();
      await fake.close();
    }
  } finally {
    proto.write = original;
  }
});

test('sendMany: a failure rejects with SendManyError only after every item settled', T, async () => {
  let release: (() => void) | null = null;
  const onMsgs = (c: FakeConn): void => {
    if (c.msgs.length < 4 || c.acked > 0) return;
    c.ack(1, 0);
    c.ack(1, 2); // WRITE_FAILED for item 1
    release = () => c.ack(2, 0);
  };
  await withClient({ onMsgs }, {}, async (client) => {
    let settled = false;
    const p = client.sendMany(['a', 'b', 'c', 'd']);
    p.then(
      () => (settled = true),
      () => (settled = true),
    );
    await until(() => client.stats().failed === 1 && release !== null, 'the first two ACKs');
    assert.equal(settled, false, 'sendMany settled before every item did');
    (release as unknown as () => void)();
    await assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof SendManyError);
      assert.ok(err instanceof AggregateError);
      assert.equal(err.failed, 1);
      assert.equal(err.errors.length, 1);
      assert.ok(err.errors[0] instanceof AckError);
      assert.equal(err.errors[0].msgId, 2n);
      assert.equal((err.results[0] as AckResult).msgId, 1n);
      assert.ok(err.results[1] instanceof AckError);
      assert.deepEqual(err.results.slice(2).map((r) => (r as AckResult).msgId), [3n, 4n]);
      return true;
    });
  });
});

test('sendMany: an invalid item rejects the call and sends nothing', T, async () => {
  await withClient({ maxMessageBytes: 10 }, {}, async (client, fake) => {
    await assert.rejects(client.sendMany(['ok', Buffer.alloc(1000)]), /sendMany item 1: /);
    await assert.rejects(client.sendMany(['ok', { payload: 'x', name: 'n'.repeat(300) }]), RangeError);
    await assert.rejects(client.sendMany(['ok', 42 as unknown as string]), TypeError);
    assert.equal((await client.send('first')).msgId, 1n); // no id was used up
    assert.equal((await fake.firstConn()).msgs.length, 1);
  });
});

test('connect validates the reconnect, resend and maxQueued options', T, async () => {
  await assert.rejects(MessageClient.connect({ firstMsgId: 1, port: 9000, resend: true }), /resend needs reconnect/);
  await assert.rejects(MessageClient.connect({ firstMsgId: 1, port: 9000, maxQueued: -1 }), RangeError);
  await assert.rejects(MessageClient.connect({ firstMsgId: 1, port: 9000, reconnect: { maxAttempts: 0 } }), RangeError);
  await assert.rejects(MessageClient.connect({ firstMsgId: 1, port: 9000, reconnect: { initialDelayMs: -5 } }), RangeError);
});
