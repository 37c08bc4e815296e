// Overload: a writer slower than the input (a slow disk: the fault shim
// test/faults/iofault.c delays every pwrite of the log by 20 ms, from outside
// the server). Memory stays bounded by maxQueueBytes plus per-connection
// buffers, the clients are slowed by TCP back-pressure, and nothing is dropped.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { MessageClient, readLog } from '../dist/index';
import { tempDir } from './helpers';
import { faultShimSkip, startServerChild, withFaults } from './support/faults';

const MiB = 1024 * 1024;

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

test('a slow writer: queue and memory stay bounded, clients are slowed, nothing is dropped', { timeout: 180_000, skip: faultShimSkip() }, async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'overload.log');
  const maxQueueBytes = 8 * MiB;
  const faults = withFaults();
  faults.set(`pwrite path=${file}$ delay_us=20000`); // 20 ms per write: ~50 writes/s
  const server = await startServerChild({ port: 0, serviceThreads: 2, file: { path: file }, limits: { maxQueueBytes } }, faults.env);
  t.after(() => server.proc.kill('SIGKILL'));
  const pid = server.proc.pid!;

  const rssStart = rssKiB(pid);
  const clients = await Promise.all(Array.from({ length: 8 }, (_, i) => MessageClient.connect({ firstMsgId: 1, port: server.port, clientId: i + 1, window: 4096 })));
  const payload = Buffer.alloc(4096, 0x61);
  let done = false;
  const sending = Promise.all(clients.map((c) => Promise.all(Array.from({ length: 6000 }, () => c.send(payload))))).then((r) => {
    done = true;
    return r;
  });
  let maxQueue = 0;
  let maxRss = 0;
  let paused = 0;
  while (!done) {
    const s = await server.stats();
    maxQueue = Math.max(maxQueue, s.queueBytes);
    maxRss = Math.max(maxRss, rssKiB(pid));
    paused = s.pausedForQueue;
  }
  const acks = (await sending).flat();
  assert.equal(acks.length, 48_000);
  assert.ok(acks.every((a) => a.statusName === 'OK'), 'every message ACKed OK');
  const delayed = faults.injected().filter((l) => /^pwrite\S* delay_us=20000 /.test(l)).length;
  assert.ok(delayed > 10, `the slow disk was slow: ${delayed} delayed writes`);
  // The bound: maxQueueBytes, overshot by at most one 4 MiB batch block per service thread.
  assert.ok(maxQueue <= maxQueueBytes + 2 * 4 * MiB, `queue peaked at ${maxQueue} bytes`);
  assert.ok(paused > 0, 'service threads paused reading: clients were slowed by TCP back-pressure');
  const grownMiB = (maxRss - rssStart) / 1024;
  console.log(`# queue peak ${(maxQueue / MiB).toFixed(1)} MiB of ${maxQueueBytes / MiB}; RSS grew ${grownMiB.toFixed(0)} MiB while 192 MiB were sent; paused ${paused} times; ${delayed} delayed writes`);
  // Memory: the queue bound, batch blocks and pools, the writer's buffer, and
  // per-connection buffers; far below the 192 MiB that went through.
  assert.ok(grownMiB < 64, `RSS grew ${grownMiB.toFixed(0)} MiB`);
  await Promise.all(clients.map((c) => c.close()));
  assert.equal(await server.stop(), 0);
  let n = 0;
  for await (const _ of readLog(file)) n++;
  assert.equal(n, 48_000, 'nothing dropped');
});
