// The JetStream sink against a real nats-server (one node, JetStream on):
// ackMode 'replicated' answers OK only for what the stream acknowledged, the
// stream holds exactly the records the file holds, Nats-Msg-Id dedupe keeps
// one copy of a resend, and a cluster that is down gets REPLICATION_FAILED
// (never OK) until it is up, with no restart of msgserver.
//
// Skips when nats-server is not installed, unless MSGS_REQUIRE_NATS=1 (CI).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';

import { AckError, LegacyClient, MessageClient, MessageServer, readLog, type LogEntry, type LogRecord, type ServerOptions } from '../dist/index';
import { loadAddon } from '../dist/server/native';
import { readStream, type StreamRecord } from '../dist/read/stream-reader';
import { freePort, tempDir } from './helpers';
import { natsServerPath, startNatsServer, type NatsServer } from './support/nats-cluster';

const NATS = natsServerPath();
const skip = NATS === null && process.env.MSGS_REQUIRE_NATS !== '1' ? 'nats-server is not installed (apt-get install nats-server)' : false;

/** Polls `cond` every 20 ms until it holds; fails after `ms`. */
async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function collect(servers: string, stream: string): Promise<StreamRecord[]> {
  const out: StreamRecord[] = [];
  for await (const r of readStream({ servers, stream })) out.push(r);
  return out;
}

/** Sends `n` messages; returns the statuses by name and the msgIds that were ACKed OK. */
async function sendAll(client: MessageClient, n: number, tag: string): Promise<{ statuses: Record<string, number>; ok: bigint[] }> {
  const statuses: Record<string, number> = {};
  const ok: bigint[] = [];
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      client.send(`${tag}-${i}`, { name: `n${i % 7}` }).then(
        (r) => {
          statuses.OK = (statuses.OK ?? 0) + 1;
          ok.push(r.msgId);
        },
        (err: unknown) => {
          const name = err instanceof AckError ? err.statusName : String(err);
          statuses[name] = (statuses[name] ?? 0) + 1;
        },
      ),
    ),
  );
  return { statuses, ok };
}

let dir = '';
let nats: NatsServer | undefined;
const cleanups: Array<() => Promise<unknown>> = [];

before(async () => {
  if (skip) return;
  dir = tempDir('msgserver-js-');
  nats = await startNatsServer(dir);
});

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await nats?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function serve(opts: ServerOptions): Promise<{ server: MessageServer; client: MessageClient; logs: LogEntry[] }> {
  const server = new MessageServer({ port: 0, serviceThreads: 2, ...opts });
  const logs: LogEntry[] = [];
  server.on('log', (e) => logs.push(e));
  const { port } = await server.listen();
  const client = await MessageClient.connect({ port });
  cleanups.push(() => client.close(), () => server.close());
  return { server, client, logs };
}

test('replicated: every message is ACKed OK only once the stream holds it, and the stream matches the file', { skip, timeout: 60_000 }, async () => {
  const file = path.join(dir, 'replicated.log');
  const { server, client } = await serve({
    ackMode: 'replicated',
    file: { path: file },
    jetstream: { servers: nats!.url, stream: 'REPL', subjectPrefix: 'repl' },
  });
  const { statuses, ok } = await sendAll(client, 3000, 'r');
  assert.deepEqual(statuses, { OK: 3000 });
  const js = server.stats().jetstream!;
  assert.equal(js.acked, 3000);
  assert.equal(js.published, 3000);
  assert.equal(js.timeouts + js.failed + js.unavailable, 0);
  assert.equal(server.stats().acks.OK, 3000);

  const stream = await collect(nats!.url, 'REPL');
  const fileRecords: LogRecord[] = [];
  await client.close();
  await server.close();
  for await (const r of readLog(file)) fileRecords.push(r);
  assert.equal(stream.length, 3000);
  assert.deepEqual(new Set(stream.map((r) => r.msgId)), new Set(ok));
  // The same records, in the same order: the stream carries the file's own record bytes.
  stream.forEach((s, i) => {
    const f = fileRecords[i];
    assert.equal(s.seq, f.seq);
    assert.equal(s.msgId, f.msgId);
    assert.equal(s.clientId, client.clientId);
    assert.equal(s.subject, `repl.${client.clientId}`);
    assert.equal(s.name, f.name);
    assert.deepEqual(s.payload, f.payload);
    assert.equal(s.streamSeq, BigInt(i + 1));
  });
});

test('replicated with hooks and a JetStream ring smaller than a flush: the hooks see every message once, numbered as in the file', { skip, timeout: 60_000 }, async () => {
  // maxPending 4: publishing one flush waits for room, and acknowledgements
  // settle messages of the same flush while the sinks still run.
  const file = path.join(dir, 'replicated-hooks.log');
  const { server, client } = await serve({
    ackMode: 'replicated',
    file: { path: file },
    jetstream: { servers: nats!.url, stream: 'REPLHOOKS', subjectPrefix: 'replhooks', maxPending: 4 },
  });
  const seen: Array<{ seq: bigint; msgId: bigint }> = [];
  server.onMessages((batch) => {
    for (const m of batch) seen.push({ seq: m.seq, msgId: m.msgId });
  });
  const { statuses } = await sendAll(client, 500, 'h');
  assert.deepEqual(statuses, { OK: 500 });
  await until('every message reaches the hooks', () => seen.length >= 500);
  await client.close();
  await server.close();
  const fileRecords: LogRecord[] = [];
  for await (const r of readLog(file)) fileRecords.push(r);
  assert.equal(seen.length, 500);
  assert.deepEqual(
    seen.map((m) => [m.seq, m.msgId]),
    fileRecords.map((r) => [r.seq, r.msgId]),
  );
});

test('8 pipelining clients: every message is ACKed OK exactly when the stream acknowledged it (no batch handed back early)', { skip, timeout: 60_000 }, async () => {
  const { server } = await serve({
    ackMode: 'replicated',
    file: { path: path.join(dir, 'pipelined.log') },
    jetstream: { servers: nats!.url, stream: 'PIPE', subjectPrefix: 'pipe' },
  });
  const { port } = server.address()!;
  const clients = await Promise.all(Array.from({ length: 8 }, () => MessageClient.connect({ port, window: 256 })));
  cleanups.push(...clients.map((c) => () => c.close()));
  const results = await Promise.all(clients.map((c, k) => sendAll(c, 5000, `p${k}`)));
  for (const r of results) assert.deepEqual(r.statuses, { OK: 5000 });
  const js = server.stats().jetstream!;
  assert.equal(js.acked, 40_000);
  assert.equal(js.duplicates, 0);
  assert.equal(server.stats().acks.WRITE_FAILED, 0);
  assert.equal((await collect(nats!.url, 'PIPE')).length, 40_000);
});

test('a message sent twice with the same msgId is stored once (Nats-Msg-Id dedupe), and both sends are ACKed OK', { skip, timeout: 30_000 }, async () => {
  const { server, client } = await serve({
    ackMode: 'replicated',
    file: { enabled: false },
    jetstream: { servers: nats!.url, stream: 'DEDUPE', subjectPrefix: 'dedupe' },
  });
  const first = await client.send('once', { msgId: 77n });
  const again = await client.send('once', { msgId: 77n });
  assert.equal(first.statusName, 'OK');
  assert.equal(again.statusName, 'OK');
  await client.send('other', { msgId: 78n });
  assert.equal(server.stats().jetstream!.duplicates, 1);
  const stream = await collect(nats!.url, 'DEDUPE');
  assert.deepEqual(stream.map((r) => r.msgId), [77n, 78n]);
  assert.equal(stream[0].payload.toString(), 'once');
});

test('a client restarted with the same clientId is not taken for a resend: its new messages are stored', { skip, timeout: 30_000 }, async () => {
  const { server } = await serve({
    ackMode: 'replicated',
    file: { enabled: false },
    jetstream: { servers: nats!.url, stream: 'RESTART', subjectPrefix: 'restart' },
  });
  const { port } = server.address()!;
  for (const run of ['first run', 'second run']) {
    const c = await MessageClient.connect({ port, clientId: 42 }); // default firstMsgId: time-based
    assert.equal((await c.send(run)).statusName, 'OK');
    await c.close();
  }
  assert.equal(server.stats().jetstream!.duplicates, 0);
  const stream = await collect(nats!.url, 'RESTART');
  assert.deepEqual(stream.map((r) => r.payload.toString()), ['first run', 'second run']);
});

test('legacy protocol: two runs of the original client numbering from 1 are both stored (no dedupe key), each "ack" only after the stream', { skip, timeout: 30_000 }, async () => {
  const server = new MessageServer({
    port: 0,
    protocol: 'legacy',
    ackMode: 'replicated',
    file: { enabled: false },
    jetstream: { servers: nats!.url, stream: 'LEGACY', subjectPrefix: 'legacy' },
  });
  const { port } = await server.listen();
  cleanups.push(() => server.close());
  for (const run of [1, 2]) {
    const c = await LegacyClient.connect({ port });
    for (let i = 1; i <= 3; i++) await c.send(5, i, 'name', `run ${run} message ${i}`);
    await c.close();
  }
  assert.equal(server.stats().jetstream!.duplicates, 0);
  assert.equal(server.stats().jetstream!.acked, 6);
  const stream = await collect(nats!.url, 'LEGACY');
  assert.deepEqual(
    stream.map((r) => `${r.clientId}:${r.msgId}:${r.payload.toString()}`),
    [1, 2].flatMap((run) => [1, 2, 3].map((i) => `5:${i}:run ${run} message ${i}`)),
  );
});

test('file.enabled false: JetStream is the only sink and no file is created', { skip, timeout: 30_000 }, async () => {
  const file = path.join(dir, 'never-created.log');
  const { server, client } = await serve({
    ackMode: 'replicated',
    file: { enabled: false, path: file },
    jetstream: { servers: [nats!.url], stream: 'ONLY', subjectPrefix: 'only.js' },
  });
  const { statuses } = await sendAll(client, 500, 'o');
  assert.deepEqual(statuses, { OK: 500 });
  assert.equal(fs.existsSync(file), false);
  assert.equal(server.stats().recordsWritten, 0);
  const stream = await collect(nats!.url, 'ONLY');
  assert.equal(stream.length, 500);
  assert.equal(stream[0].subject, `only.js.${client.clientId}`);
  assert.deepEqual(stream.map((r) => r.seq), Array.from({ length: 500 }, (_, i) => BigInt(i + 1)));
});

test("ackMode 'written' with JetStream beside the file: ACKs follow the file, the stream gets a copy", { skip, timeout: 30_000 }, async () => {
  const file = path.join(dir, 'beside.log');
  const { server, client } = await serve({
    ackMode: 'written',
    file: { path: file },
    jetstream: { servers: nats!.url, stream: 'BESIDE', subjectPrefix: 'beside' },
  });
  const { statuses } = await sendAll(client, 1000, 'w');
  assert.deepEqual(statuses, { OK: 1000 });
  assert.equal(server.stats().recordsWritten, 1000);
  // The copy is asynchronous: wait until every publish was acknowledged.
  await until('1000 publish acknowledgements', () => server.stats().jetstream!.acked === 1000);
  const stream = await collect(nats!.url, 'BESIDE');
  assert.equal(stream.length, 1000);
});

test('no stream and createStream false (retries off): REPLICATION_FAILED, never OK, and a log line names the stream', { skip, timeout: 30_000 }, async () => {
  const { server, client, logs } = await serve({
    ackMode: 'replicated',
    file: { enabled: false },
    jetstream: { servers: nats!.url, stream: 'ABSENT', subjectPrefix: 'absent', createStream: false, retryMs: 0 },
  });
  const { statuses } = await sendAll(client, 20, 'a');
  assert.deepEqual(statuses, { REPLICATION_FAILED: 20 });
  assert.equal(server.stats().acks.OK, 0);
  await until('a log line naming stream ABSENT', () => logs.some((l) => l.level === 'error' && /stream ABSENT does not exist/.test(l.message)));
});

test('started while NATS is down (retries off): REPLICATION_FAILED (never OK), then normal service once NATS is up, without a restart', { skip, timeout: 60_000 }, async () => {
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  const file = path.join(dir, 'down.log');
  const { server, client, logs } = await serve({
    ackMode: 'replicated',
    file: { path: file },
    jetstream: { servers: url, stream: 'LATE', subjectPrefix: 'late', ackTimeoutMs: 2000, retryMs: 0 },
  });
  const down = await sendAll(client, 200, 'd');
  assert.deepEqual(down.statuses, { REPLICATION_FAILED: 200 });
  assert.equal(server.stats().jetstream!.connected, false);
  // Log lines reach JS asynchronously (after the ACKs, possibly): wait for it.
  await until('a "not connected" log line', () => logs.some((l) => /not connected/.test(l.message)));

  const late = await startNatsServer(dir, port);
  cleanups.push(() => late.stop());
  await until('the sink to connect', () => server.stats().jetstream!.connected, 20_000);
  const up = await sendAll(client, 300, 'u');
  assert.deepEqual(up.statuses, { OK: 300 });
  const stream = await collect(url, 'LATE');
  // Only the messages ACKed OK are in the stream: none of the 200 refused ones.
  assert.deepEqual(new Set(stream.map((r) => r.msgId)), new Set(up.ok));
  assert.equal(stream.length, 300);
});

/** Resolves once every thread of `pid` is stopped (state T in /proc), as SIGSTOP leaves them. */
async function allThreadsStopped(pid: number): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const states = fs.readdirSync(`/proc/${pid}/task`).map((t) => {
      try {
        return fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
      } catch {
        return 'T'; // the thread is gone
      }
    });
    if (states.every((st) => st === 'T' || st === 't')) return;
    if (Date.now() > deadline) throw new Error(`nats-server ${pid} not stopped after 5 s: thread states ${states.join('')}`);
    await new Promise((r) => setImmediate(r));
  }
}

test('a NATS server that stops answering (retries off): the publish times out after ackTimeoutMs and is answered REPLICATION_FAILED, never OK', { skip, timeout: 60_000 }, async () => {
  const own = await startNatsServer(dir);
  cleanups.push(() => {
    own.proc.kill('SIGCONT');
    return own.stop();
  });
  const { server, client } = await serve({
    ackMode: 'replicated',
    file: { enabled: false, fsync: 'never' },
    jetstream: { servers: own.url, stream: 'STALL', subjectPrefix: 'stall', ackTimeoutMs: 500, retryMs: 0 },
  });
  assert.equal((await client.send('before')).statusName, 'OK');
  own.proc.kill('SIGSTOP');
  // kill() returns before every thread has stopped: a thread busy elsewhere
  // may still answer a publish. Wait until all of them are stopped.
  await allThreadsStopped(own.proc.pid!);
  const t0 = Date.now();
  const during = await client.send('during').then(
    (ack) => ack,
    (err: unknown) => err,
  );
  if (!(during instanceof AckError && during.statusName === 'REPLICATION_FAILED')) {
    // Which nats-server answered, if one did: the stopped one's state ('T') and what listens on its port.
    const state = fs.readFileSync(`/proc/${own.proc.pid}/stat`, 'utf8').split(' ')[2];
    assert.fail(
      `'during' was answered ${during instanceof Error ? during.message : JSON.stringify(during, (_k, v) => (typeof v === 'bigint' ? String(v) : v))} ` +
        `after ${Date.now() - t0} ms; nats-server pid ${own.proc.pid} (${own.url}) state ${state}; ` +
        `jetstream ${JSON.stringify(server.stats().jetstream)}`,
    );
  }
  const waited = Date.now() - t0;
  assert.ok(waited >= 400 && waited < 5000, `answered after ${waited} ms`);
  assert.equal(server.stats().jetstream!.timeouts, 1);
  own.proc.kill('SIGCONT');
  // Served again once NATS answers; the timed-out one may or may not be in the stream (not promised).
  // Retried with the same msgId, as an application would: the stream keeps one copy.
  const afterId = 1n << 62n;
  for (;;) {
    try {
      assert.equal((await client.send('after', { msgId: afterId })).statusName, 'OK');
      break;
    } catch (err) {
      if (!(err instanceof AckError)) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const stream = await collect(own.url, 'STALL');
  assert.deepEqual(stream.map((r) => r.payload.toString()).filter((p) => p !== 'during'), ['before', 'after']);
});

test('without libnats, listen() fails with a message naming the library and the package to install', { timeout: 30_000 }, async () => {
  // A child process: libnats is loaded (or not) once per process.
  const script = `
    const { MessageServer } = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'index.js'))});
    new MessageServer({ port: 0, ackMode: 'replicated', jetstream: { servers: 'nats://127.0.0.1:1' }, file: { enabled: false } })
      .listen().then(() => { console.log('listening'); process.exit(1); }, (err) => { console.log(err.message); process.exit(0); });
  `;
  const r = spawnSync(process.execPath, ['-e', script], {
    env: { ...process.env, MSGSERVER_LIBNATS: '/nonexistent/libnats.so.3.4' },
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  if (/not in this build/.test(loadAddon().jetstreamAvailability())) {
    // Built without nats.h: the message says how to get a build with the sink.
    assert.match(r.stdout, /jetstream is not in this build: .*apt-get install libnats-dev/);
  } else {
    assert.match(r.stdout, /jetstream needs libnats, which cannot be loaded \(.*nonexistent.*\); install the NATS C client: apt-get install libnats3\.4/);
  }
});
