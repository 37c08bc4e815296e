// Token and certificate authentication, per-client-id authorization: AUTH
// accepted, wrong, missing under required, AUTH without the HELLO flag,
// FORBIDDEN ids, one principal's token with another's id, certificate
// principals, anonymous clients when auth is not required, nothing stored
// before acceptance, the counters and the log lines (never the token), the
// tokens file at start and at reload.
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, test } from 'node:test';

import { MessageServer, readLog, type ServerOptions } from '../dist/index';
import { tempDir } from './helpers';
import { testCerts, type CertSet } from './support/certs';
import { auth, hello, msg, WireReader } from './support/wire';

const T = { timeout: 60_000 };
const certs: CertSet = testCerts();
const dirs: string[] = [certs.dir];
const servers: MessageServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const ALICE = crypto.randomBytes(32).toString('hex');
const BOB = crypto.randomBytes(32).toString('hex');
const sha = (t: string): string => crypto.createHash('sha256').update(t).digest('hex');

function tokensFile(dir: string, entries: Array<{ name: string; token: string; clientIds: Array<[number, number]> }>): string {
  const f = path.join(dir, 'tokens.json');
  fs.writeFileSync(f, JSON.stringify(entries.map((e) => ({ name: e.name, sha256: sha(e.token), clientIds: e.clientIds }))));
  return f;
}

interface Started {
  server: MessageServer;
  port: number;
  file: string;
  dir: string;
  logs: string[];
}

async function start(opts: { auth?: ServerOptions['auth']; tls?: ServerOptions['tls'] | null; tokens?: boolean } = {}): Promise<Started> {
  const dir = tempDir('msgserver-auth-');
  dirs.push(dir);
  const file = path.join(dir, 'messages.log');
  const tokens = opts.tokens === false ? undefined : tokensFile(dir, [
    { name: 'alice', token: ALICE, clientIds: [[1, 10]] },
    { name: 'bob', token: BOB, clientIds: [[100, 110], [200, 200]] },
  ]);
  const server = new MessageServer({
    port: 0,
    serviceThreads: 2,
    file: { path: file },
    tls: opts.tls === undefined ? { cert: certs.serverCert, key: certs.serverKey } : opts.tls,
    auth: { ...(tokens ? { tokensFile: tokens } : {}), required: true, ...opts.auth },
  });
  const logs: string[] = [];
  server.on('log', (e) => logs.push(e.message));
  servers.push(server);
  const { port } = await server.listen();
  return { server, port, file, dir, logs };
}

function connect(port: number, opts: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: fs.readFileSync(certs.caCert), ...opts });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends `bytes` pipelined (HELLO, AUTH, MSGs in one write) and waits for the verdict. */
async function exchange(port: number, bytes: Buffer[], want: number, opts: tls.ConnectionOptions = {}): Promise<WireReader> {
  const s = await connect(port, opts);
  const r = new WireReader(s);
  s.write(Buffer.concat(bytes));
  await r.until((x) => x.err !== null || x.acked >= want || x.closed, 10_000);
  s.destroy();
  return r;
}

async function records(file: string): Promise<Array<{ clientId: number; payload: string }>> {
  const out: Array<{ clientId: number; payload: string }> = [];
  for await (const r of readLog(file)) out.push({ clientId: r.clientId, payload: Buffer.from(r.payload).toString() });
  return out;
}

test('tokens: accepted, wrong, missing under required, AUTH without the flag, FORBIDDEN ids; nothing stored before acceptance', T, async () => {
  const { server, port, file, logs } = await start();
  // Accepted, pipelined: HELLO(flag) + AUTH + MSGs in one write.
  const ok = await exchange(port, [hello(5, 1), auth(ALICE), msg(1, 'alice-1'), msg(2, 'alice-2')], 2);
  assert.equal(ok.helloOk, true);
  assert.equal(ok.ackedOk, 2);
  const ok2 = await exchange(port, [hello(200, 1), auth(BOB), msg(1, 'bob-1')], 1);
  assert.equal(ok2.ackedOk, 1);

  const refusals: Array<[string, Buffer[], number]> = [
    ['wrong token', [hello(5, 1), auth(crypto.randomBytes(32).toString('hex')), msg(9, 'nope-wrong')], 13],
    ['unknown mechanism', [hello(5, 1), auth(ALICE, 7), msg(9, 'nope-mech')], 13],
    ['no credentials under required', [hello(5), msg(9, 'nope-missing')], 13],
    ['AUTH announced, MSG sent', [hello(5, 1), msg(9, 'nope-noauth')], 13],
    ['id outside the token\'s ranges', [hello(50, 1), auth(ALICE), msg(9, 'nope-range')], 14],
    ['alice\'s token with bob\'s id', [hello(100, 1), auth(ALICE), msg(9, 'nope-other')], 14],
  ];
  for (const [what, bytes, code] of refusals) {
    const r = await exchange(port, bytes, 1);
    assert.equal(r.helloOk, false, what);
    assert.equal(r.acked, 0, what);
    assert.equal(r.err?.code, code, what);
    await r.until((x) => x.closed);
  }
  // The same answer for an unknown and a wrong token: nothing to learn from it.
  const a = await exchange(port, [hello(5, 1), auth('x')], 1);
  const b = await exchange(port, [hello(5, 1), auth(ALICE.slice(0, -1) + (ALICE.endsWith('0') ? '1' : '0'))], 1);
  assert.deepEqual(a.err, b.err);

  const st = server.stats();
  assert.equal(st.errors.UNAUTHENTICATED, 6);
  assert.equal(st.errors.FORBIDDEN, 2);
  assert.equal(st.authAccepted, 2);
  // At most one line per interval and thread, and never a token.
  const lines = logs.filter((l) => / refused with (UNAUTHENTICATED|FORBIDDEN)/.test(l));
  assert.ok(lines.length >= 1 && lines.length <= 2, lines.join('\n'));
  for (const l of logs) assert.ok(!l.includes(ALICE) && !l.includes(BOB), l);
  await server.close();
  const stored = await records(file);
  assert.deepEqual(stored.map((r) => r.payload).sort(), ['alice-1', 'alice-2', 'bob-1']);
});

test('AUTH without the HELLO flag is UNAUTHENTICATED; auth not required: anonymous clients only for ids no principal owns', T, async () => {
  const { server, port, file } = await start({ auth: { required: false } });
  const anon = await exchange(port, [hello(500), msg(1, 'anon-500')], 1);
  assert.equal(anon.ackedOk, 1);
  const claimed = await exchange(port, [hello(5), msg(1, 'anon-5')], 1);
  assert.equal(claimed.err?.code, 14);
  const unannounced = await exchange(port, [hello(500), auth(ALICE), msg(2, 'after-auth')], 1);
  assert.equal(unannounced.helloOk, true); // the HELLO alone was fine for id 500
  assert.equal(unannounced.err?.code, 13);
  assert.equal(unannounced.acked, 0);
  const token = await exchange(port, [hello(3, 1), auth(ALICE), msg(1, 'alice-3')], 1);
  assert.equal(token.ackedOk, 1);
  await server.close();
  assert.deepEqual((await records(file)).map((r) => r.payload).sort(), ['alice-3', 'anon-500']);
});

test('certificate principals (subject CN) with auth.principals; tokens still work over mutual TLS', T, async () => {
  const { server, port } = await start({
    tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert, clientAuth: 'request' },
    auth: { principals: { 'client-a': [[1, 10]] } },
  });
  const read = (f: string) => fs.readFileSync(f);
  const a = { cert: read(certs.clientCert), key: read(certs.clientKey) };
  assert.equal((await exchange(port, [hello(4), msg(1, 'cert-a')], 1, a)).ackedOk, 1);
  assert.equal((await exchange(port, [hello(100), msg(1, 'x')], 1, a)).err?.code, 14);
  // client-b has a good certificate but is not listed.
  const b = { cert: read(certs.client2Cert), key: read(certs.client2Key) };
  assert.equal((await exchange(port, [hello(4), msg(1, 'x')], 1, b)).err?.code, 14);
  // No certificate (clientAuth 'request'): a token still gets in; nothing is UNAUTHENTICATED.
  assert.equal((await exchange(port, [hello(101, 1), auth(BOB), msg(1, 'bob')], 1)).ackedOk, 1);
  assert.equal((await exchange(port, [hello(101), msg(1, 'x')], 1)).err?.code, 13);
  assert.equal(server.stats().authAccepted, 2);
});

test('clientAuth require without auth.principals: any verified certificate, any client id', T, async () => {
  const { port } = await start({
    tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert, clientAuth: 'require' },
    tokens: false,
  });
  const read = (f: string) => fs.readFileSync(f);
  const r = await exchange(port, [hello(123456), msg(1, 'x')], 1, { cert: read(certs.client2Cert), key: read(certs.client2Key) });
  assert.equal(r.ackedOk, 1);
});

test('reload(): a new tokens file takes over for new connections; a bad one keeps the old (ERR_MSGS_TOKENS_FILE)', T, async () => {
  const { server, port, dir } = await start();
  const CAROL = crypto.randomBytes(16).toString('hex');
  assert.equal((await exchange(port, [hello(5, 1), auth(CAROL), msg(1, 'x')], 1)).err?.code, 13);
  const old = await connect(port);
  const or = new WireReader(old);
  old.write(Buffer.concat([hello(6, 1), auth(ALICE), msg(1, 'before')]));
  await or.until((x) => x.acked >= 1);
  tokensFile(dir, [{ name: 'carol', token: CAROL, clientIds: [[1, 10]] }]);
  await server.reload();
  assert.equal((await exchange(port, [hello(5, 1), auth(CAROL), msg(1, 'x')], 1)).ackedOk, 1);
  assert.equal((await exchange(port, [hello(5, 1), auth(ALICE), msg(1, 'x')], 1)).err?.code, 13);
  old.write(msg(2, 'after')); // accepted before the reload: carries on
  await or.until((x) => x.acked >= 2);
  assert.equal(or.ackedOk, 2);
  old.destroy();
  fs.writeFileSync(path.join(dir, 'tokens.json'), '[{"name": "x", "sha256": "short", "clientIds": [[1, 2]]}]');
  await assert.rejects(server.reload(), (e: NodeJS.ErrnoException) => e.code === 'ERR_MSGS_TOKENS_FILE' && /entry 0: sha256/.test(e.message));
  assert.equal(server.stats().reloadFailures, 1);
  assert.equal((await exchange(port, [hello(5, 1), auth(CAROL), msg(1, 'x')], 1)).ackedOk, 1);
});

test('auth config: tokens over plaintext need allowPlaintext (then a warning); a bad tokens file fails listen()', T, async () => {
  const dir = tempDir('msgserver-auth-cfg-');
  dirs.push(dir);
  const tokens = tokensFile(dir, [{ name: 'alice', token: ALICE, clientIds: [[1, 10]] }]);
  assert.throws(() => new MessageServer({ auth: { tokensFile: tokens } }), /auth\.tokensFile = .*only with tls set, or with auth\.allowPlaintext: true/);
  assert.throws(() => new MessageServer({ auth: { principals: { a: [[5, 1]] } } }), /auth\.principals\.a = /);
  assert.throws(() => new MessageServer({ auth: { tokensFile: path.join(dir, 'none.json'), allowPlaintext: true } }), /auth\.tokensFile = .*\(ENOENT\)/);
  const server = new MessageServer({ port: 0, host: '127.0.0.1', file: { path: path.join(dir, 'm.log') }, auth: { tokensFile: tokens, allowPlaintext: true, required: true } });
  servers.push(server);
  const logs: string[] = [];
  server.on('log', (e) => logs.push(e.message));
  const { port } = await server.listen();
  assert.ok(logs.some((l) => /allowPlaintext: tokens cross the network in clear text/.test(l)), logs.join('\n'));
  // Plaintext with a token works when allowed.
  const net = await import('node:net');
  const r = new WireReader(net.connect(port, '127.0.0.1'));
  r.socket.write(Buffer.concat([hello(2, 1), auth(ALICE), msg(1, 'plain')]));
  await r.until((x) => x.acked >= 1);
  r.socket.destroy();
  await server.close();
  fs.writeFileSync(tokens, '{"not": "an array"}');
  const bad = new MessageServer({ port: 0, file: { path: path.join(dir, 'm2.log') }, auth: { tokensFile: tokens, allowPlaintext: true } });
  await assert.rejects(bad.listen(), (e: NodeJS.ErrnoException) => e.code === 'ERR_MSGS_TOKENS_FILE' && e.message.includes(tokens));
});

test('listening beyond loopback with neither tls nor auth.required logs a warning', T, async () => {
  const dir = tempDir('msgserver-auth-warn-');
  dirs.push(dir);
  const server = new MessageServer({ port: 0, host: '0.0.0.0', file: { path: path.join(dir, 'm.log') } });
  servers.push(server);
  const logs: string[] = [];
  server.on('log', (e) => logs.push(e.message));
  await server.listen();
  assert.ok(logs.some((l) => /beyond loopback with neither tls nor auth\.required/.test(l)), logs.join('\n'));
  await server.close();
});
