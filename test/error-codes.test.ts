// Errors a program can handle: every error the API raises carries a code
// (ERR_MSGS_... for the package's own, the errno's name for a failed system
// call, with errno/syscall/address/port/path like Node's), and every code the
// package can raise is in the one table of docs/api.md ("Error codes"). Also
// the protocol-mismatch hints of both clients and the server's log, and the
// types this work fixed (AckResult literals, ServerStats.lastSeq bigint,
// ConfigIssue exported).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';

import {
  AckError,
  AckStatus,
  ConnectionClosedError,
  ConnectTimeoutError,
  EndpointsFailedError,
  ErrCode,
  IoError,
  LegacyClient,
  LogCorruptError,
  MessageClient,
  MessageServer,
  MessageTooLargeError,
  NoSegmentsError,
  ProtocolError,
  ProtocolMismatchError,
  readLog,
  ReconnectFailedError,
  SendManyError,
  ServerError,
  verifyLog,
  type AckResult,
  type AckStatusName,
  type ConfigIssue,
  type ErrCodeName,
  type LogEntry,
  type ServerStats,
} from '../dist/index';
import { encodeLegacyFrame } from '../dist/client/legacy-client';
import { encodeFileHeader, encodeRecord } from '../dist/format/record';
import { freePort, rawExchange, tempDir } from './helpers';

const ROOT = path.join(__dirname, '..');
const T = { timeout: 30_000 };
const dirs: string[] = [];
const servers: MessageServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function dir(): string {
  const d = tempDir('msgserver-errors-');
  dirs.push(d);
  return d;
}

function server(opts: ConstructorParameters<typeof MessageServer>[0]): MessageServer {
  const s = new MessageServer(opts);
  servers.push(s);
  return s;
}

/** Rejects-with check that returns the error for further asserts. */
async function rejection(p: Promise<unknown>): Promise<NodeJS.ErrnoException & Record<string, unknown>> {
  try {
    await p;
  } catch (err) {
    return err as NodeJS.ErrnoException & Record<string, unknown>;
  }
  assert.fail('expected a rejection');
}

// ---- the docs table ---------------------------------------------------------

function filesUnder(d: string, ext: RegExp): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p, ext));
    else if (ext.test(e.name)) out.push(p);
  }
  return out;
}

/** Every 'ERR_MSGS_...' string the package's sources (lib/ and the native engine) can put in a `code`. */
function codesInSources(): Map<string, string> {
  const found = new Map<string, string>();
  const files = [...filesUnder(path.join(ROOT, 'lib'), /\.ts$/), ...filesUnder(path.join(ROOT, 'native'), /\.(cc|h)$/)];
  for (const f of files) {
    for (const m of fs.readFileSync(f, 'utf8').matchAll(/['"](ERR_MSGS_[A-Z0-9_]+)['"]/g)) {
      if (!found.has(m[1])) found.set(m[1], path.relative(ROOT, f));
    }
  }
  return found;
}

/** The codes in docs/api.md's "Error codes" table (its first column). */
function codesInDocs(): Set<string> {
  const api = fs.readFileSync(path.join(ROOT, 'docs', 'api.md'), 'utf8');
  const start = api.indexOf('\n## Error codes\n');
  assert.ok(start >= 0, 'docs/api.md has an "Error codes" section');
  const section = api.slice(start + 1, api.indexOf('\n## ', start + 1));
  const codes = new Set<string>();
  for (const line of section.split('\n')) {
    const m = /^\| `(ERR_MSGS_[A-Z0-9_]+)` \|/.exec(line);
    if (m) codes.add(m[1]);
  }
  return codes;
}

test('every code the package can raise is in the docs/api.md table, and every code there exists', () => {
  const sources = codesInSources();
  const documented = codesInDocs();
  assert.ok(sources.size >= 14, `found ${sources.size} codes in the sources`);
  const undocumented = [...sources.keys()].filter((c) => !documented.has(c)).map((c) => `${c} (${sources.get(c)})`);
  assert.deepEqual(undocumented, [], 'codes raised but not in the table');
  const stale = [...documented].filter((c) => !sources.has(c));
  assert.deepEqual(stale, [], 'codes in the table that nothing raises');
});

/** The error classes declared in lib/: name -> [file, has a code]. */
function errorClasses(): Map<string, [string, boolean]> {
  const out = new Map<string, [string, boolean]>();
  for (const f of filesUnder(path.join(ROOT, 'lib'), /\.ts$/)) {
    const text = fs.readFileSync(f, 'utf8');
    for (const m of text.matchAll(/^export class (\w+)(?:<[^>]*>)? extends (\w+)[^{]*\{([\s\S]*?)^\}/gm)) {
      const [, name, base, body] = m;
      if (!/Error$/.test(base) || name === 'UsageError') continue; // UsageError: the CLIs' own, never raised by the API
      out.set(name, [path.relative(ROOT, f), /readonly code\b|this\.code =/.test(body)]);
    }
  }
  return out;
}

test('every error class in lib/ declares a code', () => {
  const classes = errorClasses();
  assert.ok(classes.size >= 12, `found ${classes.size} error classes`);
  const missing = [...classes].filter(([, [, coded]]) => !coded).map(([n, [f]]) => `${n} (${f})`);
  assert.deepEqual(missing, []);
});

// ---- listen(): system errors shaped like Node's -------------------------------

test('listen() on a port in use: code EADDRINUSE, errno, syscall, address, port', T, async () => {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const { port } = holder.address() as net.AddressInfo;
  try {
    const s = server({ port, file: { path: path.join(dir(), 'm.log') } });
    const err = await rejection(s.listen());
    assert.equal(err.code, 'EADDRINUSE');
    assert.equal(err.errno, -os.constants.errno.EADDRINUSE);
    assert.equal(err.syscall, 'bind');
    assert.equal(err.address, '127.0.0.1');
    assert.equal(err.port, port);
    assert.match(err.message, new RegExp(`listen EADDRINUSE 127\\.0\\.0\\.1:${port}`));
    assert.equal(s.listening, false);
  } finally {
    holder.close();
  }
});

test('listen() with a host that does not resolve: ENOTFOUND, syscall getaddrinfo', T, async () => {
  const s = server({ host: 'no-such-host.invalid', port: 0, file: { path: path.join(dir(), 'm.log') } });
  const err = await rejection(s.listen());
  assert.ok(err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN', String(err.code));
  assert.equal(err.syscall, 'getaddrinfo');
  assert.equal(err.address, 'no-such-host.invalid');
});

test('listen() with a missing directory or a directory as the file: ENOENT / EISDIR, syscall open, path', T, async () => {
  const d = dir();
  const missing = path.join(d, 'no', 'such', 'dir', 'm.log');
  const e1 = await rejection(server({ port: 0, file: { path: missing } }).listen());
  assert.equal(e1.code, 'ENOENT');
  assert.equal(e1.errno, -os.constants.errno.ENOENT);
  assert.equal(e1.syscall, 'open');
  assert.equal(e1.path, missing);

  const e2 = await rejection(server({ port: 0, file: { path: d } }).listen());
  assert.equal(e2.code, 'EISDIR');
  assert.equal(e2.syscall, 'open');
  assert.equal(e2.path, d);
});

test('listen() refusing a log: ERR_MSGS_LOG_CORRUPT (corrupt before the tail), ERR_MSGS_NOT_A_LOG', T, async () => {
  const d = dir();
  const notLog = path.join(d, 'notes.log');
  fs.writeFileSync(notLog, 'this is not a binary log, just a long enough text file\n');
  const e1 = await rejection(server({ port: 0, file: { path: notLog } }).listen());
  assert.equal(e1.code, 'ERR_MSGS_NOT_A_LOG');
  assert.equal(e1.path, notLog);
  assert.equal(e1.errno, undefined);

  // Three records, the middle one damaged: corruption with a valid record after it.
  const recs = [1n, 2n, 3n].map((seq) => encodeRecord({ seq, timeUs: 1n, clientId: 1, msgId: seq, name: Buffer.from('n'), payload: Buffer.from('payload') }));
  const corrupt = path.join(d, 'corrupt.log');
  const bytes = Buffer.concat([encodeFileHeader(), ...recs]);
  bytes[16 + recs[0].length + recs[1].length - 2] ^= 0xff;
  fs.writeFileSync(corrupt, bytes);
  const e2 = await rejection(server({ port: 0, file: { path: corrupt } }).listen());
  assert.equal(e2.code, 'ERR_MSGS_LOG_CORRUPT');
  assert.equal(e2.path, corrupt);
  assert.match(e2.message, /corrupt record at byte offset/);
});

// ---- the client's errors -----------------------------------------------------

/** A fake v1 server: HELLO_OK with a small limit, then ACK status(payload) for each message, or ERR. */
async function fakeV1(onMsg: (payload: string, sock: net.Socket, msgId: bigint) => void, maxMessageBytes = 64): Promise<{ port: number; close: () => void }> {
  const sockets: net.Socket[] = [];
  const srv = net.createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    let hello = false;
    s.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (!hello && buf.length >= 12) {
        hello = true;
        buf = buf.subarray(12);
        const ok = Buffer.alloc(12);
        ok.write('MSGS', 'latin1');
        ok[4] = 1;
        ok.writeUInt32BE(maxMessageBytes, 8);
        s.write(ok);
      }
      while (hello && buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const nameLen = buf[5];
        const msgId = buf.readBigUInt64BE(6);
        onMsg(buf.toString('utf8', 14 + nameLen, 4 + len), s, msgId);
        buf = buf.subarray(4 + len);
      }
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      srv.close();
    },
  };
}

function ack(sock: net.Socket, status: number, msgId: bigint): void {
  const b = Buffer.alloc(20);
  b.writeUInt32BE(16, 0);
  b[4] = 0x81;
  b[5] = status;
  b.writeUInt32BE(1, 8);
  b.writeBigUInt64BE(msgId, 12);
  sock.write(b);
}

test('client errors carry their codes: ACK, SERVER, CONNECTION_CLOSED, MESSAGE_TOO_LARGE, SEND_MANY, PROTOCOL', T, async () => {
  const fake = await fakeV1((payload, sock, msgId) => {
    if (payload === 'err') {
      const reason = Buffer.from('server closing');
      const f = Buffer.alloc(6 + reason.length);
      f.writeUInt32BE(2 + reason.length, 0);
      f[4] = 0x82;
      f[5] = ErrCode.SHUTTING_DOWN;
      reason.copy(f, 6);
      sock.write(f);
      sock.end();
    } else if (payload === 'bad-ack') {
      ack(sock, 0, msgId + 1000n);
    } else {
      ack(sock, payload === 'nack' ? AckStatus.TOO_LARGE : AckStatus.OK, msgId);
    }
  });
  try {
    const client = await MessageClient.connect({ port: fake.port, firstMsgId: 1 });
    const ok: AckResult = await client.send('fine');
    assert.deepEqual(ok, { msgId: 1n, status: 0, statusName: 'OK' });

    const nack = await rejection(client.send('nack'));
    assert.ok(nack instanceof AckError);
    assert.equal(nack.code, 'ERR_MSGS_ACK');
    assert.equal(nack.statusName, 'TOO_LARGE');

    const big = await rejection(client.send('x'.repeat(1000)));
    assert.ok(big instanceof MessageTooLargeError);
    assert.ok(big instanceof RangeError, 'still a RangeError');
    assert.equal(big.code, 'ERR_MSGS_MESSAGE_TOO_LARGE');
    assert.equal(big.bytes, 1000);
    assert.equal(big.maxMessageBytes, 64);

    const many = await rejection(client.sendMany(['a', 'nack', 'b']));
    assert.ok(many instanceof SendManyError);
    assert.equal(many.code, 'ERR_MSGS_SEND_MANY');

    const srvErr = await rejection(client.send('err'));
    assert.ok(srvErr instanceof ServerError);
    assert.equal(srvErr.code, 'ERR_MSGS_SERVER');
    assert.equal(srvErr.errCode, ErrCode.SHUTTING_DOWN);
    assert.equal(srvErr.codeName, 'SHUTTING_DOWN');

    const closed = await rejection(client.send('after'));
    assert.ok(closed instanceof ConnectionClosedError);
    assert.equal(closed.code, 'ERR_MSGS_CONNECTION_CLOSED');

    const c2 = await MessageClient.connect({ port: fake.port });
    const proto = await rejection(c2.send('bad-ack'));
    assert.ok(proto instanceof ProtocolError);
    assert.equal(proto.code, 'ERR_MSGS_PROTOCOL');
    assert.equal(proto.errCode, ErrCode.MALFORMED);
    assert.equal(proto.codeName, 'MALFORMED');
    await c2.close();
  } finally {
    fake.close();
  }
});

test('connect errors carry codes: CONNECT_TIMEOUT (connected or not), ENDPOINTS_FAILED, RECONNECT_FAILED', T, async () => {
  // Accepts and never answers: a TCP connection without HELLO_OK.
  const mute = net.createServer((s) => s.on('error', () => {}));
  await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
  const mutePort = (mute.address() as net.AddressInfo).port;
  try {
    const t = await rejection(MessageClient.connect({ port: mutePort, connectTimeoutMs: 200 }));
    assert.ok(t instanceof ConnectTimeoutError);
    assert.equal(t.code, 'ERR_MSGS_CONNECT_TIMEOUT');
    assert.equal(t.connected, true);
    assert.equal(t.port, mutePort);
    assert.match(t.message, /legacy protocol.*--legacy/);

    const refused = await freePort();
    const agg = await rejection(MessageClient.connect({ endpoints: [{ port: refused }, { port: mutePort }], connectTimeoutMs: 200 }));
    assert.ok(agg instanceof EndpointsFailedError);
    assert.ok(agg instanceof AggregateError);
    assert.equal(agg.code, 'ERR_MSGS_ENDPOINTS_FAILED');
    assert.equal(agg.errors.length, 2);
    assert.equal((agg.errors[0] as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    assert.equal((agg.errors[1] as ConnectTimeoutError).code, 'ERR_MSGS_CONNECT_TIMEOUT');
  } finally {
    mute.close();
  }

  const fake = await fakeV1((_p, sock, msgId) => ack(sock, 0, msgId));
  const client = await MessageClient.connect({ port: fake.port, reconnect: { maxAttempts: 1, initialDelayMs: 300 } });
  const dropped = once(client, 'disconnect');
  fake.close(); // the connection drops and the one attempt (after about 300 ms) is refused
  await dropped;
  const gaveUp = await rejection(client.send('queued while reconnecting'));
  assert.ok(gaveUp instanceof ReconnectFailedError);
  assert.ok(gaveUp instanceof ConnectionClosedError);
  assert.equal(gaveUp.code, 'ERR_MSGS_RECONNECT_FAILED');
  await client.close();
});

test('readLog/verifyLog: a directory without segments is NoSegmentsError naming what it holds; LogCorruptError has its code', T, async () => {
  const d = dir();
  fs.writeFileSync(path.join(d, 'messages.log'), encodeFileHeader());
  fs.writeFileSync(path.join(d, 'README'), 'x');
  const e1 = await rejection(verifyLog(d));
  assert.ok(e1 instanceof NoSegmentsError);
  assert.equal(e1.code, 'ERR_MSGS_NO_SEGMENTS');
  assert.deepEqual(e1.found, ['README', 'messages.log']);
  assert.match(e1.message, /without log segments.*it holds README, messages\.log/);
  const e2 = await rejection((async () => {
    for await (const r of readLog(d)) void r;
  })());
  assert.ok(e2 instanceof NoSegmentsError);

  const bad = path.join(d, 'bad.log');
  fs.writeFileSync(bad, Buffer.concat([encodeFileHeader(), Buffer.from('garbage that is no record at all......')]));
  const e3 = await rejection((async () => {
    for await (const r of readLog(bad)) void r;
  })());
  assert.ok(e3 instanceof LogCorruptError);
  assert.equal(e3.code, 'ERR_MSGS_LOG_CORRUPT');
  assert.equal(new IoError('x', { op: 'write', path: 'p', errno: 5, systemCode: 'EIO', records: 0 }).code, 'ERR_MSGS_IO');
});

// ---- protocol mismatch: both clients, and the server's log ---------------------

function logLines(s: MessageServer): LogEntry[] {
  const lines: LogEntry[] = [];
  s.on('log', (l) => lines.push(l));
  return lines;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a legacy client on a v1 port: ProtocolMismatchError naming protocol legacy; the server ERR and log say so, rate-limited', T, async () => {
  const s = server({ port: 0, serviceThreads: 1, file: { path: path.join(dir(), 'm.log') } });
  const lines = logLines(s);
  const { port } = await s.listen();
  const client = await LegacyClient.connect({ port });
  const err = await rejection(client.send(7, 1, 'client_7', 'hello'));
  assert.ok(err instanceof ProtocolMismatchError, String(err));
  assert.equal(err.code, 'ERR_MSGS_PROTOCOL_MISMATCH');
  assert.equal(err.clientProtocol, 'legacy');
  assert.equal(err.serverProtocol, 'v1');
  assert.match(err.message, /speaks protocol v1.*ERR BAD_MAGIC.*protocol: 'legacy' \(--protocol legacy\)/);
  await client.close();

  // The ERR reason itself names the fix, for any client that reads ERR frames.
  const raw = await rawExchange(port, [encodeLegacyFrame(8, 1, 'client_8', 'again')]);
  const frame = raw.frames[0];
  assert.equal(frame?.type === 'err' && frame.code, ErrCode.BAD_MAGIC);
  assert.match(frame?.type === 'err' ? frame.reason : '', /legacy client.*protocol: 'legacy'/);

  await until(() => lines.some((l) => /legacy 1160-byte struct/.test(l.message)));
  const hints = lines.filter((l) => /legacy 1160-byte struct/.test(l.message));
  assert.equal(hints.length, 1, 'two connections within 10 s: one log line');
  assert.equal(hints[0].level, 'warn');
  assert.match(hints[0].message, /connection from 127\.0\.0\.1:\d+ .*protocol: 'legacy' \(--protocol legacy\)/);

  // Not every bad magic is a legacy client: HTTP gets the plain reason.
  const http = await rawExchange(port, [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]);
  const f2 = http.frames[0];
  assert.equal(f2?.type === 'err' ? f2.reason : '', 'bad magic: expected "MSGS" HELLO');
  assert.equal(s.stats().errors.BAD_MAGIC, 3);
});

test('a v1 client on a legacy port: ConnectTimeoutError naming --legacy; the server log names protocol v1', T, async () => {
  const s = server({ port: 0, serviceThreads: 1, protocol: 'legacy', file: { path: path.join(dir(), 'm.txt'), format: 'text' } });
  const lines = logLines(s);
  const { port } = await s.listen();
  const err = await rejection(MessageClient.connect({ port, connectTimeoutMs: 300 }));
  assert.ok(err instanceof ConnectTimeoutError);
  assert.equal(err.connected, true);
  assert.match(err.message, /no reply to HELLO.*protocol: 'legacy'.*msgclient --legacy/);
  await until(() => lines.some((l) => /sent a protocol v1 HELLO/.test(l.message)));
  const hint = lines.find((l) => /sent a protocol v1 HELLO/.test(l.message)) as LogEntry;
  assert.equal(hint.level, 'warn');
  assert.match(hint.message, /protocol: 'legacy'.*protocol: 'v1' \(--protocol v1\).*msgclient --legacy/);
  // A legacy client on the same port is served as before.
  const legacy = await LegacyClient.connect({ port });
  await legacy.send(1, 1, 'client_1', 'still served');
  await legacy.close();
});

// ---- types -------------------------------------------------------------------

test('types: AckResult literals, ServerStats.lastSeq bigint (before, while and after running), ConfigIssue exported', T, async () => {
  // Compile-time checks: these lines do not compile if the types regress.
  const status: 0 = ((r: AckResult) => r.status)({ msgId: 1n, status: 0, statusName: 'OK' });
  const name: 'OK' = ((r: AckResult) => r.statusName)({ msgId: 1n, status: 0, statusName: 'OK' });
  const statusName: AckStatusName = 'REPLICATION_FAILED';
  const codeName: ErrCodeName = 'BAD_MAGIC';
  const nackName: AckError['statusName'] = 'WRITE_FAILED';
  const issue: ConfigIssue = { field: 'port', value: 'x', allowed: 'integer 0..65535' };
  const lastSeq: bigint = ({} as ServerStats).lastSeq ?? 0n;
  assert.deepEqual([status, name, statusName, codeName, nackName, issue.field, typeof lastSeq], [0, 'OK', 'REPLICATION_FAILED', 'BAD_MAGIC', 'WRITE_FAILED', 'port', 'bigint']);

  const s = server({ port: 0, file: { path: path.join(dir(), 'm.log') } });
  assert.equal(s.stats().lastSeq, 0n);
  const { port } = await s.listen();
  const client = await MessageClient.connect({ port });
  await client.sendMany(['a', 'b', 'c']);
  await client.close();
  assert.equal(s.stats().lastSeq, 3n);
  await s.close();
  assert.equal(s.stats().lastSeq, 3n);
  assert.equal(typeof s.stats().lastSeq, 'bigint');
});
