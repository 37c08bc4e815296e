// The original server's protocol, file format and config: a test client built
// from the struct layout (not from the server's codec), the escaped text file,
// and app.conf.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';

import { MessageServer, readLog } from '../dist/index';
import { freePort, tempDir } from './helpers';

// struct msg { uint32_t client_id; uint32_t msg_id; char name[128]; unsigned char buffer[1024]; }
// packed, ids in network byte order.
function struct(clientId: number, msgId: number, name: Buffer, text: Buffer): Buffer {
  const b = Buffer.alloc(1160);
  b.writeUInt32BE(clientId, 0);
  b.writeUInt32BE(msgId, 4);
  name.copy(b, 8, 0, Math.min(name.length, 128));
  text.copy(b, 136, 0, Math.min(text.length, 1024));
  return b;
}

/** Opens a connection that counts the 3-byte "ack" answers. */
async function legacyConn(port: number): Promise<{ sock: net.Socket; acks: () => number; waitAcks: (n: number) => Promise<void> }> {
  const sock = net.connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  sock.setNoDelay(true);
  let received = '';
  let waiter: { n: number; resolve: () => void } | null = null;
  sock.on('data', (d) => {
    received += d.toString('latin1');
    if (waiter && received.length >= waiter.n * 3) waiter.resolve();
  });
  const acks = (): number => {
    assert.equal(received, 'ack'.repeat(received.length / 3), 'only "ack" answers');
    return received.length / 3;
  };
  const waitAcks = (n: number): Promise<void> =>
    received.length >= n * 3 ? Promise.resolve() : new Promise((resolve) => (waiter = { n, resolve }));
  return { sock, acks, waitAcks };
}

const nextTick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('10,000 legacy messages over 50 connections, split at every byte and batched', async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'legacy.txt');
  const server = new MessageServer({ port: 0, serviceThreads: 2, protocol: 'legacy', file: { path: file, format: 'text' } });
  const { port } = await server.listen();
  t.after(() => server.close());

  const expected: string[] = [];
  const line = (c: number, m: number, text: string): string => `${c} ${m} client_${c} ${text}`;
  const conns = await Promise.all(Array.from({ length: 50 }, () => legacyConn(port)));

  // Connection 0: one struct per byte boundary, each written in two pieces.
  const split = (async () => {
    const { sock, waitAcks } = conns[0];
    for (let k = 1; k < 1160; k++) {
      const s = struct(100, k, Buffer.from('client_100'), Buffer.from(`split at ${k}`));
      sock.write(s.subarray(0, k));
      await nextTick();
      sock.write(s.subarray(k));
      expected.push(line(100, k, `split at ${k}`));
    }
    await waitAcks(1159);
  })();

  // Connections 1..49: the other 8,841 messages, several structs per write.
  const rest = 10_000 - 1159;
  const others = conns.slice(1).map(async ({ sock, waitAcks }, i) => {
    const clientId = 200 + i;
    const count = Math.floor(rest / 49) + (i < rest % 49 ? 1 : 0);
    let pending: Buffer[] = [];
    for (let m = 1; m <= count; m++) {
      const text = `message ${m} of client ${clientId}`;
      pending.push(struct(clientId, m, Buffer.from(`client_${clientId}`), Buffer.from(text)));
      expected.push(line(clientId, m, text));
      if (pending.length === 1 + (m % 7)) {
        sock.write(Buffer.concat(pending));
        pending = [];
      }
    }
    if (pending.length) sock.write(Buffer.concat(pending));
    await waitAcks(count);
    return count;
  });
  const counts = await Promise.all(others);
  await split;
  assert.equal(counts.reduce((a, b) => a + b, 0) + 1159, 10_000);
  assert.equal(conns.reduce((n, c) => n + c.acks(), 0), 10_000, 'every message got its "ack"');
  for (const c of conns) c.sock.destroy();
  await server.close();

  const lines = fs.readFileSync(file, 'utf8').split('\n');
  assert.equal(lines.pop(), '', 'the file ends with a newline');
  assert.equal(lines.length, 10_000);
  assert.deepEqual([...lines].sort(), [...expected].sort(), 'exactly the messages sent');
  // Per connection, the file keeps the order of sending.
  const lastId = new Map<string, number>();
  for (const l of lines) {
    const [c, m] = l.split(' ');
    assert.ok((lastId.get(c) ?? 0) < Number(m), `order of client ${c}`);
    lastId.set(c, Number(m));
  }
});

test('newlines, backslashes, a full buffer without NUL and an empty name read back exactly', async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'escapes.txt');
  const server = new MessageServer({ port: 0, serviceThreads: 1, protocol: 'legacy', file: { path: file, format: 'text' } });
  const { port } = await server.listen();
  t.after(() => server.close());
  const full = Buffer.alloc(1024, 'z'); // no room for a NUL: taken whole
  full.write('edge\\n', 0);
  const cases: Array<{ name: Buffer; text: Buffer }> = [
    { name: Buffer.from('client_1'), text: Buffer.from('line one\nline two') },
    { name: Buffer.from('back\\slash name'), text: Buffer.from('C:\\dir\\file \\n not a newline') },
    { name: Buffer.alloc(0), text: Buffer.from('empty name') },
    { name: Buffer.from('tabs\tand\rcr'), text: full },
    { name: Buffer.alloc(128, 'n'), text: Buffer.from('\x01\x7f control bytes') },
  ];
  const c = await legacyConn(port);
  c.sock.write(Buffer.concat(cases.map((x, i) => struct(9, i + 1, x.name, x.text))));
  await c.waitAcks(cases.length);
  c.sock.destroy();
  await server.close();

  const text = fs.readFileSync(file, 'utf8');
  assert.equal(text.split('\n').length, cases.length + 1, 'one line per message');
  const records = [];
  for await (const r of readLog(file)) records.push(r);
  assert.equal(records.length, cases.length);
  records.forEach((r, i) => {
    assert.equal(r.clientId, 9);
    assert.equal(r.msgId, BigInt(i + 1));
    assert.ok(r.nameBytes.equals(cases[i].name), `name ${i}`);
    assert.ok(r.payload.equals(cases[i].text), `payload ${i}`);
  });
  // msglog prints the same, from the same file.
  const msglog = path.join(__dirname, '..', 'dist', 'cli', 'msglog.js');
  const out = spawnSync(process.execPath, [msglog, 'cat', file], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  const json = out.stdout.trim().split('\n').map((l) => JSON.parse(l));
  json.forEach((j, i) => {
    assert.equal(j.name, cases[i].name.toString('utf8'));
    assert.equal(j.payload, cases[i].text.toString('utf8'));
  });
  const asText = spawnSync(process.execPath, [msglog, 'cat', file, '--format', 'text'], { encoding: 'utf8' });
  assert.equal(asText.stdout, text, 'msglog cat --format text reproduces the file');
});


test('app.conf with the original five keys starts the server there; a bad value names key and line', async () => {
  const home = tempDir();
  const port = await freePort();
  const out = path.join(home, 'from-app-conf.txt');
  fs.writeFileSync(
    path.join(home, 'app.conf'),
    `# the original's config\nIP=127.0.0.1\nPORT=${port}\nFILE_NAME=${out}\nMSG_PER_WRITE=10\nTIME_INTERVAL_BTN_MSG=1\n`,
  );
  const cli = path.join(__dirname, '..', 'dist', 'cli');
  const server = spawn(process.execPath, [path.join(cli, 'msgserver.js')], { env: { ...process.env, MS_HOME: home } });
  let stdout = '';
  await new Promise<void>((resolve, reject) => {
    server.stdout.on('data', (d) => {
      stdout += d;
      if (stdout.includes('listening')) resolve();
    });
    server.once('exit', (code) => reject(new Error(`msgserver exited ${code}`)));
  });
  assert.match(stdout, new RegExp(`listening on 127\\.0\\.0\\.1:${port}, writing ${out.replace(/[.]/g, '\\.')}`));
  const client = spawnSync(process.execPath, [path.join(cli, 'msgclient.js'), '--legacy', '7', 'hello,world'], {
    env: { ...process.env, MS_HOME: home },
    encoding: 'utf8',
  });
  assert.equal(client.status, 0, client.stderr);
  assert.match(client.stdout, /ack msg_id=1 latency=[\d.]+ms\nack msg_id=2 latency=[\d.]+ms\ntotal latency [\d.]+ms, average [\d.]+ms over 2 message\(s\)/);
  const exited = new Promise<number | null>((r) => server.once('exit', r));
  server.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.equal(fs.readFileSync(out, 'utf8'), '7 1 client_7 hello\n7 2 client_7 world\n');

  fs.writeFileSync(path.join(home, 'bad.conf'), 'IP=127.0.0.1\nPORT=99999\nCOLOR=blue\n');
  const bad = spawnSync(process.execPath, [path.join(cli, 'msgserver.js'), '--config', path.join(home, 'bad.conf')], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /PORT \(.*bad\.conf line 2\) = '99999' \(allowed: integer 0\.\.65535\)/);
  assert.match(bad.stderr, /COLOR \(.*bad\.conf line 3\) = 'blue' \(allowed: one of the keys IP, PORT, FILE_NAME, MSG_PER_WRITE, TIME_INTERVAL_BTN_MSG\)/);
});
