// server.reconfigure(): limits change live under load (maxConnections
// lowered: new connections get BUSY while the open ones keep sending;
// idleTimeoutMs turned on), no connection is dropped, no message is lost; a
// bad config changes nothing; fields that cannot change live are listed in
// needsRestart and not applied.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';

import { ConfigError, LIVE_OPTIONS, MessageClient, MessageServer, readLog, type ServerOptions } from '../dist/index';
import { encodeHello, ErrCode } from '../dist/format/codec';
import { rawExchange, tempDir } from './helpers';

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The running config as options, with `patch` applied per section. */
function withChanges(server: MessageServer, patch: Record<string, Record<string, unknown> | unknown>): ServerOptions {
  const o = JSON.parse(JSON.stringify(server.config)) as Record<string, unknown>;
  for (const [k, v] of Object.entries(patch)) {
    o[k] = v !== null && typeof v === 'object' && !Array.isArray(v) ? { ...(o[k] as object), ...v } : v;
  }
  return o as ServerOptions;
}

test('reconfigure under load: maxConnections lowered and raised, idleTimeoutMs turned on; nothing dropped or lost', async (t) => {
  const file = path.join(tempDir(), 'reconf.log');
  const server = new MessageServer({ port: 0, serviceThreads: 2, file: { path: file }, limits: { maxConnections: 10 } });
  t.after(() => server.close());
  const disconnects: string[] = [];
  server.on('disconnect', (d) => disconnects.push(d.reason));
  const { port } = await server.listen();

  let running = true;
  const acked = new Map<number, bigint[]>();
  const loops = [1, 2, 3, 4].map(async (clientId) => {
    const c = await MessageClient.connect({ port, clientId, firstMsgId: 1, window: 8 });
    const mine: bigint[] = [];
    acked.set(clientId, mine);
    while (running) {
      const r = await c.send(`m ${clientId} ${mine.length}`);
      assert.equal(r.statusName, 'OK');
      mine.push(r.msgId);
    }
    await c.close();
  });
  const total = (): number => [...acked.values()].reduce((n, a) => n + a.length, 0);
  await until(() => server.stats().connections === 4 && total() > 1000, 'four clients sending');

  // maxConnections down to the four open ones: a fifth gets BUSY.
  const r1 = server.reconfigure(withChanges(server, { limits: { maxConnections: 4 } }));
  assert.deepEqual(r1, { applied: ['limits.maxConnections'], needsRestart: [] });
  assert.equal(server.config.limits.maxConnections, 4);
  const busy = await rawExchange(port, [encodeHello(99)]);
  assert.equal(busy.frames.at(-1)?.type, 'err');
  assert.equal((busy.frames.at(-1) as { code?: number }).code, ErrCode.BUSY);
  await assert.rejects(MessageClient.connect({ port, clientId: 98 }), /BUSY|too many connections/);
  assert.ok(server.stats().connectionsRejected >= 2);
  // The open ones keep sending.
  const before = total();
  await until(() => total() > before + 1000, 'the open connections keep sending');
  assert.equal(server.stats().connections, 4);

  // Raised again: a new connection is taken.
  server.reconfigure(withChanges(server, { limits: { maxConnections: 6 } }));
  const fifth = await MessageClient.connect({ port, clientId: 5, firstMsgId: 1 });
  assert.equal((await fifth.send('hello')).statusName, 'OK');
  await fifth.close();

  // idleTimeoutMs turned on live: an idle connection (open before the change
  // and new ones alike) is closed, the busy ones are not.
  const idle = rawExchange(port, [encodeHello(77)], { timeoutMs: 10_000 });
  await until(() => server.stats().connections === 5, 'the idle connection is open');
  const r2 = server.reconfigure(withChanges(server, { limits: { idleTimeoutMs: 400 } }));
  assert.deepEqual(r2.applied, ['limits.idleTimeoutMs']);
  const idled = await idle;
  assert.equal((idled.frames.at(-1) as { code?: number }).code, ErrCode.IDLE_TIMEOUT);
  const stillSending = total();
  await until(() => total() > stillSending + 1000, 'the busy connections are not idle');

  running = false;
  await Promise.all(loops);
  // No connection dropped: the only timeout was the idle one.
  await until(() => disconnects.length === 6, 'every disconnect reported');
  assert.equal(disconnects.filter((d) => /idle/i.test(d)).length, 1, disconnects.join(', '));
  await server.close();
  // Nothing lost: every ACKed message is in the log.
  const inLog = new Map<number, bigint[]>();
  for await (const rec of readLog(file)) {
    const a = inLog.get(rec.clientId) ?? [];
    a.push(rec.msgId);
    inLog.set(rec.clientId, a);
  }
  for (const [clientId, ids] of acked) assert.deepEqual(inLog.get(clientId), ids, `client ${clientId}`);
  assert.equal(server.stats().acks.OK, total() + 1);
});

test('reconfigure: a bad config changes nothing; other fields are listed in needsRestart, not applied', async (t) => {
  const file = path.join(tempDir(), 'reconf2.log');
  const server = new MessageServer({ port: 0, file: { path: file }, limits: { maxConnections: 10 } });
  t.after(() => server.close());
  await server.listen();
  const before = JSON.stringify(server.config);

  assert.throws(
    () => server.reconfigure(withChanges(server, { limits: { maxConnections: -1, idleTimeoutMs: 5 } })),
    (err: unknown) => err instanceof ConfigError && /limits\.maxConnections/.test(err.message),
  );
  assert.equal(JSON.stringify(server.config), before, 'a ConfigError changed nothing');
  // Cross-field rules apply too: retention without rotation.
  assert.throws(() => server.reconfigure(withChanges(server, { file: { retention: { maxSegments: 3 } } })), ConfigError);
  assert.equal(JSON.stringify(server.config), before);

  const r = server.reconfigure(
    withChanges(server, { port: 1234, serviceThreads: 3, batch: { maxMessages: 7 }, limits: { frameTimeoutMs: 1234 }, file: { minFreeBytes: 1 << 20 } }),
  );
  assert.deepEqual(r.applied.sort(), ['file.minFreeBytes', 'limits.frameTimeoutMs']);
  assert.deepEqual(r.needsRestart.sort(), ['batch.maxMessages', 'port', 'serviceThreads']);
  assert.equal(server.config.port, 0);
  assert.equal(server.config.serviceThreads, JSON.parse(before).serviceThreads);
  assert.equal(server.config.batch.maxMessages, JSON.parse(before).batch.maxMessages);
  assert.equal(server.config.limits.frameTimeoutMs, 1234);
  assert.equal(server.config.file.minFreeBytes, 1 << 20);
  // The same config again: nothing to do.
  assert.deepEqual(server.reconfigure(withChanges(server, {})), { applied: [], needsRestart: [] });
  // Partial options mean "the defaults for the rest", like a config file.
  const d = server.reconfigure({ file: { path: file } });
  assert.ok(d.applied.includes('limits.maxConnections'), JSON.stringify(d));
  assert.equal(server.config.limits.maxConnections, 10_000);
  for (const f of d.applied) assert.ok(LIVE_OPTIONS.includes(f));
  await server.close();
});

test('reconfigure before listen(): every change applies', () => {
  const server = new MessageServer({ port: 0, file: { path: path.join(tempDir(), 'x.log') } });
  const threads = server.config.serviceThreads === 1 ? 2 : 1;
  const r = server.reconfigure({ port: 0, serviceThreads: threads, file: { path: '/tmp/elsewhere.log' } });
  assert.deepEqual(r.needsRestart, []);
  assert.deepEqual(r.applied.sort(), ['file.path', 'serviceThreads']);
  assert.equal(server.config.serviceThreads, threads);
  assert.equal(server.config.file.path, '/tmp/elsewhere.log');
});
