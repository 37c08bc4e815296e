// TLS on the v1 port: Node's tls client and `openssl s_client` with TLS 1.2
// and 1.3 (10,000 messages round-trip and are in the file), certificates the
// client or the server must refuse, plaintext/TLS mismatches closed cleanly
// while a good client keeps its ACKs, reload of the certificate with an old
// connection carrying on, and 1,000 concurrent TLS connections.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { after, test } from 'node:test';

import { MessageServer, readLog, type ServerOptions } from '../dist/index';
import { tempDir } from './helpers';
import { hasOpenssl, testCerts, type CertSet } from './support/certs';
import { hello, msg, WireReader } from './support/wire';

const T = { timeout: 60_000 };
const certs: CertSet = testCerts();
const dirs: string[] = [certs.dir];
const servers: MessageServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function startServer(tlsOpts: ServerOptions['tls'], extra: ServerOptions = {}): Promise<{ server: MessageServer; port: number; file: string; logs: string[] }> {
  const dir = tempDir('msgserver-tls-');
  dirs.push(dir);
  const file = path.join(dir, 'messages.log');
  const server = new MessageServer({ port: 0, serviceThreads: 2, file: { path: file }, tls: tlsOpts, ...extra });
  const logs: string[] = [];
  server.on('log', (e) => logs.push(e.message));
  servers.push(server);
  const { port } = await server.listen();
  return { server, port, file, logs };
}

function tlsConnect(port: number, opts: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: fs.readFileSync(certs.caCert), ...opts });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

async function countRecords(file: string, clientId: number): Promise<{ n: number; ids: Set<bigint> }> {
  const ids = new Set<bigint>();
  let n = 0;
  for await (const r of readLog(file)) {
    if (r.clientId !== clientId) continue;
    n++;
    ids.add(r.msgId);
  }
  return { n, ids };
}

function frames(clientId: number, count: number, from = 0): Buffer {
  const parts = [hello(clientId)];
  for (let i = 0; i < count; i++) parts.push(msg(from + i, `message ${from + i} of client ${clientId}`));
  return Buffer.concat(parts);
}

const ONE_TLS = { cert: certs.serverCert, key: certs.serverKey };

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  test(`Node tls client, ${version}: 10,000 messages round-trip and are in the file`, T, async () => {
    const { server, port, file } = await startServer(ONE_TLS);
    const s = await tlsConnect(port, { minVersion: version, maxVersion: version });
    assert.equal(s.getProtocol(), version);
    const r = new WireReader(s);
    s.write(frames(7, 10_000));
    await r.until((x) => x.acked >= 10_000, 30_000);
    assert.equal(r.ackedOk, 10_000);
    assert.equal(r.lastAckId, 9999n);
    s.end();
    const st = server.stats();
    assert.ok(st.tlsHandshakes >= 1);
    assert.equal(st.tlsHandshakeFailures, 0);
    await server.close();
    const { n, ids } = await countRecords(file, 7);
    assert.equal(n, 10_000);
    assert.equal(ids.size, 10_000);
  });
}

for (const version of ['-tls1_2', '-tls1_3'] as const) {
  test(`openssl s_client ${version}: handshake, 10,000 messages round-trip and are in the file`, { ...T, skip: hasOpenssl() ? false : 'no openssl CLI' }, async () => {
    const { server, port, file } = await startServer(ONE_TLS);
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, version, '-CAfile', certs.caCert,
      '-verify_return_error', '-servername', 'localhost', '-quiet', '-ign_eof'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const r = new WireReader(child.stdout);
    child.stdin.write(frames(9, 10_000));
    try {
      await r.until((x) => x.acked >= 10_000, 30_000);
    } finally {
      child.kill();
    }
    assert.equal(r.ackedOk, 10_000);
    await server.close();
    assert.equal((await countRecords(file, 9)).n, 10_000);
  });
}

test('a server certificate from the wrong CA is refused by the client', T, async () => {
  const { server, port } = await startServer({ cert: certs.otherServerCert, key: certs.otherServerKey });
  await assert.rejects(tlsConnect(port), (e: NodeJS.ErrnoException) => /UNABLE_TO_VERIFY|SELF_SIGNED|unable to (get|verify)/i.test(`${e.code} ${e.message}`));
  // The client's alert fails the server's side of the handshake: counted.
  const deadline = Date.now() + 5000;
  while (server.stats().tlsHandshakeFailures < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(server.stats().tlsHandshakeFailures >= 1);
});

/** Connects with a client certificate (or none) and tries a HELLO: accepted, or closed without HELLO_OK. */
async function tryClient(port: number, opts: tls.ConnectionOptions): Promise<'accepted' | 'refused'> {
  let s: tls.TLSSocket;
  try {
    s = await tlsConnect(port, opts);
  } catch {
    return 'refused'; // TLS 1.2: the server's alert arrives during the handshake
  }
  // TLS 1.3: the client finishes first; the server's verdict follows.
  const r = new WireReader(s);
  s.write(Buffer.concat([hello(3), msg(1, 'x')]));
  await r.until((x) => x.acked >= 1 || x.closed, 10_000);
  s.destroy();
  return r.acked >= 1 ? 'accepted' : 'refused';
}

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  test(`clientAuth 'require' (${version}): expired, other-CA and missing client certificates are refused, a good one accepted`, T, async () => {
    const { server, port, logs } = await startServer({ ...ONE_TLS, ca: certs.caCert, clientAuth: 'require' });
    const v = { minVersion: version, maxVersion: version } as const;
    const read = (f: string) => fs.readFileSync(f);
    assert.equal(await tryClient(port, { ...v, cert: read(certs.clientCert), key: read(certs.clientKey) }), 'accepted');
    assert.equal(await tryClient(port, { ...v, cert: read(certs.expiredClientCert), key: read(certs.expiredClientKey) }), 'refused');
    assert.equal(await tryClient(port, { ...v, cert: read(certs.otherClientCert), key: read(certs.otherClientKey) }), 'refused');
    assert.equal(await tryClient(port, { ...v }), 'refused');
    const deadline = Date.now() + 5000;
    while (server.stats().tlsHandshakeFailures < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.stats().tlsHandshakeFailures, 3);
    assert.equal(server.stats().authAccepted, 1);
    // Logged (rate-limited): the peer and OpenSSL's reason.
    assert.ok(logs.some((l) => /TLS handshake with 127\.0\.0\.1:\d+ failed: .*(certificate|expired)/i.test(l)), logs.join('\n'));
  });
}

/** A good TLS client that sends one message every 20 ms and counts its ACKs. */
async function goodClient(port: number, clientId: number): Promise<{ stop: () => Promise<number>; reader: WireReader }> {
  const s = await tlsConnect(port);
  const r = new WireReader(s);
  s.write(hello(clientId));
  let id = 0;
  const timer = setInterval(() => s.write(msg(id++, 'still here')), 20);
  return {
    reader: r,
    stop: async () => {
      clearInterval(timer);
      await r.until((x) => x.acked >= id, 10_000);
      s.destroy();
      return id;
    },
  };
}

test('a plaintext client on the TLS port is closed (at once, or a silent one within handshakeTimeoutMs); a good client keeps its ACKs', T, async () => {
  const { server, port, logs } = await startServer(ONE_TLS, { limits: { handshakeTimeoutMs: 1000 } });
  const good = await goodClient(port, 11);
  const t0 = Date.now();
  const talker = new WireReader(net.connect(port, '127.0.0.1'));
  talker.socket.write(frames(12, 3));
  const silent = new WireReader(net.connect(port, '127.0.0.1'));
  await talker.until((x) => x.closed, 5000);
  assert.equal(talker.helloOk, false);
  await silent.until((x) => x.closed, 5000);
  assert.ok(Date.now() - t0 < 1000 + 250 + 1000, 'closed within the handshake timeout (plus one sweep)');
  const acked = good.reader.acked;
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(good.reader.acked > acked, 'the good client still gets ACKs');
  const sent = await good.stop();
  assert.equal(good.reader.ackedOk, sent);
  assert.equal(server.stats().tlsHandshakeFailures, 2);
  assert.ok(logs.some((l) => /TLS handshake with 127\.0\.0\.1:\d+ failed/.test(l)), logs.join('\n'));
});

test('a TLS client on a plaintext port gets ERR BAD_MAGIC naming TLS, and a clean close; a good client keeps its ACKs', T, async () => {
  const dir = tempDir('msgserver-tls-');
  dirs.push(dir);
  const server = new MessageServer({ port: 0, file: { path: path.join(dir, 'm.log') }, limits: { handshakeTimeoutMs: 1000 } });
  servers.push(server);
  const logs: string[] = [];
  server.on('log', (e) => logs.push(e.message));
  const { port } = await server.listen();
  const plain = new WireReader(net.connect(port, '127.0.0.1'));
  plain.socket.write(hello(1));
  // The first bytes of a TLS ClientHello: refused with a hint.
  const sniff = new WireReader(net.connect(port, '127.0.0.1'));
  sniff.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00, 0xf0, 0x03, 0x03]));
  await sniff.until((x) => x.closed, 5000);
  assert.equal(sniff.err?.code, 1);
  assert.match(sniff.err!.reason, /TLS ClientHello/);
  assert.ok(logs.some((l) => /looks like a TLS ClientHello/.test(l)), logs.join('\n'));
  // A real TLS client: its handshake fails on the server's plaintext answer, and the connection closes.
  const t0 = Date.now();
  const tlsErr = await new Promise<Error>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: fs.readFileSync(certs.caCert) });
    s.once('error', resolve);
    s.once('secureConnect', () => resolve(new Error('unexpected: handshake succeeded')));
  });
  assert.notEqual(tlsErr.message, 'unexpected: handshake succeeded');
  assert.ok(Date.now() - t0 < 2000);
  plain.socket.write(msg(1, 'fine'));
  await plain.until((x) => x.acked >= 1);
  plain.socket.destroy();
});

function fingerprint(pemFile: string): string {
  return new crypto.X509Certificate(fs.readFileSync(pemFile)).fingerprint256;
}

test('reload(): new connections see the new certificate, an old connection keeps sending and getting ACKs; a bad file keeps the old one', T, async () => {
  const dir = tempDir('msgserver-tls-reload-');
  dirs.push(dir);
  const cert = path.join(dir, 'server.pem');
  const key = path.join(dir, 'server.key');
  fs.copyFileSync(certs.serverCert, cert);
  fs.copyFileSync(certs.serverKey, key);
  const { server, port, file } = await startServer({ cert, key });
  const errors: Error[] = [];
  server.on('error', (e) => errors.push(e));
  const old = await tlsConnect(port);
  assert.equal(old.getPeerX509Certificate()!.fingerprint256, fingerprint(certs.serverCert));
  const r = new WireReader(old);
  old.write(frames(21, 100));
  await r.until((x) => x.acked >= 100);

  fs.copyFileSync(certs.server2Cert, cert);
  fs.copyFileSync(certs.server2Key, key);
  await server.reload();
  assert.equal(server.stats().reloads, 1);
  const fresh = await tlsConnect(port);
  assert.equal(fresh.getPeerX509Certificate()!.fingerprint256, fingerprint(certs.server2Cert));
  fresh.destroy();

  for (let i = 100; i < 200; i++) old.write(msg(i, `after reload ${i}`));
  await r.until((x) => x.acked >= 200);
  assert.equal(r.ackedOk, 200);

  fs.writeFileSync(cert, 'not a certificate\n');
  await assert.rejects(server.reload(), (e: NodeJS.ErrnoException) => e.code === 'ERR_MSGS_TLS_FILES' && /tls\.cert/.test(e.message));
  assert.equal(server.stats().reloadFailures, 1);
  assert.equal(errors.length, 1);
  const still = await tlsConnect(port);
  assert.equal(still.getPeerX509Certificate()!.fingerprint256, fingerprint(certs.server2Cert));
  still.destroy();
  old.end();
  await server.close();
  assert.equal((await countRecords(file, 21)).n, 200);
});

test('1,000 concurrent TLS connections each get their ACK', T, async () => {
  const { server, port, logs } = await startServer(ONE_TLS, { limits: { maxConnections: 2000 } });
  const N = 1000;
  const sockets: tls.TLSSocket[] = [];
  const readers: WireReader[] = [];
  // Connect in waves (the handshakes are what is tested, not the listen
  // backlog); each sends its HELLO and a message as soon as it is connected.
  // A connection that fails to connect says what the server saw then: which
  // of its limits (handshake steps per pass, the partial-frame budget, the
  // handshake timeout) held it back.
  const serverView = (): string => {
    const s = server.stats();
    const keys = ['connections', 'connectionsAccepted', 'connectionsRejected', 'acceptErrors', 'tlsHandshakes',
      'tlsHandshakeFailures', 'tlsHandshakesWaiting', 'tlsHandshakeWaits', 'partialFrameBytes', 'partialFrameWaits'] as const;
    return keys.map((k) => `${k}=${String(s[k])}`).join(' ') + `; logs: ${JSON.stringify(logs)}`;
  };
  for (let i = 0; i < N; i += 100) {
    const wave = await Promise.all(Array.from({ length: 100 }, () => tlsConnect(port))).catch((e: Error) => {
      throw new Error(`wave ${i / 100 + 1} of ${N / 100}: ${e.message}; server: ${serverView()}`, { cause: e });
    });
    for (const s of wave) {
      const r = new WireReader(s);
      s.write(Buffer.concat([hello(1000 + sockets.length), msg(1, `from ${sockets.length}`)]));
      sockets.push(s);
      readers.push(r);
    }
  }
  await Promise.all(readers.map((r) => r.until((x) => x.acked >= 1, 60_000)));
  assert.ok(readers.every((r) => r.ackedOk === 1));
  assert.equal(server.stats().connections, N);
  assert.ok(server.stats().tlsHandshakes >= N);
  for (const s of sockets) s.destroy();
});

test('over maxConnections a TLS client is closed before its handshake, never sent a plaintext ERR it would take for a corrupt record', T, async () => {
  const { server, port } = await startServer(ONE_TLS, { limits: { maxConnections: 1 } });
  const first = await tlsConnect(port);
  const r = new WireReader(first);
  first.write(Buffer.concat([hello(41), msg(1, 'within the limit')]));
  await r.until((x) => x.acked >= 1);
  const refused = await tlsConnect(port).then(
    (s) => {
      s.destroy();
      return null;
    },
    (e: NodeJS.ErrnoException) => e,
  );
  assert.ok(refused, 'the connection over the limit is refused');
  assert.equal(refused.code, 'ECONNRESET', `${refused.code}: ${refused.message}`);
  assert.doesNotMatch(refused.message, /version|record|packet|SSL routines/i);
  assert.equal(server.stats().connectionsRejected, 1);
  first.write(msg(2, 'still served'));
  await r.until((x) => x.acked >= 2);
  assert.equal(r.ackedOk, 2);
  first.destroy();
});

test('tls config: missing key, unreadable cert, clientAuth without ca are named; a bad PEM fails listen() with ERR_MSGS_TLS_FILES', T, async () => {
  assert.throws(() => new MessageServer({ tls: { cert: certs.serverCert } as never }), /tls\.key = undefined/);
  assert.throws(() => new MessageServer({ tls: { cert: '/nonexistent.pem', key: certs.serverKey } }), /tls\.cert = '\/nonexistent\.pem' \(allowed: a readable PEM certificate file \(ENOENT\)\)/);
  assert.throws(() => new MessageServer({ tls: { ...ONE_TLS, clientAuth: 'require' } }), /tls\.clientAuth = 'require' \(allowed: 'none' unless tls\.ca is set/);
  assert.throws(() => new MessageServer({ tls: { ...ONE_TLS, minVersion: 'TLSv1.1' as never } }), /tls\.minVersion/);
  assert.throws(() => new MessageServer({ protocol: 'legacy', tls: ONE_TLS }), /tls = '\(set\)'/);
  const dir = tempDir('msgserver-tls-bad-');
  dirs.push(dir);
  const bad = path.join(dir, 'bad.pem');
  fs.writeFileSync(bad, 'garbage\n');
  const server = new MessageServer({ port: 0, file: { path: path.join(dir, 'm.log') }, tls: { cert: bad, key: certs.serverKey } });
  await assert.rejects(server.listen(), (e: NodeJS.ErrnoException) => e.code === 'ERR_MSGS_TLS_FILES' && e.message.includes(bad));
  await assert.rejects(server.reload(), (e: NodeJS.ErrnoException) => e.code === 'ERR_MSGS_NOT_LISTENING');
  // A key that does not match the certificate.
  const server2 = new MessageServer({ port: 0, file: { path: path.join(dir, 'm2.log') }, tls: { cert: certs.serverCert, key: certs.server2Key } });
  await assert.rejects(server2.listen(), (e: NodeJS.ErrnoException) => e.code === 'ERR_MSGS_TLS_FILES' && /tls\.key .*mismatch/.test(e.message));
});

test('the addon does not link libssl or libcrypto (it uses Node\'s OpenSSL)', () => {
  const addon = path.join(__dirname, '..', 'build', 'Release', 'msgserver.node');
  if (!fs.existsSync(addon)) return;
  let out = '';
  try {
    out = execFileSync('readelf', ['-d', addon], { encoding: 'utf8' });
  } catch {
    return; // no binutils
  }
  assert.doesNotMatch(out, /NEEDED.*lib(ssl|crypto)/);
});

test('msgserver CLI: --tls-cert/--tls-key, and SIGHUP reloads the certificate', T, async () => {
  const dir = tempDir('msgserver-tls-cli-');
  dirs.push(dir);
  const cert = path.join(dir, 'server.pem');
  const key = path.join(dir, 'server.key');
  fs.copyFileSync(certs.serverCert, cert);
  fs.copyFileSync(certs.serverKey, key);
  const bin = path.join(__dirname, '..', 'dist', 'cli', 'msgserver.js');
  const proc = spawn(process.execPath, [bin, '--port', '0', '--file', path.join(dir, 'm.log'), '--tls-cert', cert, '--tls-key', key, '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (err += d));
  const waitFor = async (what: string, cond: () => boolean): Promise<void> => {
    const deadline = Date.now() + 15_000;
    while (!cond()) {
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`no ${what}; stdout: ${out} stderr: ${err}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  try {
    await waitFor('listening line', () => /msgserver listening on [^:]+:\d+/.test(out));
    const port = Number(/listening on [^,]*:(\d+),/.exec(out)![1]);
    const a = await tlsConnect(port);
    assert.equal(a.getPeerX509Certificate()!.fingerprint256, fingerprint(certs.serverCert));
    a.destroy();
    fs.copyFileSync(certs.server2Cert, cert);
    fs.copyFileSync(certs.server2Key, key);
    proc.kill('SIGHUP');
    await waitFor('reload line', () => err.includes('TLS certificate, key, CA and tokens file reloaded'));
    const b = await tlsConnect(port);
    assert.equal(b.getPeerX509Certificate()!.fingerprint256, fingerprint(certs.server2Cert));
    b.destroy();
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
});

test('an encrypted tls.key fails listen() at once with ERR_MSGS_TLS_FILES naming it (no passphrase prompt)', { ...T, skip: !hasOpenssl() && 'the openssl CLI is missing' }, async () => {
  const dir = tempDir('msgserver-tls-enc-');
  dirs.push(dir);
  const enc = path.join(dir, 'encrypted.key');
  execFileSync('openssl', ['ec', '-in', certs.serverKey, '-aes256', '-passout', 'pass:x', '-out', enc], { stdio: 'ignore' });
  const server = new MessageServer({ port: 0, file: { path: path.join(dir, 'm.log') }, tls: { cert: certs.serverCert, key: enc } });
  await assert.rejects(server.listen(), (e: NodeJS.ErrnoException) =>
    e.code === 'ERR_MSGS_TLS_FILES' && e.message.includes(`tls.key ${enc} is encrypted: give an unencrypted key`));
});

test('a client certificate with two CNs is refused with UNAUTHENTICATED, never taken as anonymous', { ...T, skip: !hasOpenssl() && 'the openssl CLI is missing' }, async () => {
  const dir = tempDir('msgserver-tls-cn-');
  dirs.push(dir);
  const run = (args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' }); };
  run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'two.key']);
  run(['req', '-new', '-key', 'two.key', '-subj', '/CN=client-a/CN=client-b', '-out', 'two.csr']);
  run(['x509', '-req', '-in', 'two.csr', '-CA', certs.caCert, '-CAkey', certs.caKey, '-CAcreateserial', '-days', '2', '-out', 'two.pem']);
  const { port } = await startServer({ ...ONE_TLS, ca: certs.caCert, clientAuth: 'require' });
  const s = await tlsConnect(port, { cert: fs.readFileSync(path.join(dir, 'two.pem')), key: fs.readFileSync(path.join(dir, 'two.key')) });
  s.on('error', () => undefined);
  const r = new WireReader(s);
  s.write(Buffer.concat([hello(1), msg(1, 'x')]));
  await r.until((x) => x.err !== null || x.closed);
  assert.equal(r.err?.code, 13, 'UNAUTHENTICATED');
  assert.equal(r.acked, 0);
  // A certificate with one CN is still accepted.
  const good = await tlsConnect(port, { cert: fs.readFileSync(certs.clientCert), key: fs.readFileSync(certs.clientKey) });
  const g = new WireReader(good);
  good.write(Buffer.concat([hello(1), msg(1, 'x')]));
  await g.until((x) => x.acked >= 1);
  assert.equal(g.ackedOk, 1);
  good.destroy();
});

test('data and close_notify in one read (no TCP FIN): the server parses the data, then closes', T, async () => {
  const { server, port } = await startServer(ONE_TLS);
  const raw = net.connect(port, '127.0.0.1');
  raw.on('error', () => undefined);
  let hold: Buffer[] | null = null; // after the handshake: gathered, sent in one write at end()
  const pipe = new Duplex({
    read() {},
    write(chunk, _enc, cb) {
      if (hold) hold.push(chunk);
      else raw.write(chunk);
      cb();
    },
    final(cb) {
      raw.write(Buffer.concat(hold ?? [])); // the data and close_notify, without a FIN
      cb();
    },
  });
  raw.on('data', (b) => pipe.push(b));
  const closed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
  const s = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const t = tls.connect({ socket: pipe, servername: 'localhost', ca: fs.readFileSync(certs.caCert) });
    t.once('secureConnect', () => resolve(t));
    t.once('error', reject);
  });
  s.on('error', () => undefined);
  const r = new WireReader(s);
  s.write(hello(5));
  await r.until((x) => x.helloOk);
  hold = [];
  s.end(msg(1, 'last words'));
  await closed; // bounded by the test's timeout: before, the server waited for a read nothing scheduled
  await new Promise<void>((resolve) => {
    const check = (): void => { if (server.stats().messagesIn >= 1) resolve(); else setImmediate(check); };
    check();
  });
  assert.equal(server.stats().messagesIn, 1);
});
