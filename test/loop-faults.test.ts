// A failing event-loop poll, injected from outside the server by the
// LD_PRELOAD shim test/faults/iofault.c (test/support/faults.ts): epoll_wait
// fails in the listener and in the service threads. What is proved: each
// failure is counted (stats().loopErrors, the metric) and logged as an error
// naming the thread, the threads go on polling (the listener keeps accepting,
// the service threads keep serving), and every message is ACKed OK.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MessageClient } from '../dist/index';
import { tempDir } from './helpers';
import { faultShimSkip, startServerChild, waitFor, withFaults } from './support/faults';

const T = { timeout: 20_000, skip: faultShimSkip() };

test('a failing epoll_wait is counted, logged and retried: the listener still accepts, every message is ACKed OK', T, async (t) => {
  const dir = tempDir('loop-faults-');
  const faults = withFaults();
  const server = await startServerChild({ port: 0, serviceThreads: 2, file: { path: `${dir}/m.log` } }, faults.env);
  t.after(() => server.proc.kill('SIGKILL'));
  const first = await MessageClient.connect({ port: server.port, clientId: 1, firstMsgId: 1 });
  t.after(() => first.close());
  assert.equal((await first.send('before the faults')).status, 0);

  // Rules for our threads only: Node's own loop polls too.
  faults.set(
    'epoll_wait path=eventpoll thread=msgs-listener errno=ENOMEM count=2\n' +
      'epoll_wait path=eventpoll thread=msgs-svc errno=EIO count=3',
  );
  // A new connection wakes the listener; its messages, and the first
  // client's, wake the service threads: their next polls fail.
  const second = await MessageClient.connect({ port: server.port, clientId: 2, firstMsgId: 1 });
  t.after(() => second.close());
  const sends = [];
  for (let i = 0; i < 20; i++) sends.push(first.send(`first ${i}`), second.send(`second ${i}`));
  const acks = await Promise.all(sends);
  assert.deepEqual(new Set(acks.map((a) => a.status)), new Set([0]), 'every message ACKed OK');

  // The listener accepts after its failures: a third connection gets in.
  const third = await MessageClient.connect({ port: server.port, clientId: 3, firstMsgId: 1 });
  t.after(() => third.close());
  assert.equal((await third.send('after the faults')).status, 0);

  const injected = (re: RegExp): number => faults.injected().filter((l) => re.test(l)).length;
  // Every rule is used up once the service threads have polled three more times.
  await waitFor('all 5 injected failures', () => injected(/^epoll_(p)?wait EIO|^epoll_(p)?wait ENOMEM/) === 5 || undefined);
  assert.equal(injected(/ENOMEM anon_inode:\[eventpoll\]$/), 2, faults.injected().join('\n'));
  assert.equal(injected(/EIO anon_inode:\[eventpoll\]$/), 3, faults.injected().join('\n'));
  const stats = await waitFor('loopErrors 5', async () => {
    const s = await server.stats();
    return s.loopErrors === 5 ? s : undefined;
  });
  assert.equal(stats.loopErrors, 5);
  assert.match(await server.metrics(), /^msgserver_event_loop_errors_total 5$/m);

  const errors = server.logs().filter((l) => l.level === 'error');
  assert.ok(
    errors.some((l) => /^listener: event loop poll failed: Cannot allocate memory; polling again in 10 ms$/.test(l.message)),
    JSON.stringify(errors),
  );
  assert.ok(
    errors.some((l) => /^service thread: event loop poll failed: Input\/output error; polling again in 10 ms$/.test(l.message)),
    JSON.stringify(errors),
  );
  // Rate-limited: at most one line per thread per interval (listener + 2 service threads).
  assert.ok(errors.length <= 3, JSON.stringify(errors));
  assert.equal(await server.stop(), 0);
});
