// Retention of rotated segments (file.retention) and archive hooks
// (server.onSegmentClosed): 200,000 messages into 64 KiB segments under each
// bound in turn; the directory stays within the bound (plus the documented
// slack while ingest runs), every retained record reads back in order with
// consecutive sequence numbers, the active segment is never deleted; an
// archive hook that fails keeps its segment; with afterArchive a slow hook
// delays deletion. The last test reports ingest latency (p99) with deletions
// running beside a run without.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { runLoad, loadSucceeded, type LoadResult } from '../dist/bench/bench';
import { MessageClient, MessageServer, readLog, type SegmentDeletedInfo, type SegmentInfo, type ServerOptions } from '../dist/index';
import { tempDir } from './helpers';

const ROTATE = 64 * 1024;
const MESSAGES = 200_000;
const CONNECTIONS = 4;
const SEGMENT_RE = /^\d{20}\.log$/;

/** Polls `cond` every 10 ms until it holds; fails after `ms`. */
async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function segments(dir: string): Array<{ name: string; bytes: number; mtimeMs: number }> {
  const out = [];
  for (const name of fs.readdirSync(dir).sort()) {
    if (!SEGMENT_RE.test(name)) continue;
    try {
      const st = fs.statSync(path.join(dir, name));
      out.push({ name, bytes: st.size, mtimeMs: st.mtimeMs });
    } catch {
      // deleted between readdir and stat
    }
  }
  return out;
}

interface Run {
  server: MessageServer;
  dir: string;
  deleted: SegmentDeletedInfo[];
  closed: Set<string>;
  load: LoadResult;
  /** Largest segment count / byte total seen while the load ran. */
  peakSegments: number;
  peakBytes: number;
}

/** A server on a segment directory, 200,000 messages from msgbench's native client, sampling the directory meanwhile. */
async function ingest(
  t: { after: (fn: () => unknown) => void },
  file: ServerOptions['file'],
  setup?: (server: MessageServer) => void,
  window = 32,
): Promise<Run> {
  const dir = path.join(tempDir(), 'log');
  const server = new MessageServer({
    port: 0,
    serviceThreads: 2,
    file: { path: dir, rotateBytes: ROTATE, ...file },
    limits: { maxMessageBytes: 4096 },
  });
  t.after(() => server.close());
  const deleted: SegmentDeletedInfo[] = [];
  const closed = new Set<string>();
  server.on('segmentDeleted', (d) => deleted.push(d));
  server.on('rotate', (r) => closed.add(r.closed));
  setup?.(server);
  const { port } = await server.listen();
  let peakSegments = 0;
  let peakBytes = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const segs = segments(dir);
      peakSegments = Math.max(peakSegments, segs.length);
      peakBytes = Math.max(peakBytes, segs.reduce((n, s) => n + s.bytes, 0));
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const load = await runLoad({ port, connections: CONNECTIONS, messages: MESSAGES / CONNECTIONS, window, payload: 100 });
  sampling = false;
  await sampler;
  assert.ok(loadSucceeded(load), `load errors: ${JSON.stringify(load.errorsByKind)} ${load.errorSamples.join('; ')}`);
  assert.equal(load.messagesAcked, MESSAGES);
  return { server, dir, deleted, closed, load, peakSegments, peakBytes };
}

/** After close(): the retained records read back in order, consecutive, ending at the last one stored. */
async function checkRetained(run: Run): Promise<number> {
  const segs = segments(run.dir);
  assert.ok(segs.length >= 1);
  const firstSeq = BigInt(segs[0].name.slice(0, 20));
  let expect = firstSeq;
  for await (const rec of readLog(run.dir)) {
    assert.equal(rec.seq, expect, 'consecutive sequence numbers');
    expect++;
  }
  assert.equal(expect - 1n, BigInt(MESSAGES), 'the retained log ends at the last record stored');
  return Number(expect - firstSeq);
}

/** Every deletion was of a segment closed before it; the active one (the last) never. */
async function checkDeletions(run: Run, reason: SegmentDeletedInfo['reason']): Promise<void> {
  assert.ok(run.deleted.length > 0, 'retention deleted segments');
  // The counter moves when the file goes; its event reaches JS a moment later.
  await until(() => run.deleted.length >= run.server.stats().segmentsDeleted, 'every deletion event delivered');
  const s = run.server.stats();
  assert.equal(s.segmentsDeleted, run.deleted.length);
  assert.equal(s.ioErrors.delete, 0);
  const active = segments(run.dir).at(-1)!.name;
  for (const d of run.deleted) {
    assert.equal(d.reason, reason);
    assert.ok(run.closed.has(d.path), `${d.path} was closed before it was deleted`);
    assert.notEqual(path.basename(d.path), active);
    assert.ok(!fs.existsSync(d.path));
    assert.ok(d.bytes > 0 && d.firstSeq >= 1);
  }
  // Oldest first.
  for (let i = 1; i < run.deleted.length; i++) assert.ok(run.deleted[i].firstSeq > run.deleted[i - 1].firstSeq);
}

// While ingest runs, one writer pass can close several segments before its
// retention step: the documented slack is what one pass can write, at most
// batch.maxBytes (1 MiB) worth of segments beyond the bound.
const SLACK_SEGMENTS = Math.ceil((1024 * 1024) / ROTATE) + 1;

test('retention maxSegments: 200,000 messages into 64 KiB segments keep at most maxSegments files', async (t) => {
  const run = await ingest(t, { retention: { maxSegments: 5 } });
  await until(() => segments(run.dir).length <= 5, 'at most 5 segments');
  assert.ok(run.peakSegments <= 5 + SLACK_SEGMENTS, `peak ${run.peakSegments} segments`);
  await checkDeletions(run, 'maxSegments');
  await run.server.close();
  assert.equal(segments(run.dir).length, 5);
  const n = await checkRetained(run);
  assert.ok(n > 0 && n < MESSAGES);
});

test('retention maxBytes: the directory stays within maxBytes (active segment included)', async (t) => {
  const maxBytes = 512 * 1024;
  const run = await ingest(t, { retention: { maxBytes } });
  const total = (): number => segments(run.dir).reduce((n, s) => n + s.bytes, 0);
  await until(() => total() <= maxBytes, `at most ${maxBytes} bytes`);
  assert.ok(run.peakBytes <= maxBytes + SLACK_SEGMENTS * ROTATE, `peak ${run.peakBytes} bytes`);
  await checkDeletions(run, 'maxBytes');
  await run.server.close();
  assert.ok(total() <= maxBytes);
  assert.ok(total() > maxBytes - 2 * ROTATE, 'no more than needed was deleted');
  await checkRetained(run);
});

test('retention maxAgeMs: closed segments older than maxAgeMs go; the active one stays', async (t) => {
  const maxAgeMs = 300;
  const run = await ingest(t, { retention: { maxAgeMs } });
  // Once ingest stopped, every closed segment ages out: only the active one remains.
  await until(() => segments(run.dir).length === 1, 'only the active segment left', 5000);
  await checkDeletions(run, 'maxAgeMs');
  await run.server.close();
  assert.equal(segments(run.dir).length, 1);
  await checkRetained(run);
});

test('a retention bound without rotation is a ConfigError naming the fields', () => {
  assert.throws(
    () => new MessageServer({ file: { path: 'x.log', retention: { maxBytes: 1 << 20, maxSegments: 3 } } }),
    (err: Error) =>
      err.name === 'ConfigError' &&
      /file\.retention\.maxBytes/.test(err.message) &&
      /file\.retention\.maxSegments/.test(err.message) &&
      /file\.rotateBytes or file\.rotateMs/.test(err.message),
  );
  assert.throws(() => new MessageServer({ file: { path: 'x', rotateBytes: 65536, retention: { maxSegments: -1 } } }), /file\.retention\.maxSegments/);
  assert.throws(() => new MessageServer({ file: { path: 'x', rotateBytes: 65536, retention: { nope: 1 } as never } }), /file\.retention\.nope/);
});

test('archive hooks: every closed segment offered once; a failing hook keeps its segment (afterArchive)', async (t) => {
  const seen: SegmentInfo[] = [];
  const errors: Error[] = [];
  let failPath = '';
  const run = await ingest(t, { retention: { maxSegments: 2, afterArchive: true } }, (server) => {
    server.on('error', (e) => errors.push(e));
    server.onSegmentClosed(async (seg) => {
      seen.push(seg);
      if (seen.length === 3) {
        failPath = seg.path;
        throw new Error('bucket unreachable');
      }
    });
  });
  const s = (): ReturnType<MessageServer['stats']> => run.server.stats();
  await until(() => s().archiveFailures === 1 && seen.length === s().rotations, 'every closed segment offered');
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /archive hook failed for .*bucket unreachable; the segment is kept/);
  // The two before the failed one were archived and deleted; the failed one
  // and every later one are kept (the retained log stays contiguous).
  await until(() => run.deleted.length === 2, 'the archived segments before the failed one deleted');
  assert.deepEqual(run.deleted.map((d) => d.path), seen.slice(0, 2).map((x) => x.path));
  assert.ok(fs.existsSync(failPath), 'the segment whose hook failed is kept');
  for (const x of seen.slice(2)) assert.ok(fs.existsSync(x.path));
  // Offered in order, consecutive, each exactly once.
  for (let i = 1; i < seen.length; i++) assert.equal(seen[i].firstSeq, seen[i - 1].lastSeq + 1);
  assert.equal(new Set(seen.map((x) => x.path)).size, seen.length);
  assert.ok(seen.every((x) => x.bytes > 0 && x.bytes <= ROTATE));
  await run.server.close();
  await checkRetained(run);

  // The next start offers every closed segment again (at-least-once).
  const again: string[] = [];
  const server2 = new MessageServer({ port: 0, file: { path: run.dir, rotateBytes: ROTATE, retention: { maxSegments: 2, afterArchive: true } } });
  t.after(() => server2.close());
  server2.onSegmentClosed((seg) => {
    again.push(seg.path);
  });
  await server2.listen();
  await until(() => server2.stats().segmentsDeleted > 0 && segments(run.dir).length === 2, 'retention catches up after the restart');
  assert.equal(again[0], failPath);
  await server2.close();
});

test('afterArchive: a slow archive hook delays deletion until it resolves', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let slowPath = '';
  const run = await ingest(t, { retention: { maxSegments: 2, afterArchive: true } }, (server) => {
    server.onSegmentClosed(async (seg) => {
      if (slowPath === '') {
        slowPath = seg.path;
        await gate;
      }
    });
  });
  const s = run.server.stats();
  assert.ok(s.rotations > 10);
  // Ingest is over and every other segment was archived: still nothing deleted.
  assert.equal(s.segmentsDeleted, 0);
  assert.ok(fs.existsSync(slowPath));
  assert.equal(segments(run.dir).length, s.rotations + 1);
  release();
  await until(() => segments(run.dir).length === 2, 'deleted down to maxSegments once the hook resolved');
  assert.equal(run.deleted[0].path, slowPath);
  await run.server.close();
  await checkRetained(run);
});

test('afterArchive without any onSegmentClosed hook: a warning at listen(), every segment kept', async (t) => {
  const dir = path.join(tempDir(), 'log');
  const server = new MessageServer({ port: 0, file: { path: dir, rotateBytes: ROTATE, retention: { maxSegments: 2, afterArchive: true } } });
  const logs: string[] = [];
  server.on('log', (l) => logs.push(`${l.level}: ${l.message}`));
  t.after(() => server.close());
  await server.listen();
  assert.ok(logs.some((l) => /^warn: file\.retention\.afterArchive is true but no onSegmentClosed hook/.test(l)), logs.join('\n'));
  await server.close();
});

test('ingest latency with deletions running beside a run without (reported)', async (t) => {
  // Synchronous sends (window 1): each latency is one round trip through the writer.
  const without = await ingest(t, {}, undefined, 1);
  await without.server.close();
  const withDeletes = await ingest(t, { retention: { maxSegments: 4 } }, undefined, 1);
  const deletions = withDeletes.server.stats().segmentsDeleted;
  await withDeletes.server.close();
  assert.ok(deletions > 100, `${deletions} deletions ran`);
  const fmt = (r: LoadResult): string =>
    `p50 ${r.latency.p50Us.toFixed(0)} us, p99 ${r.latency.p99Us.toFixed(0)} us, p99.9 ${r.latency.p999Us.toFixed(0)} us, ` +
    `${Math.round(r.msgsPerSec)} msg/s`;
  const report =
    `ingest latency, ${MESSAGES} messages, ${CONNECTIONS} connections, window 1, 64 KiB segments:\n` +
    `  without retention:                 ${fmt(without.load)}\n` +
    `  with maxSegments 4 (${deletions} deletions): ${fmt(withDeletes.load)}`;
  console.log(report);
});

test('rotation turned on for an existing single log file: a clear error naming file.path, rotateBytes and the commands', async (t) => {
  const file = path.join(tempDir(), 'messages.log');
  const first = new MessageServer({ port: 0, file: { path: file } });
  await first.listen();
  const c = await MessageClient.connect({ port: first.address()!.port, clientId: 1 });
  await c.send('one');
  await c.close();
  await first.close();
  const server = new MessageServer({ port: 0, file: { path: file, rotateBytes: 65536 } });
  t.after(() => server.close());
  await assert.rejects(server.listen(), (err: Error) => {
    assert.match(err.message, new RegExp(`file\\.path ${file} is a single log file`));
    assert.match(err.message, /file\.rotateBytes = 65536/);
    assert.match(err.message, /turn rotation off/);
    assert.ok(err.message.includes(`mkdir ${file} && mv ${file}.tmp ${file}/00000000000000000001.log`), err.message);
    assert.doesNotMatch(err.message, /Not a directory/);
    return true;
  });
});
