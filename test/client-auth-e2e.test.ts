// The clients against the server's own TLS and authentication (docs/security.md):
// MessageClient, msgclient and msgbench over TLS, mutual TLS with a client
// certificate, tokens accepted and refused (UNAUTHENTICATED), client ids
// outside a principal's ranges (FORBIDDEN), each refusal a coded error.
// Certificates from test/support/certs.ts; tokens file and hashes made here.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';

import { loadSucceeded, runLoad } from '../dist/bench/bench';
import { ErrCode, MessageClient, MessageServer, readLog, ServerError, TlsError } from '../dist/index';
import { testCerts, type CertSet } from './support/certs';
import { tempDir } from './helpers';

const T = { timeout: 60_000 };
const ROOT = path.join(__dirname, '..');
const ALICE = 'alice-token-0123456789abcdef';
const BOB = 'bob-token-fedcba9876543210';
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** The server's security options as the contract gives them (docs/security.md). */
type Security = {
  tls?: { cert: string; key: string; ca?: string; clientAuth?: 'none' | 'request' | 'require' };
  auth?: { tokensFile: string; principals?: Record<string, Array<[number, number]>>; required?: boolean; allowPlaintext?: boolean };
};
/** new MessageServer with them: an intersection, so the options are checked against this shape too. */
function secureServer(o: ConstructorParameters<typeof MessageServer>[0] & Security): MessageServer {
  return new MessageServer(o);
}

let certs: CertSet;
let dir: string;
let tokensFile: string;
/** TLS, client certificates requested, tokens and principals, auth required. */
let server: MessageServer;
let port: number;
/** TLS with clientAuth 'require'. */
let strict: MessageServer;
let strictPort: number;

before(async () => {
  certs = testCerts();
  dir = tempDir('msgserver-auth-e2e-');
  tokensFile = path.join(dir, 'tokens.json');
  fs.writeFileSync(tokensFile, JSON.stringify([
    { name: 'alice', sha256: sha256(ALICE), clientIds: [[100, 199]] },
    { name: 'bob', sha256: sha256(BOB), clientIds: [[200, 299]] },
  ]));
  server = secureServer({
    port: 0,
    file: { path: path.join(dir, 'main.log') },
    tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert, clientAuth: 'request' },
    auth: { tokensFile, principals: { 'client-a': [[1000, 1999]] }, required: true },
  });
  port = (await server.listen()).port;
  strict = secureServer({
    port: 0,
    file: { path: path.join(dir, 'strict.log') },
    tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert, clientAuth: 'require' },
  });
  strictPort = (await strict.listen()).port;
});

after(async () => {
  await server?.close();
  await strict?.close();
  fs.rmSync(dir, { recursive: true, force: true });
  if (certs) fs.rmSync(certs.dir, { recursive: true, force: true });
});

const ca = (): Buffer => fs.readFileSync(certs.caCert);
const clientCert = (): { cert: Buffer; key: Buffer } => ({ cert: fs.readFileSync(certs.clientCert), key: fs.readFileSync(certs.clientKey) });

async function rejection(p: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await p;
  } catch (err) {
    return err as Error & Record<string, unknown>;
  }
  assert.fail('expected a rejection');
}

function assertServerError(err: Error & Record<string, unknown>, errCode: number, name: string): void {
  assert.ok(err instanceof ServerError, String(err));
  assert.equal(err.code, 'ERR_MSGS_SERVER');
  assert.equal(err.errCode, errCode);
  assert.equal(err.codeName, name);
  for (const t of [ALICE, BOB]) assert.ok(!err.message.includes(t), 'no token in the error');
}

test('TLS + token: 10,000 messages round-trip, ACKed and in the file', T, async () => {
  const d = tempDir('msgserver-auth-e2e-file-');
  const own = secureServer({
    port: 0,
    file: { path: path.join(d, 'm.log') },
    tls: { cert: certs.serverCert, key: certs.serverKey },
    auth: { tokensFile, required: true },
  });
  const p = (await own.listen()).port;
  try {
    const client = await MessageClient.connect({ host: '127.0.0.1', port: p, clientId: 150, firstMsgId: 1, tls: { ca: ca(), servername: 'localhost' }, token: ALICE });
    const items = Array.from({ length: 10_000 }, (_, i) => `e2e ${i}`);
    const acks = await client.sendMany(items);
    assert.equal(acks.length, 10_000);
    await client.close();
    await own.close();
    const got = new Map<bigint, string>();
    for await (const r of readLog(path.join(d, 'm.log'))) {
      assert.equal(r.clientId, 150);
      got.set(r.msgId, r.payload.toString());
    }
    assert.equal(got.size, 10_000);
    for (let i = 0; i < 10_000; i++) assert.equal(got.get(BigInt(i + 1)), items[i]);
  } finally {
    await own.close().catch(() => {});
    fs.rmSync(d, { recursive: true, force: true });
  }
});

test('token accepted; wrong token and no credentials -> UNAUTHENTICATED (13)', T, async () => {
  const ok = await MessageClient.connect({ port, clientId: 120, tls: { ca: ca() }, token: ALICE });
  assert.equal((await ok.send('hi')).statusName, 'OK');
  await ok.close();
  assertServerError(await rejection(MessageClient.connect({ port, clientId: 120, tls: { ca: ca() }, token: 'not-a-token' })), ErrCode.UNAUTHENTICATED, 'UNAUTHENTICATED');
  assertServerError(await rejection(MessageClient.connect({ port, clientId: 120, tls: { ca: ca() } })), 13, 'UNAUTHENTICATED');
});

test('a client id outside the token\'s ranges, or another principal\'s, -> FORBIDDEN (14)', T, async () => {
  assertServerError(await rejection(MessageClient.connect({ port, clientId: 500, tls: { ca: ca() }, token: ALICE })), ErrCode.FORBIDDEN, 'FORBIDDEN');
  assertServerError(await rejection(MessageClient.connect({ port, clientId: 150, tls: { ca: ca() }, token: BOB })), 14, 'FORBIDDEN');
  const bob = await MessageClient.connect({ port, clientId: 250, tls: { ca: ca() }, token: BOB });
  assert.equal((await bob.send('bob')).statusName, 'OK');
  await bob.close();
});

test('mutual TLS: the certificate (CN client-a) is the principal: its ids pass, others are FORBIDDEN', T, async () => {
  const c = await MessageClient.connect({ port, clientId: 1500, tls: { ca: ca(), ...clientCert() } });
  assert.equal((await c.send('by certificate')).statusName, 'OK');
  await c.close();
  assertServerError(await rejection(MessageClient.connect({ port, clientId: 150, tls: { ca: ca(), ...clientCert() } })), 14, 'FORBIDDEN');
});

test('clientAuth require: a good certificate connects; none, an expired one or one from the unrelated CA is refused with a code', T, async () => {
  const good = await MessageClient.connect({ port: strictPort, tls: { ca: ca(), ...clientCert() } });
  assert.equal((await good.send('x')).statusName, 'OK');
  await good.close();
  const refused = [
    await rejection(MessageClient.connect({ port: strictPort, tls: { ca: ca() }, connectTimeoutMs: 5000 })),
    await rejection(MessageClient.connect({ port: strictPort, tls: { ca: ca(), cert: fs.readFileSync(certs.expiredClientCert), key: fs.readFileSync(certs.expiredClientKey) }, connectTimeoutMs: 5000 })),
    await rejection(MessageClient.connect({ port: strictPort, tls: { ca: ca(), cert: fs.readFileSync(certs.otherClientCert), key: fs.readFileSync(certs.otherClientKey) }, connectTimeoutMs: 5000 })),
  ];
  for (const err of refused) {
    assert.ok(err instanceof TlsError, String(err));
    assert.equal(err.code, 'ERR_MSGS_TLS');
    assert.match(err.tlsCode, /^ERR_SSL_/);
  }
});

test('the client refuses a server whose certificate it cannot verify; a plaintext client gets a coded error, not a hang', T, async () => {
  const err = await rejection(MessageClient.connect({ port, tls: { ca: fs.readFileSync(certs.otherCaCert) }, token: ALICE }));
  assert.ok(err instanceof TlsError, String(err));
  // The server sends its CA along when it has one (clientAuth): then the chain ends in a CA the client does not trust.
  assert.ok(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN'].includes(String(err.tlsCode)), String(err.tlsCode));
  const plain = await rejection(MessageClient.connect({ port, clientId: 120, token: ALICE, connectTimeoutMs: 15_000 }));
  assert.ok(typeof plain.code === 'string' && plain.code.length > 0, String(plain));
  assert.notEqual(plain.code, 'ERR_MSGS_CONNECT_TIMEOUT', 'the server closes within its handshake timeout');
});

test('tokens over plaintext with allowPlaintext', T, async () => {
  const d = tempDir('msgserver-auth-e2e-plain-');
  const plain = secureServer({ port: 0, file: { path: path.join(d, 'p.log') }, auth: { tokensFile, required: true, allowPlaintext: true } });
  const p = (await plain.listen()).port;
  try {
    const c = await MessageClient.connect({ port: p, clientId: 101, token: ALICE });
    assert.equal((await c.send('plain')).statusName, 'OK');
    await c.close();
    assertServerError(await rejection(MessageClient.connect({ port: p, clientId: 101, token: BOB })), 14, 'FORBIDDEN');
    assertServerError(await rejection(MessageClient.connect({ port: p, clientId: 101 })), 13, 'UNAUTHENTICATED');
  } finally {
    await plain.close();
    fs.rmSync(d, { recursive: true, force: true });
  }
});

function cli(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'dist', 'cli', file), ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('msgclient --tls --ca --token (and MSGS_TOKEN); a wrong token exits 3 with UNAUTHENTICATED', T, async () => {
  const flag = await cli('msgclient.js', ['--port', String(port), '--tls', '--ca', certs.caCert, '--client-id', '130', '--token', ALICE, 'a', 'b']);
  assert.equal(flag.code, 0, flag.stderr);
  assert.equal(flag.stdout, 'ack msg_id=1 status=OK\nack msg_id=2 status=OK\n');
  const env = await cli('msgclient.js', ['--port', String(port), '--ca', certs.caCert, '--client-id', '131', 'c'], { MSGS_TOKEN: ALICE });
  assert.equal(env.code, 0, env.stderr);
  const mtls = await cli('msgclient.js', ['--port', String(port), '--ca', certs.caCert, '--cert', certs.clientCert, '--key', certs.clientKey, '--client-id', '1001', 'd']);
  assert.equal(mtls.code, 0, mtls.stderr);
  const wrong = await cli('msgclient.js', ['--port', String(port), '--ca', certs.caCert, '--client-id', '131', 'e'], { MSGS_TOKEN: 'wrong' });
  assert.equal(wrong.code, 3);
  assert.match(wrong.stderr, /UNAUTHENTICATED/);
});

test('msgbench --tls --token: every connection authenticated, every message ACKed; mTLS too', T, async (t) => {
  const before = server.stats().messagesIn;
  const r = await runLoad({ port, tls: { ca: certs.caCert }, token: ALICE, clientIdBase: 100, connections: 4, messages: 2500, window: 64, payload: 1024, threads: 2 });
  assert.ok(loadSucceeded(r), `errors: ${JSON.stringify(r.errorsByKind)} ${r.errorSamples.join('; ')}`);
  assert.equal(r.messagesAcked, 10_000);
  assert.equal(server.stats().messagesIn - before, 10_000);
  t.diagnostic(`msgbench TLS + token against msgserver's TLS: ${Math.round(r.msgsPerSec)} msgs/s`);
  const m = await runLoad({ port, tls: { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey }, clientIdBase: 1000, connections: 2, messages: 1000, window: 32 });
  assert.ok(loadSucceeded(m), `errors: ${JSON.stringify(m.errorsByKind)} ${m.errorSamples.join('; ')}`);
  // A wrong token: every connection refused by the server, counted as server errors.
  const bad = await runLoad({ port, tls: { ca: certs.caCert }, token: 'wrong', clientIdBase: 100, connections: 2, messages: 10 });
  assert.equal(bad.errorsByKind.serverError, 2);
  assert.match(bad.errorSamples[0], /UNAUTHENTICATED/);
  const cliRun = await cli('msgbench.js', ['--port', String(port), '--tls', '--ca', certs.caCert, '--client-id', '150', '-c', '2', '-n', '500', '-q'], { MSGS_TOKEN: ALICE });
  assert.equal(cliRun.code, 0, cliRun.stderr);
});
