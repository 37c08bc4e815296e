// Overload: a writer slower than the input (an artificial delay, used only in
// tests). Memory stays bounded by maxQueueBytes plus per-connection buffers,
// the clients are slowed by TCP back-pressure, and nothing is dropped.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { MessageClient, readLog } from '../dist/index';
import { tempDir } from './helpers';

const MiB = 1024 * 1024;

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

test('a slow writer: queue and memory stay bounded, clients are slowed, nothing is dropped', { timeout: 180_000 }, async () => {
  const dir = tempDir();
  const file = path.join(dir, 'overload.log');
  const maxQueueBytes = 8 * MiB;
  const opts = { port: 0, serviceThreads: 2, file: { path: file }, limits: { maxQueueBytes } };
  const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'server-child.js'), JSON.stringify(opts)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, MSGSERVER_TEST_WRITE_DELAY_US: '20000' }, // 20 ms per write: ~50 writes/s
  });
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  const stats: Array<Record<string, number>> = [];
  let waiter: (() => void) | null = null;
  let port = 0;
  await new Promise<void>((resolve) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const o = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (o.listening) {
          port = o.listening;
          resolve();
        }
        if (o.stats) {
          stats.push(o.stats);
          waiter?.();
        }
      }
    });
  });
  const sample = (): Promise<Record<string, number>> =>
    new Promise((r) => {
      waiter = () => {
        waiter = null;
        r(stats.at(-1)!);
      };
      child.kill('SIGUSR2');
    });

  const rssStart = rssKiB(child.pid!);
  const clients = await Promise.all(Array.from({ length: 8 }, (_, i) => MessageClient.connect({ firstMsgId: 1, port, clientId: i + 1, window: 4096 })));
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
    const s = await sample();
    maxQueue = Math.max(maxQueue, s.queueBytes);
    maxRss = Math.max(maxRss, rssKiB(child.pid!));
    paused = s.pausedForQueue;
  }
  const acks = (await sending).flat();
  assert.equal(acks.length, 48_000);
  assert.ok(acks.every((a) => a.statusName === 'OK'), 'every message ACKed OK');
  // The bound: maxQueueBytes, overshot by at most one 4 MiB batch block per service thread.
  assert.ok(maxQueue <= maxQueueBytes + 2 * 4 * MiB, `queue peaked at ${maxQueue} bytes`);
  assert.ok(paused > 0, 'service threads paused reading: clients were slowed by TCP back-pressure');
  const grownMiB = (maxRss - rssStart) / 1024;
  console.log(`# queue peak ${(maxQueue / MiB).toFixed(1)} MiB of ${maxQueueBytes / MiB}; RSS grew ${grownMiB.toFixed(0)} MiB while 192 MiB were sent; paused ${paused} times`);
  // Memory: the queue bound, batch blocks and pools, the writer's buffer, and
  // per-connection buffers; far below the 192 MiB that went through.
  assert.ok(grownMiB < 64, `RSS grew ${grownMiB.toFixed(0)} MiB`);
  await Promise.all(clients.map((c) => c.close()));
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  let n = 0;
  for await (const _ of readLog(file)) n++;
  assert.equal(n, 48_000, 'nothing dropped');
});
