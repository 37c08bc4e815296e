// Hooks never drop silently: a message hook with policy 'drop' that falls
// behind costs a warn log line (rate-limited) and 'hookDrop' events,
// coalesced (at most about one per second), whose counts add up to
// stats().hookDropped.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';

import { runLoad, loadSucceeded } from '../dist/bench/bench';
import { MessageServer, type HookDropInfo } from '../dist/index';
import { tempDir } from './helpers';

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a slow drop-policy hook: warn lines and coalesced hookDrop events that add up to stats().hookDropped', async (t) => {
  const server = new MessageServer({ port: 0, serviceThreads: 2, file: { path: path.join(tempDir(), 'drops.log') } });
  t.after(() => server.close());
  const drops: Array<HookDropInfo & { at: number }> = [];
  const warns: string[] = [];
  server.on('hookDrop', (d) => drops.push({ ...d, at: Date.now() }));
  server.on('log', (l) => {
    if (l.level === 'warn') warns.push(l.message);
  });
  let seen = 0;
  server.onMessages(
    (msgs) => {
      seen += msgs.length;
      const until = Date.now() + 20; // a slow consumer: holds the JS thread
      while (Date.now() < until);
    },
    { policy: 'drop', maxBufferBytes: 4096 },
  );
  const { port } = await server.listen();
  const started = Date.now();
  const load = await runLoad({ port, connections: 4, messages: 25_000, window: 64, payload: 200 });
  assert.ok(loadSucceeded(load));
  const elapsed = Date.now() - started;
  const dropped = (): number => drops.reduce((n, d) => n + d.messages, 0);
  // The last drops are reported once the interval has passed, without more traffic.
  await until(() => server.stats().hookDropped > 0 && dropped() === server.stats().hookDropped, 'every drop reported');
  const s = server.stats();
  assert.equal(s.hookDelivered + s.hookDropped, 100_000, 'every message delivered or dropped, none unaccounted');
  assert.equal(seen, s.hookDelivered);
  assert.ok(drops.every((d) => d.messages > 0));
  // Coalesced: about one per second, not one per dropped batch.
  assert.ok(drops.length <= Math.ceil((Date.now() - started) / 1000) + 1, `${drops.length} events in ${elapsed} ms`);
  assert.ok(drops.length < s.hookDropped, 'events are coalesced');
  assert.ok(warns.some((w) => /message hooks fell behind: \d+ messages dropped/.test(w)), warns.join('\n'));
  assert.equal(warns.filter((w) => /fell behind/.test(w)).length, drops.length, 'one warn line per event');
  await server.close();
});

test('hooks with policy block never drop: no hookDrop event', async (t) => {
  const server = new MessageServer({ port: 0, file: { path: path.join(tempDir(), 'block.log') } });
  t.after(() => server.close());
  let events = 0;
  server.on('hookDrop', () => events++);
  let seen = 0;
  server.onMessages((m) => (seen += m.length), { policy: 'block', maxBufferBytes: 4096 });
  const { port } = await server.listen();
  const load = await runLoad({ port, connections: 2, messages: 5000, window: 32, payload: 100 });
  assert.ok(loadSucceeded(load));
  await until(() => seen === 10_000, 'every message seen');
  await server.close();
  assert.equal(server.stats().hookDropped, 0);
  assert.equal(events, 0);
});
