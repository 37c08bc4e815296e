// The disk-space guard (file.minFreeBytes) on a real small file system: a
// 16 MiB tmpfs the test mounts (root only; skipped with the reason
// otherwise, and failed instead when CI is set). Ingest pauses before ENOSPC
// (no WRITE_FAILED while the guard works), keeps its connections, resumes
// once space is freed (the test deleting a file; retention turned on live),
// and nothing ACKed OK is lost.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';

import { MessageClient, MessageServer, readLog } from '../dist/index';
import { tempDir } from './helpers';

const MiB = 1024 * 1024;
let mnt = '';
let skipReason: string | false = false;

before(() => {
  if (process.getuid?.() !== 0) {
    skipReason = 'needs root to mount a small tmpfs';
  } else {
    mnt = tempDir('msgserver-diskguard-');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mnt], { stdio: 'pipe' });
    } catch (err) {
      skipReason = `cannot mount a tmpfs: ${(err as Error).message.split('\n')[0]}`;
      mnt = '';
    }
  }
  if (skipReason && process.env.CI) throw new Error(`disk-guard tests cannot run in CI: ${skipReason}`);
});

after(() => {
  if (mnt) execFileSync('umount', [mnt]);
});

function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Clients that send 1000-byte messages until stopped, recording what was ACKed OK. */
function startClients(port: number, n: number) {
  let running = true;
  const acked = new Map<number, bigint[]>();
  let failures = 0;
  const loops = Array.from({ length: n }, async (_, i) => {
    const clientId = 100 + i;
    const client = await MessageClient.connect({ port, clientId, firstMsgId: 1, window: 16 });
    const mine: bigint[] = [];
    acked.set(clientId, mine);
    const payload = Buffer.alloc(1000, i);
    const inflight = new Set<Promise<void>>();
    while (running) {
      const p: Promise<void> = client.send(payload).then(
        (r) => {
          mine.push(r.msgId);
        },
        () => {
          failures++;
        },
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      if (inflight.size >= 16) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    await client.close();
  });
  return {
    acked,
    failures: () => failures,
    total: () => [...acked.values()].reduce((n, a) => n + a.length, 0),
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Every (clientId, msgId) ACKed OK is in the log. */
async function checkNothingLost(dir: string, acked: Map<number, bigint[]>): Promise<void> {
  const inLog = new Map<number, Set<bigint>>();
  let last = 0n;
  for await (const rec of readLog(dir)) {
    if (last) assert.equal(rec.seq, last + 1n);
    last = rec.seq;
    let s = inLog.get(rec.clientId);
    if (!s) inLog.set(rec.clientId, (s = new Set()));
    s.add(rec.msgId);
  }
  for (const [clientId, ids] of acked) {
    const s = inLog.get(clientId) ?? new Set();
    for (const id of ids) assert.ok(s.has(id), `client ${clientId} msg ${id} was ACKed OK but is not in the log`);
  }
}

test('disk guard: ingest pauses before ENOSPC, resumes when a file is deleted, nothing ACKed OK is lost', async (t) => {
  if (skipReason) return t.skip(skipReason);
  const base = fs.mkdtempSync(path.join(mnt, 't1-'));
  const ballast = path.join(base, 'ballast');
  fs.writeFileSync(ballast, Buffer.alloc(8 * MiB, 1));
  const dir = path.join(base, 'log');
  const minFree = 3 * MiB;
  const server = new MessageServer({
    port: 0,
    serviceThreads: 2,
    file: { path: dir, rotateBytes: 256 * 1024, minFreeBytes: minFree },
    limits: { maxMessageBytes: 4096, maxQueueBytes: 2 * MiB },
  });
  const logs: string[] = [];
  server.on('log', (l) => logs.push(`${l.level}: ${l.message}`));
  t.after(() => server.close());
  const { port } = await server.listen();
  const clients = startClients(port, 4);

  await until(() => server.stats().diskLow === 1, 'the guard paused ingest');
  const s1 = server.stats();
  assert.equal(s1.diskGuardPauses, 1);
  assert.ok(freeBytes(base) > 0);
  // While paused, nothing new is read: what was in flight settles, then the count stays.
  const settled = s1.messagesIn;
  await until(() => server.stats().acks.OK === server.stats().messagesIn, 'what was taken is ACKed');
  const heldAt = server.stats().messagesIn;
  assert.ok(heldAt - settled < 5000, 'little more than what was in flight was read');
  const window = Date.now() + 400; // a measurement window, not a synchronisation
  while (Date.now() < window) await new Promise((r) => setTimeout(r, 20));
  assert.equal(server.stats().messagesIn, heldAt, 'no new message read while the disk is low');
  assert.equal(server.stats().connections, 4, 'connections stay open');
  assert.equal(server.stats().acks.WRITE_FAILED, 0, 'paused before ENOSPC');
  assert.ok(logs.some((l) => /^warn: disk-space guard: \d+ bytes free on .* below file\.minFreeBytes/.test(l)), logs.join('\n'));

  fs.unlinkSync(ballast);
  await until(() => server.stats().diskLow === 0, 'the guard resumed');
  await until(() => server.stats().messagesIn > heldAt + 1000, 'ingest goes on');
  assert.ok(logs.some((l) => /^info: disk-space guard: .* reading messages again/.test(l)));
  // And pauses again before the disk is full.
  await until(() => server.stats().diskLow === 1, 'paused again');
  assert.equal(server.stats().diskGuardPauses, 2);

  // The clients' last sends wait for room: stop sending, and turn the guard
  // off live so that they finish (what is in flight fits the space left).
  const stopping = clients.stop();
  const r = server.reconfigure({ ...optionsOf(server), file: { ...optionsOf(server).file, minFreeBytes: 0 } });
  assert.deepEqual(r, { applied: ['file.minFreeBytes'], needsRestart: [] });
  await stopping;
  assert.equal(server.stats().diskLow, 0);
  assert.equal(clients.failures(), 0);
  await server.close();
  assert.equal(server.stats().acks.WRITE_FAILED, 0);
  assert.equal(server.stats().failedRecords, 0);
  await checkNothingLost(dir, clients.acked);
  assert.ok(clients.total() > 10_000);
  fs.rmSync(base, { recursive: true });
});

test('disk guard: retention turned on live (reconfigure) frees space and ingest resumes', async (t) => {
  if (skipReason) return t.skip(skipReason);
  const base = fs.mkdtempSync(path.join(mnt, 't2-'));
  const dir = path.join(base, 'log');
  const server = new MessageServer({
    port: 0,
    serviceThreads: 2,
    file: { path: dir, rotateBytes: 256 * 1024, minFreeBytes: 3 * MiB },
    limits: { maxMessageBytes: 4096, maxQueueBytes: 2 * MiB },
  });
  t.after(() => server.close());
  const { port } = await server.listen();
  const clients = startClients(port, 2);
  await until(() => server.stats().diskLow === 1, 'the guard paused ingest');
  const heldAt = server.stats().messagesIn;
  const r = server.reconfigure({ ...optionsOf(server), file: { ...optionsOf(server).file, retention: { maxSegments: 8 } } });
  assert.deepEqual(r, { applied: ['file.retention.maxSegments'], needsRestart: [] });
  await until(() => server.stats().diskLow === 0, 'resumed after retention deleted segments');
  assert.ok(server.stats().segmentsDeleted > 0);
  await until(() => server.stats().messagesIn > heldAt + 1000, 'ingest goes on');
  await clients.stop();
  assert.equal(clients.failures(), 0);
  await server.close();
  assert.equal(server.stats().acks.WRITE_FAILED, 0);
  assert.ok(fs.readdirSync(dir).length <= 8);
  // The retained log is contiguous and ends with the last message ACKed.
  let last = 0n;
  let count = 0;
  for await (const rec of readLog(dir)) {
    if (last) assert.equal(rec.seq, last + 1n);
    last = rec.seq;
    count++;
  }
  assert.equal(last, BigInt(server.stats().lastSeq));
  assert.ok(count > 0);
  fs.rmSync(base, { recursive: true });
});

/** The server's resolved config as options (what a reloaded config file would hold). */
function optionsOf(server: MessageServer) {
  return JSON.parse(JSON.stringify(server.config));
}
