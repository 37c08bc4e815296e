// MessageClient, msgclient and msgbench over TLS, independently of the
// server's own TLS: a node:tls server in the test (the certificates of
// test/support/certs.ts) terminates each TLS connection and pipes it to a
// plaintext msgserver. What is checked is the client side: the handshake, the
// server certificate's check (CA and name), the client certificate (mutual
// TLS at the terminator), HELLO and the frames inside TLS, every message
// ACKed and in the file, reconnecting over TLS, and the coded errors when the
// handshake fails. test/client-auth-e2e.test.ts does the same against the
// server's own TLS.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, before, test } from 'node:test';

import { loadSucceeded, runLoad } from '../dist/bench/bench';
import { MessageClient, MessageServer, readLog, TlsError } from '../dist/index';
import { testCerts, type CertSet } from './support/certs';
import { tempDir } from './helpers';

const T = { timeout: 60_000 };
const ROOT = path.join(__dirname, '..');

interface Terminator {
  port: number;
  /** TLS connections accepted (handshake done). */
  accepted: number;
  /** The plaintext sockets to the server, open ones: destroying them drops the client's connection. */
  upstream: Set<net.Socket>;
  close(): Promise<void>;
}

/** A TLS server that pipes each connection to the plaintext server at `target`. */
async function terminator(target: number, opts: tls.TlsOptions): Promise<Terminator> {
  const upstream = new Set<net.Socket>();
  const t: Terminator = { port: 0, accepted: 0, upstream, close: async () => {} };
  const server = tls.createServer(opts, (tlsSock) => {
    t.accepted++;
    const up = net.connect({ host: '127.0.0.1', port: target });
    upstream.add(up);
    up.on('close', () => {
      upstream.delete(up);
      tlsSock.destroy();
    });
    tlsSock.on('close', () => up.destroy());
    up.on('error', () => tlsSock.destroy());
    tlsSock.on('error', () => up.destroy());
    tlsSock.pipe(up);
    up.pipe(tlsSock);
  });
  server.on('tlsClientError', () => {}); // refused handshakes are what some tests want
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.port = (server.address() as net.AddressInfo).port;
  t.close = () =>
    new Promise<void>((resolve) => {
      for (const s of upstream) s.destroy();
      server.close(() => resolve());
    });
  return t;
}

let certs: CertSet;
let dir: string;
let server: MessageServer;
let serverPort: number;
let term: Terminator; // server certificate from ca, no client certificate asked
let mtls: Terminator; // requires a client certificate signed by ca

before(async () => {
  certs = testCerts();
  dir = tempDir('msgserver-client-tls-');
  server = new MessageServer({ port: 0, file: { path: path.join(dir, 'messages.log') } });
  serverPort = (await server.listen()).port;
  const serverTls = { cert: fs.readFileSync(certs.serverCert), key: fs.readFileSync(certs.serverKey) };
  term = await terminator(serverPort, serverTls);
  mtls = await terminator(serverPort, { ...serverTls, ca: fs.readFileSync(certs.caCert), requestCert: true, rejectUnauthorized: true });
});

after(async () => {
  await term?.close();
  await mtls?.close();
  await server?.close();
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(certs.dir, { recursive: true, force: true });
});

const ca = (): Buffer => fs.readFileSync(certs.caCert);

/** Every record of the server's log, after a close() that flushed it. */
async function records(file: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const r of readLog(file)) out.set(`${r.clientId}/${r.msgId}`, r.payload.toString());
  return out;
}

async function rejection(p: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await p;
  } catch (err) {
    return err as Error & Record<string, unknown>;
  }
  assert.fail('expected a rejection');
}

test('10,000 messages over TLS (client trusts only the test CA): all ACKed and in the file', T, async () => {
  // A server on its own file, closed to flush it, so the log can be read whole.
  const d = tempDir('msgserver-client-tls-file-');
  const own = new MessageServer({ port: 0, file: { path: path.join(d, 'm.log') } });
  const ownTerm = await terminator((await own.listen()).port, { cert: fs.readFileSync(certs.serverCert), key: fs.readFileSync(certs.serverKey) });
  try {
    const client = await MessageClient.connect({ host: '127.0.0.1', port: ownTerm.port, clientId: 4242, firstMsgId: 1, tls: { ca: ca(), servername: 'localhost' } });
    const items = Array.from({ length: 10_000 }, (_, i) => `tls message ${i}`);
    const acks = await client.sendMany(items);
    assert.equal(acks.length, 10_000);
    assert.ok(acks.every((a, i) => a.statusName === 'OK' && a.msgId === BigInt(i + 1)));
    assert.equal(client.stats().acked, 10_000);
    await client.close();
    assert.equal(ownTerm.accepted, 1, 'one TLS connection carried them all');
    await ownTerm.close();
    await own.close();
    const got = await records(path.join(d, 'm.log'));
    assert.equal(got.size, 10_000);
    for (let i = 0; i < 10_000; i++) assert.equal(got.get(`4242/${i + 1}`), items[i]);
  } finally {
    await ownTerm.close().catch(() => {});
    await own.close().catch(() => {});
    fs.rmSync(d, { recursive: true, force: true });
  }
});

test('the server certificate is checked against the host name, or the IP address when the host is one', T, async () => {
  // 127.0.0.1 is in the certificate's SAN as an IP, localhost as a name: both
  // pass. (The name is given as servername: a minimal machine may have no
  // /etc/hosts to resolve localhost.)
  for (const servername of [undefined, 'localhost']) {
    const c = await MessageClient.connect({ host: '127.0.0.1', port: term.port, tls: { ca: ca(), ...(servername ? { servername } : {}) } });
    assert.equal((await c.send('x')).statusName, 'OK');
    await c.close();
  }
  // A name the certificate does not carry is refused.
  const err = await rejection(MessageClient.connect({ host: '127.0.0.1', port: term.port, tls: { ca: ca(), servername: 'example.com' } }));
  assert.ok(err instanceof TlsError, String(err));
  assert.equal(err.code, 'ERR_MSGS_TLS');
  assert.equal(err.tlsCode, 'ERR_TLS_CERT_ALTNAME_INVALID');
  assert.match(err.message, /servername/);
});

test('a client that trusts only the unrelated CA refuses the server: TlsError with a code', T, async () => {
  const err = await rejection(MessageClient.connect({ port: term.port, tls: { ca: fs.readFileSync(certs.otherCaCert) }, connectTimeoutMs: 5000 }));
  assert.ok(err instanceof TlsError, String(err));
  assert.equal(err.code, 'ERR_MSGS_TLS');
  assert.equal(err.tlsCode, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  assert.equal(err.host, '127.0.0.1');
  assert.equal(err.port, term.port);
  assert.equal((err.cause as NodeJS.ErrnoException).code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  assert.match(err.message, /tls\.ca/);
  // tls: true uses the system's CAs, which do not hold the test CA either.
  const sys = await rejection(MessageClient.connect({ port: term.port, tls: true }));
  assert.ok(sys instanceof TlsError);
  assert.ok(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'].includes(sys.tlsCode as string), String(sys.tlsCode));
});

test('mutual TLS: with the client certificate it works; without one the handshake is refused (coded)', T, async () => {
  const good = await MessageClient.connect({
    port: mtls.port,
    tls: { ca: ca(), cert: fs.readFileSync(certs.clientCert), key: fs.readFileSync(certs.clientKey) },
  });
  assert.equal((await good.send('with a certificate')).statusName, 'OK');
  await good.close();

  // Under TLS 1.3 the client's handshake is done before the server judges its
  // certificate: an OpenSSL server then sends an alert (TlsError, see
  // client-auth-e2e.test.ts), node:tls (this terminator) just closes.
  const refused = (err: Error & Record<string, unknown>): void => {
    if (err instanceof TlsError) {
      assert.equal(err.code, 'ERR_MSGS_TLS');
      assert.match(err.tlsCode, /^(ERR_SSL_|ECONNRESET)/);
    } else {
      assert.equal(err.code, 'ERR_MSGS_CONNECTION_CLOSED', String(err));
      assert.match(err.message, /refused our certificate/);
    }
  };
  refused(await rejection(MessageClient.connect({ port: mtls.port, tls: { ca: ca() }, connectTimeoutMs: 5000 })));
  refused(await rejection(MessageClient.connect({
    port: mtls.port,
    tls: { ca: ca(), cert: fs.readFileSync(certs.otherClientCert), key: fs.readFileSync(certs.otherClientKey) },
    connectTimeoutMs: 5000,
  })));
});

test('a TLS client on a plaintext port gets a coded TlsError, not a hang', T, async () => {
  const err = await rejection(MessageClient.connect({ port: serverPort, tls: { ca: ca() }, connectTimeoutMs: 5000 }));
  assert.ok(err instanceof TlsError, String(err));
  assert.equal(err.code, 'ERR_MSGS_TLS');
  assert.match(err.message, /TLS/);
});

test('reconnect over TLS: a dropped connection comes back through a new handshake and resends', T, async () => {
  const before = term.accepted;
  const client = await MessageClient.connect({
    port: term.port,
    tls: { ca: ca() },
    reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    resend: true,
    firstMsgId: 1,
  });
  assert.equal((await client.send('before')).statusName, 'OK');
  const reconnected = new Promise<void>((resolve) => client.once('reconnected', () => resolve()));
  for (const s of term.upstream) s.destroy(); // the terminator drops every connection
  const during = client.sendMany(Array.from({ length: 100 }, (_, i) => `after ${i}`));
  await reconnected;
  const acks = await during;
  assert.equal(acks.length, 100);
  assert.ok(client.stats().reconnects >= 1);
  assert.ok(term.accepted >= before + 2, 'a second TLS handshake');
  await client.close();
});

test('tls option validation names the option', async () => {
  await assert.rejects(MessageClient.connect({ port: 1, tls: 'yes' as unknown as boolean }), /tls must be a boolean/);
});

// ---- msgclient --tls -------------------------------------------------------------

function msgclient(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'dist', 'cli', 'msgclient.js'), ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('msgclient --tls --ca --cert --key through the mTLS terminator; a wrong CA exits 3 with the reason', T, async () => {
  const ok = await msgclient(['--port', String(mtls.port), '--tls', '--ca', certs.caCert, '--cert', certs.clientCert, '--key', certs.clientKey, 'one', 'two']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'ack msg_id=1 status=OK\nack msg_id=2 status=OK\n');
  // --ca alone implies --tls.
  const implied = await msgclient(['--port', String(term.port), '--ca', certs.caCert, 'x']);
  assert.equal(implied.code, 0, implied.stderr);
  const wrong = await msgclient(['--port', String(term.port), '--ca', certs.otherCaCert, 'x']);
  assert.equal(wrong.code, 3);
  assert.match(wrong.stderr, /certificate was refused \(UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  const half = await msgclient(['--port', String(term.port), '--cert', certs.clientCert, 'x']);
  assert.equal(half.code, 2);
  assert.match(half.stderr, /--cert and --key go together/);
  const missing = await msgclient(['--port', String(term.port), '--ca', path.join(certs.dir, 'nope.pem'), 'x']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--ca .*nope\.pem: cannot read it \(ENOENT\)/);
});

// ---- msgbench --tls ----------------------------------------------------------------

test('msgbench --tls: the load engine speaks TLS itself; 10,000 messages through the terminator', T, async (t) => {
  const before = server.stats().messagesIn;
  const r = await runLoad({ port: term.port, tls: { ca: certs.caCert, servername: 'localhost' }, connections: 4, messages: 2500, window: 64, payload: 1024, threads: 2 });
  assert.ok(loadSucceeded(r), `errors: ${JSON.stringify(r.errorsByKind)} ${r.errorSamples.join('; ')}`);
  assert.equal(r.messagesAcked, 10_000);
  assert.equal(r.connectionsOk, 4);
  assert.equal(server.stats().messagesIn - before, 10_000);
  t.diagnostic(`msgbench TLS through a node:tls terminator: ${Math.round(r.msgsPerSec)} msgs/s, ${r.payloadMBPerSec.toFixed(1)} MB/s payload`);
  // Mutual TLS, with a payload range (frames of different sizes in one SSL_write) and a window large
  // enough that the engine's 256 KiB staging buffer is filled.
  const m = await runLoad({
    port: mtls.port,
    tls: { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey },
    connections: 2,
    messages: 3000,
    window: 1000,
    payload: [0, 2000],
  });
  assert.ok(loadSucceeded(m), `errors: ${JSON.stringify(m.errorsByKind)} ${m.errorSamples.join('; ')}`);
  assert.equal(m.messagesAcked, 6000);
});

test('msgbench --tls: a server certificate from an untrusted CA fails every connection as a connect error, naming the certificate', T, async () => {
  const r = await runLoad({ port: term.port, tls: { ca: certs.otherCaCert }, connections: 3, messages: 10, stallTimeoutMs: 5000 });
  assert.equal(r.connectionsFailed, 3);
  assert.equal(r.errorsByKind.connect, 3);
  assert.equal(r.messagesAcked, 0);
  assert.match(r.errorSamples[0], /TLS handshake: .*certificate verify failed.*\(certificate: unable to get local issuer certificate\)/);
  // The mTLS terminator without a client certificate refuses too.
  const m = await runLoad({ port: mtls.port, tls: { ca: certs.caCert }, connections: 1, messages: 10, stallTimeoutMs: 5000 });
  assert.equal(m.connectionsFailed, 1);
  assert.equal(loadSucceeded(m), false);
});

test('msgbench --tls: a file it cannot use rejects the run naming it', T, async () => {
  await assert.rejects(runLoad({ port: term.port, tls: { ca: path.join(certs.dir, 'missing.pem') }, messages: 1 }), /cannot load the CA file .*missing\.pem/);
  await assert.rejects(runLoad({ port: term.port, tls: { cert: certs.clientCert, key: certs.client2Key }, messages: 1 }), /cannot load the key file .*client2\.key|is not the key of/);
  assert.throws(() => runLoad({ port: term.port, protocol: 'legacy', tls: true, messages: 1 }) as unknown, /legacy protocol has neither TLS nor tokens/);
});

test('msgbench CLI --tls --ca: exit 0 and the figures', T, async () => {
  const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'dist', 'cli', 'msgbench.js'), '--port', String(term.port), '--tls', '--ca', certs.caCert, '-c', '2', '-n', '500', '-w', '32', '-q', '--json'], (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
  assert.equal(out.code, 0, out.stderr);
  const j = JSON.parse(out.stdout) as { options: { tls: unknown }; result: { messagesAcked: number } };
  assert.equal(j.result.messagesAcked, 1000);
  assert.deepEqual(j.options.tls, { ca: certs.caCert });
});
