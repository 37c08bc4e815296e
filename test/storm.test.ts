// Storm: 200 connections mixing good traffic, random garbage, resets in the
// middle of a frame, half-open connections and reconnect loops, for
// MSGS_STORM_SECONDS (default 10; CI runs 60). Afterwards every ACKed message
// of the good clients is in the file, the file verifies, and the server's RSS
// is back near where it started.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';

import { MessageClient, readLog, verifyLog } from '../dist/index';
import { encodeHello, encodeMsg } from '../dist/format/codec';
import { prng, randomBytes, tempDir } from './helpers';

const SECONDS = Number(process.env.MSGS_STORM_SECONDS ?? 10);

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    s.resume(); // read (and drop) what the server says, so its close is seen
    s.once('connect', () => resolve(s));
    s.once('close', () => resolve(s));
  });
}

const closed = (s: net.Socket): Promise<void> => (s.destroyed ? Promise.resolve() : new Promise((r) => s.once('close', () => r())));

test(`storm: 200 mixed connections for ${SECONDS} s; nothing ACKed is lost; memory comes back`, { timeout: (SECONDS + 120) * 1000 }, async () => {
  const dir = tempDir();
  const file = path.join(dir, 'storm.log');
  const opts = JSON.stringify({
    port: 0,
    serviceThreads: 2,
    file: { path: file },
    limits: { maxMessageBytes: 64 * 1024, frameTimeoutMs: 2000, handshakeTimeoutMs: 2000 },
  });
  const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'server-child.js'), opts], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  const port = await new Promise<number>((resolve) => {
    child.stdout.on('data', (d) => {
      for (const l of String(d).split('\n')) if (l.includes('"listening"')) resolve(JSON.parse(l).listening);
    });
  });
  const rand = prng(Number(process.env.MSGS_SEED ?? 99));
  const deadline = Date.now() + SECONDS * 1000;
  const running = (): boolean => Date.now() < deadline;

  // Warm-up, so that the baseline includes the server's pools.
  const warm = await MessageClient.connect({ firstMsgId: 1, port, clientId: 1, window: 256 });
  await Promise.all(Array.from({ length: 20_000 }, (_, i) => warm.send(randomBytes(rand, (i * 7) % 2000))));
  await warm.close();
  const rssStart = rssKiB(child.pid!);

  const acked = new Map<number, bigint[]>();
  const good = Array.from({ length: 40 }, async (_, i) => {
    const clientId = 1000 + i;
    const mine: bigint[] = [];
    acked.set(clientId, mine);
    const c = await MessageClient.connect({ firstMsgId: 1, port, clientId, window: 32 });
    while (running()) {
      const batch = Array.from({ length: 16 }, () => c.send(randomBytes(rand, (rand() * 4096) | 0), { name: 'good' }));
      for (const r of await Promise.all(batch)) mine.push(r.msgId);
    }
    await c.close();
  });
  const garbage = Array.from({ length: 40 }, async () => {
    while (running()) {
      const s = await connect(port);
      s.write(Buffer.concat([Buffer.from([rand() < 0.5 ? 0x4d : 0x00]), randomBytes(rand, 1 + ((rand() * 3000) | 0))]));
      await closed(s);
    }
  });
  const resets = Array.from({ length: 40 }, async () => {
    while (running()) {
      const s = await connect(port);
      const frame = encodeMsg(1n, Buffer.from('r'), randomBytes(rand, 500));
      s.write(Buffer.concat([encodeHello(7), frame.subarray(0, 1 + ((rand() * (frame.length - 2)) | 0))]));
      await new Promise((r) => setImmediate(r));
      s.resetAndDestroy();
      await closed(s);
    }
  });
  const halfOpen = Array.from({ length: 40 }, async () => {
    while (running()) {
      const s = await connect(port);
      s.write(Buffer.concat([encodeHello(8), Buffer.from([0, 0, 1])])); // a frame that never completes
      await closed(s); // the server's frame timeout ends it
    }
  });
  const reconnects = Array.from({ length: 40 }, async (_, i) => {
    let n = 0;
    while (running()) {
      const c = await MessageClient.connect({ firstMsgId: 1, port, clientId: 5000 + i });
      await c.send(`reconnect ${++n}`);
      await c.close();
    }
  });
  await Promise.all([...good, ...garbage, ...resets, ...halfOpen, ...reconnects]);

  // Connections are gone; the server's memory should be back near its start.
  const rssEnd = rssKiB(child.pid!);
  console.log(`# RSS ${rssStart} KiB after warm-up, ${rssEnd} KiB after the storm`);
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  // Under ASan, freed memory sits in its quarantine, so the sanitizer runs set a larger slack.
  const slackMiB = Number(process.env.MSGS_RSS_SLACK_MIB ?? 48);
  assert.ok(rssEnd < rssStart + slackMiB * 1024, `RSS grew by ${rssEnd - rssStart} KiB (slack ${slackMiB} MiB)`);

  const v = await verifyLog(file);
  assert.equal(v.ok, true, `${v.reason} at ${v.firstBadOffset}`);
  const stored = new Map<number, Set<bigint>>();
  for await (const r of readLog(file)) {
    if (!stored.has(r.clientId)) stored.set(r.clientId, new Set());
    stored.get(r.clientId)!.add(r.msgId);
  }
  let total = 0;
  for (const [id, ids] of acked) {
    for (const m of ids) assert.ok(stored.get(id)?.has(m), `ACKed ${id}/${m} is in the file`);
    total += ids.length;
  }
  console.log(`# ${total} good messages ACKed and found`);
  assert.ok(total > 1000);
});
