// Token authentication, client side, against a raw TCP peer in the test that
// records every byte the client sends: HELLO with flags bit 0 and the AUTH
// frame right after it (docs/protocol.md), then the MSG frames; the peer
// answers HELLO_OK and ACKs, or ERR UNAUTHENTICATED / FORBIDDEN, which must
// surface as coded errors that never contain the token. Covers MessageClient,
// msgclient (--token, MSGS_TOKEN) and msgbench's load engine (plain and TLS).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { inspect } from 'node:util';
import { after, test } from 'node:test';

import { loadSucceeded, runLoad } from '../dist/bench/bench';
import {
  decodeAuth,
  decodeClientFrame,
  decodeHello,
  encodeAck,
  encodeAuth,
  encodeErr,
  encodeHello,
  encodeHelloOk,
  encodeMsg,
  HELLO_SIZE,
  HelloFlag,
} from '../dist/format/codec';
import { ErrCode, MessageClient, ReconnectFailedError, ServerError } from '../dist/index';
import { testCerts } from './support/certs';

const T = { timeout: 60_000 };
const ROOT = path.join(__dirname, '..');
const TOKEN = 's3cr3t-t0ken-for-tests';

type Verdict = 'ok' | { code: number; reason: string };

interface PeerConn {
  /** Every byte the client sent, in order. */
  bytes: Buffer;
  clientId: number;
  /** HELLO announced AUTH. */
  announced: boolean;
  token: Buffer | null;
  mechanism: number | null;
  msgIds: bigint[];
}

interface Peer {
  port: number;
  conns: PeerConn[];
  close(): Promise<void>;
}

/**
 * A v1 server in miniature: reads HELLO (and AUTH when announced), asks
 * `verdict` what to answer, then ACKs every MSG frame (one ACK per chunk).
 * After `dropAfter` MSGs on a connection it destroys that connection.
 */
async function peer(verdict: (c: PeerConn, index: number) => Verdict, opts: { dropAfter?: number } = {}): Promise<Peer> {
  const conns: PeerConn[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    const c: PeerConn = { bytes: Buffer.alloc(0), clientId: -1, announced: false, token: null, mechanism: null, msgIds: [] };
    const index = conns.push(c) - 1;
    let buf = Buffer.alloc(0);
    let stage: 'hello' | 'auth' | 'msgs' | 'done' = 'hello';
    sock.on('data', (chunk: Buffer) => {
      c.bytes = Buffer.concat([c.bytes, chunk]);
      buf = Buffer.concat([buf, chunk]);
      if (stage === 'hello') {
        const h = decodeHello(buf);
        if (h === null) return;
        c.clientId = h.clientId;
        c.announced = h.auth;
        buf = buf.subarray(HELLO_SIZE);
        stage = h.auth ? 'auth' : 'msgs';
        if (!h.auth) answer();
      }
      if (stage === 'auth') {
        const a = decodeAuth(buf);
        if (a === null) return;
        c.token = Buffer.from(a.token);
        c.mechanism = a.mechanism;
        buf = buf.subarray(a.size);
        stage = 'msgs';
        answer();
      }
      if (stage !== 'msgs') return;
      let count = 0;
      let last = 0n;
      for (let f = decodeClientFrame(buf, 0, 1 << 20); f !== null; f = decodeClientFrame(buf, 0, 1 << 20)) {
        buf = buf.subarray(f.size);
        c.msgIds.push(f.msgId);
        count++;
        last = f.msgId;
      }
      if (count > 0) sock.write(encodeAck(0, count, last));
      if (opts.dropAfter !== undefined && c.msgIds.length >= opts.dropAfter) sock.destroy();
    });
    function answer(): void {
      const v = verdict(c, index);
      if (v === 'ok') {
        sock.write(encodeHelloOk(0, 1 << 20));
        return;
      }
      stage = 'done';
      sock.end(encodeErr(v.code, v.reason));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    conns,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const peers: Peer[] = [];
after(async () => {
  for (const p of peers) await p.close();
});
async function newPeer(verdict: (c: PeerConn, index: number) => Verdict, opts: { dropAfter?: number } = {}): Promise<Peer> {
  const p = await peer(verdict, opts);
  peers.push(p);
  return p;
}

/** The peer's check: the right token, announced, mechanism 1. */
const tokenIs = (token: string | Buffer) => (c: PeerConn): Verdict =>
  c.announced && c.mechanism === 1 && c.token !== null && c.token.equals(Buffer.from(token))
    ? 'ok'
    : { code: ErrCode.UNAUTHENTICATED, reason: 'unauthenticated' };

async function rejection(p: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await p;
  } catch (err) {
    return err as Error & Record<string, unknown>;
  }
  assert.fail('expected a rejection');
}

function assertNoToken(err: unknown, token = TOKEN): void {
  const text = `${String(err)} ${(err as Error).stack ?? ''} ${JSON.stringify(err, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`;
  assert.ok(!text.includes(token), 'the token must not appear in an error');
}

test('token: HELLO has flags bit 0, the AUTH frame follows it at once, then the MSG frames', T, async () => {
  const p = await newPeer(tokenIs(TOKEN));
  const client = await MessageClient.connect({ port: p.port, clientId: 77, firstMsgId: 1, token: TOKEN });
  const acks = await client.sendMany(['a', 'bb', 'ccc']);
  assert.deepEqual(acks.map((a) => a.statusName), ['OK', 'OK', 'OK']);
  // Logging the client object does not show the token (nor its bytes).
  const shown = inspect(client, { showHidden: true, depth: 20 });
  assert.ok(!shown.includes(TOKEN) && !shown.includes(Buffer.from(TOKEN).toString('hex')));
  await client.close();
  assert.equal(p.conns.length, 1);
  const expected = Buffer.concat([
    Buffer.from('4d53475301010000' + '0000004d', 'hex'), // "MSGS" v1 flags=0x01 reserved=0 client_id=77
    Buffer.concat([Buffer.from([0, 0, 0, 2 + TOKEN.length, 0x02, 0x01]), Buffer.from(TOKEN)]),
    encodeMsg(1n, Buffer.alloc(0), Buffer.from('a')),
    encodeMsg(2n, Buffer.alloc(0), Buffer.from('bb')),
    encodeMsg(3n, Buffer.alloc(0), Buffer.from('ccc')),
  ]);
  assert.deepEqual(p.conns[0].bytes, expected);
  assert.deepEqual(expected.subarray(0, HELLO_SIZE), encodeHello(77, { flags: HelloFlag.AUTH }));
  assert.deepEqual(expected.subarray(HELLO_SIZE, HELLO_SIZE + 6 + TOKEN.length), encodeAuth(TOKEN));
});

test('token: bytes (a Uint8Array) go as they are; no token means flags 0 and no AUTH frame', T, async () => {
  const bin = Uint8Array.from([0, 1, 2, 255, 254, 10, 13]);
  const p = await newPeer((c) => (c.announced ? tokenIs(Buffer.from(bin))(c) : 'ok'));
  const a = await MessageClient.connect({ port: p.port, clientId: 1, token: bin });
  await a.send('x');
  await a.close();
  assert.deepEqual(p.conns[0].token, Buffer.from(bin));
  const b = await MessageClient.connect({ port: p.port, clientId: 2, firstMsgId: 9 });
  await b.send('y');
  await b.close();
  assert.equal(p.conns[1].announced, false);
  assert.deepEqual(p.conns[1].bytes, Buffer.concat([encodeHello(2), encodeMsg(9n, Buffer.alloc(0), Buffer.from('y'))]));
});

test('ERR UNAUTHENTICATED (13) rejects connect() with a coded ServerError that does not hold the token', T, async () => {
  const p = await newPeer(tokenIs('the right token'));
  const err = await rejection(MessageClient.connect({ port: p.port, token: TOKEN }));
  assert.ok(err instanceof ServerError, String(err));
  assert.equal(err.code, 'ERR_MSGS_SERVER');
  assert.equal(err.errCode, ErrCode.UNAUTHENTICATED);
  assert.equal(err.errCode, 13);
  assert.equal(err.codeName, 'UNAUTHENTICATED');
  assert.match(err.message, /UNAUTHENTICATED/);
  assertNoToken(err);
  assert.equal(p.conns[0].token?.toString(), TOKEN, 'the peer did get the token');
});

test('ERR FORBIDDEN (14) rejects connect() with a coded ServerError', T, async () => {
  const p = await newPeer((c) => (c.clientId === 5 ? 'ok' : { code: ErrCode.FORBIDDEN, reason: 'forbidden' }));
  const ok = await MessageClient.connect({ port: p.port, clientId: 5, token: TOKEN });
  await ok.send('allowed');
  await ok.close();
  const err = await rejection(MessageClient.connect({ port: p.port, clientId: 6, token: TOKEN }));
  assert.ok(err instanceof ServerError, String(err));
  assert.equal(err.code, 'ERR_MSGS_SERVER');
  assert.equal(err.errCode, 14);
  assert.equal(err.codeName, 'FORBIDDEN');
  assertNoToken(err);
});

test('reconnect: refused credentials on a reconnection attempt end the client at once (no retry loop)', T, async () => {
  // Connection 0 is accepted and dropped after one message; every later one is refused.
  const p = await newPeer((_c, i) => (i === 0 ? 'ok' : { code: ErrCode.UNAUTHENTICATED, reason: 'unauthenticated' }), { dropAfter: 1 });
  const client = await MessageClient.connect({ port: p.port, token: TOKEN, reconnect: { initialDelayMs: 1, maxDelayMs: 5 } });
  const closed = new Promise<Error | null>((resolve) => client.once('close', ({ error }) => resolve(error)));
  await client.send('first');
  const second = client.send('second').catch((e: Error) => e);
  const error = await closed;
  assert.ok(error instanceof ReconnectFailedError, String(error));
  assert.equal(error.code, 'ERR_MSGS_RECONNECT_FAILED');
  assert.equal(error.attempts, 1);
  assert.ok(error.cause instanceof ServerError);
  assert.equal(error.cause.codeName, 'UNAUTHENTICATED');
  assert.equal(p.conns.length, 2, 'one refused attempt, then no more');
  const e2 = await second;
  assert.ok(e2 instanceof Error);
  assertNoToken(error);
  assert.equal(client.closed, true);
});

test('an ERR UNAUTHENTICATED on an open connection is fatal even with reconnect on', T, async () => {
  let sock: net.Socket | null = null;
  const server = net.createServer((s) => {
    sock = s;
    s.on('error', () => {});
    s.once('data', () => s.write(encodeHelloOk(0, 1024)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const client = await MessageClient.connect({ port: (server.address() as net.AddressInfo).port, token: TOKEN, reconnect: true });
    const closed = new Promise<Error | null>((resolve) => client.once('close', ({ error }) => resolve(error)));
    (sock as unknown as net.Socket).end(encodeErr(ErrCode.UNAUTHENTICATED, 'credentials revoked'));
    const error = await closed;
    assert.ok(error instanceof ServerError, String(error));
    assert.equal(error.errCode, 13);
    assert.equal(client.stats().reconnects, 0);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('token validation: the size is named, the token never', async () => {
  const long = 'Q'.repeat(1025);
  const e1 = await rejection(MessageClient.connect({ port: 1, token: long }));
  assert.ok(e1 instanceof RangeError);
  assert.match(e1.message, /token must be 1\.\.1024 bytes, got 1025/);
  assertNoToken(e1, 'QQQQ');
  await assert.rejects(MessageClient.connect({ port: 1, token: '' }), /token must be 1\.\.1024 bytes, got 0/);
  await assert.rejects(MessageClient.connect({ port: 1, token: 42 as unknown as string }), /token must be a string or a Uint8Array/);
  // 1024 bytes of UTF-8 is the limit, not 1024 characters.
  await assert.rejects(MessageClient.connect({ port: 1, token: 'é'.repeat(513) }), /got 1026/);
});

// ---- msgclient ----------------------------------------------------------------

function cli(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const e = { ...process.env, ...env };
    if (env.MSGS_TOKEN === undefined) delete e.MSGS_TOKEN;
    execFile(process.execPath, [path.join(ROOT, 'dist', 'cli', file), ...args], { env: e }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('msgclient: --token and MSGS_TOKEN send the token; a refusal exits 3 without printing it', T, async () => {
  const p = await newPeer(tokenIs(TOKEN));
  const viaEnv = await cli('msgclient.js', ['--port', String(p.port), 'hello'], { MSGS_TOKEN: TOKEN });
  assert.equal(viaEnv.code, 0, viaEnv.stderr);
  assert.equal(viaEnv.stdout, 'ack msg_id=1 status=OK\n');
  assert.equal(p.conns[0].token?.toString(), TOKEN);
  const viaFlag = await cli('msgclient.js', ['--port', String(p.port), '--token', TOKEN, 'hello']);
  assert.equal(viaFlag.code, 0, viaFlag.stderr);
  assert.equal(p.conns[1].token?.toString(), TOKEN);
  const wrong = await cli('msgclient.js', ['--port', String(p.port), '--token', 'not-it', 'hello'], { MSGS_TOKEN: TOKEN });
  assert.equal(wrong.code, 3);
  assert.match(wrong.stderr, /UNAUTHENTICATED/);
  assert.ok(!wrong.stderr.includes('not-it') && !wrong.stderr.includes(TOKEN));
  const none = await cli('msgclient.js', ['--port', String(p.port), 'hello']);
  assert.equal(none.code, 3);
  assert.equal(p.conns.at(-1)?.announced, false);
  const help = await cli('msgclient.js', ['--help']);
  assert.match(help.stdout, /--token <t>/);
  assert.match(help.stdout, /MSGS_TOKEN/);
  const legacy = await cli('msgclient.js', ['--legacy', '--token', 'x', '1', 'a']);
  assert.equal(legacy.code, 2);
});

// ---- msgbench's load engine -----------------------------------------------------

test('msgbench --token: every connection sends HELLO flag 0x01 and the AUTH frame, then its messages', T, async () => {
  const p = await newPeer(tokenIs(TOKEN));
  const r = await runLoad({ port: p.port, token: TOKEN, connections: 3, messages: 200, window: 16, clientIdBase: 100, payload: [0, 300] });
  assert.ok(loadSucceeded(r), `errors: ${JSON.stringify(r.errorsByKind)} ${r.errorSamples.join('; ')}`);
  assert.equal(r.messagesAcked, 600);
  assert.equal(p.conns.length, 3);
  const ids = p.conns.map((c) => c.clientId).sort();
  assert.deepEqual(ids, [100, 101, 102]);
  for (const c of p.conns) {
    assert.deepEqual(c.bytes.subarray(0, HELLO_SIZE + 6 + TOKEN.length), Buffer.concat([encodeHello(c.clientId, { flags: 1 }), encodeAuth(TOKEN)]));
    assert.equal(c.msgIds.length, 200);
  }
  // HELLO and AUTH bytes count as written.
  assert.ok(r.wireBytesSent >= 3 * (HELLO_SIZE + 6 + TOKEN.length));
});

test('msgbench --token over TLS (the engine\'s own TLS, a terminator in front of the peer)', T, async () => {
  const p = await newPeer(tokenIs(TOKEN));
  const certs = testCerts();
  const server = tls.createServer({ cert: fs.readFileSync(certs.serverCert), key: fs.readFileSync(certs.serverKey) }, (s) => {
    const up = net.connect({ host: '127.0.0.1', port: p.port });
    s.pipe(up).pipe(s);
    s.on('error', () => up.destroy());
    up.on('error', () => s.destroy());
    up.on('close', () => s.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const port = (server.address() as net.AddressInfo).port;
    const r = await runLoad({ port, tls: { ca: certs.caCert }, token: TOKEN, connections: 2, messages: 500, window: 50, payload: 100 });
    assert.ok(loadSucceeded(r), `errors: ${JSON.stringify(r.errorsByKind)} ${r.errorSamples.join('; ')}`);
    assert.equal(r.messagesAcked, 1000);
    for (const c of p.conns) assert.equal(c.token?.toString(), TOKEN);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(certs.dir, { recursive: true, force: true });
  }
});

test('msgbench: ERR UNAUTHENTICATED counts as a server error per connection; --json does not print the token', T, async () => {
  const p = await newPeer(tokenIs('the right token'));
  const r = await runLoad({ port: p.port, token: TOKEN, connections: 2, messages: 10 });
  assert.equal(r.errorsByKind.serverError, 2);
  assert.equal(r.messagesAcked, 0);
  assert.match(r.errorSamples[0], /server ERR \w+ \(code 13\)/);
  assert.ok(!r.errorSamples.join(' ').includes(TOKEN));
  const good = await newPeer(tokenIs(TOKEN));
  const out = await cli('msgbench.js', ['--port', String(good.port), '-n', '5', '-q', '--json'], { MSGS_TOKEN: TOKEN });
  assert.equal(out.code, 0, out.stderr);
  assert.ok(!out.stdout.includes(TOKEN), 'the token is not in the JSON');
  assert.equal((JSON.parse(out.stdout) as { options: { token: string } }).options.token, '(set)');
  assert.equal(good.conns[0].token?.toString(), TOKEN);
  await assert.rejects(async () => runLoad({ port: p.port, token: 'x'.repeat(1025), messages: 1 }), /token must be 1\.\.1024 bytes, got 1025/);
});
