// Disk failures, injected from outside the server by the LD_PRELOAD shim
// test/faults/iofault.c (test/support/faults.ts): failed fdatasync in durable
// and written mode, a failed cache drop, a full disk mid-write, a failed sync of a segment being
// closed, a failed directory sync and a failed segment creation. What is
// proved each time: no OK for a record that did not reach the promised state,
// the file holds exactly the OK-ACKed records, every failed call is counted
// (stats().ioErrors, the metric), emitted as an 'error' event with its facts,
// and logged at most once per kind per 5 s; and the server recovers by itself
// once the disk does.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';

import { AckError, AckStatus, MessageClient, readLog, verifyLog } from '../dist/index';
import { tempDir } from './helpers';
import { faultShimSkip, startServerChild, waitFor, withFaults, type Faults, type IoOp, type ServerChild } from './support/faults';

const T = { timeout: 20_000, skip: faultShimSkip() };
const EIO = -5; // errno values as Node gives them: negative
const ENOSPC = -28;

interface Outcome {
  msgId: bigint;
  status: number;
}

/** One send, its ACK status (OK or the error status); anything but an AckError fails the test. */
async function send(c: MessageClient, payload: string | Buffer): Promise<Outcome> {
  try {
    const a = await c.send(payload, { name: 'io' });
    return { msgId: a.msgId, status: a.status };
  } catch (err) {
    if (!(err instanceof AckError)) throw err;
    return { msgId: err.msgId, status: err.status };
  }
}

/** n messages one after another: each its own batch, so each its own write and sync. */
async function sendEach(c: MessageClient, n: number, tag: string): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (let i = 0; i < n; i++) out.push(await send(c, `${tag} ${i}`.padEnd(100, '.')));
  return out;
}

/** n messages pipelined: the server batches them. */
function sendMany(c: MessageClient, n: number, tag: string): Promise<Outcome[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => send(c, `${tag} ${i}`.padEnd(100, '.'))));
}

const ok = (o: Outcome[]): Outcome[] => o.filter((x) => x.status === AckStatus.OK);
const failed = (o: Outcome[]): Outcome[] => o.filter((x) => x.status === AckStatus.WRITE_FAILED);

/** The records of a file or segment directory: msgIds in order, and the check that seqs are 1, 2, 3, ... */
async function readIds(p: string): Promise<bigint[]> {
  const ids: bigint[] = [];
  let seq = 0n;
  for await (const r of readLog(p)) {
    assert.equal(r.seq, ++seq, `consecutive sequence numbers (record ${ids.length} of ${p})`);
    ids.push(r.msgId);
  }
  return ids;
}

const count = (f: Faults, re: RegExp): number => f.injected().filter((l) => re.test(l)).length;

async function start(t: TestContext, options: object): Promise<{ server: ServerChild; faults: Faults; client: MessageClient }> {
  const faults = withFaults();
  const server = await startServerChild(options, faults.env);
  t.after(() => server.proc.kill('SIGKILL'));
  const client = await MessageClient.connect({ port: server.port, clientId: 7, firstMsgId: 1, window: 256 });
  t.after(() => client.close());
  return { server, faults, client };
}

/** Waits until the server counted (stats), emitted (events) and the shim injected the same number of failures of `op`. */
async function allReported(server: ServerChild, faults: Faults, op: IoOp, injectedRe: RegExp): Promise<number> {
  let seen = '';
  try {
    return await waitFor(`every injected ${op} failure counted and emitted`, async () => {
      const n = count(faults, injectedRe);
      const s = await server.stats();
      const events = server.errors().filter((e) => e.op === op).length;
      seen = `${n} injected, stats().ioErrors.${op} = ${s.ioErrors?.[op]}, ${events} error events with op '${op}'`;
      return n > 0 && s.ioErrors?.[op] === n && events === n && n;
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${seen}`);
  }
}

/** Log lines (level error) about failed `verb` calls: "cannot <verb> ...". */
function errorLines(server: ServerChild, verb: string): string[] {
  return server
    .logs()
    .filter((l) => l.level === 'error' && l.message.startsWith(`cannot ${verb} `))
    .map((l) => l.message);
}

/** The rate limit: at most one line per kind per 5 s, however many failures. */
function assertRateLimited(lines: string[], failures: number, burstMs: number, what: string): void {
  assert.ok(lines.length >= 1, `the ${what} failures were logged`);
  const allowed = 1 + Math.floor(burstMs / 5000);
  assert.ok(lines.length <= allowed, `${failures} ${what} failures in ${burstMs} ms gave ${lines.length} log lines (at most ${allowed}): ${lines.join(' | ')}`);
}

test('the shim: fails, shortens and counts only the calls its rules match, and rereads its rules', T, () => {
  const dir = tempDir();
  const faults = withFaults();
  faults.set(
    [
      `pwrite path=${dir}/a.dat$ errno=ENOSPC count=1`,
      `fdatasync path=/a.dat errno=EIO`,
      `pwrite path=${dir}/b.dat bytes=3 count=1`,
      `open path=${dir}/denied$ errno=EACCES`,
      `fsync path=${dir}$ errno=EIO`,
    ].join('\n'),
  );
  // Runs in a child with the shim preloaded; prints what each call gave.
  const script = `
    const fs = require('node:fs');
    const [dir, control] = process.argv.slice(1);
    const out = [];
    const run = (what, f) => { try { out.push([what, f()]); } catch (e) { out.push([what, e.code]); } };
    const a = fs.openSync(dir + '/a.dat', 'w');
    const b = fs.openSync(dir + '/b.dat', 'w');
    const other = fs.openSync(dir + '/a.dat.other', 'w');
    run('pwrite a', () => fs.writeSync(a, 'hello', 0, 'utf8'));
    run('pwrite a again', () => fs.writeSync(a, 'hello', 0, 'utf8'));
    run('fdatasync a', () => fs.fdatasyncSync(a));
    run('pwrite other', () => fs.writeSync(other, 'hello', 0, 'utf8'));
    run('fdatasync other', () => fs.fdatasyncSync(other));
    run('short pwrite b', () => fs.writeSync(b, 'hello', 0, 'utf8'));
    run('open denied', () => typeof fs.openSync(dir + '/denied', 'w'));
    run('open denied.not', () => fs.openSync(dir + '/denied.not', 'w') >= 0);
    const d = fs.openSync(dir, 'r');
    run('fsync dir', () => fs.fsyncSync(d));
    fs.writeFileSync(control + '.next', '');
    fs.renameSync(control + '.next', control);
    run('fdatasync a, no rules', () => fs.fdatasyncSync(a));
    process.stdout.write(JSON.stringify(out));
  `;
  const r = spawnSync(process.execPath, ['-e', script, dir, faults.file], { env: faults.env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(Object.fromEntries(JSON.parse(r.stdout)), {
    'pwrite a': 'ENOSPC',
    'pwrite a again': 5, // count=1 used up
    'fdatasync a': 'EIO',
    'pwrite other': 5, // a.dat.other: not the anchored a.dat
    'fdatasync other': 'EIO', // "/a.dat" is a substring of ".../a.dat.other"
    'short pwrite b': 5, // 3 bytes, then libuv writes the rest with a second call
    'open denied': 'EACCES',
    'open denied.not': true, // anchored: only .../denied
    'fsync dir': 'EIO',
    'fdatasync a, no rules': null, // the control file was rewritten: no faults
  });
  const name = (p: string): string => path.relative(dir, p) || '.';
  assert.deepEqual(
    faults.injected().map((l) => {
      const [fn, effect, p] = l.split(' ');
      return `${fn.replace(/64$/, '')} ${effect} ${name(p)}`;
    }),
    ['pwrite ENOSPC a.dat', 'fdatasync EIO a.dat', 'fdatasync EIO a.dat.other', 'pwrite bytes=3 b.dat', 'open EACCES denied', 'fsync EIO .'],
  );
});

test('durable: a failing fdatasync answers WRITE_FAILED, never OK; the records are cut back out; ingest resumes', T, async (t) => {
  const file = path.join(tempDir(), 'durable.log');
  const { server, faults, client } = await start(t, { port: 0, serviceThreads: 2, ackMode: 'durable', file: { path: file } });

  const before = await sendEach(client, 5, 'before');
  assert.equal(ok(before).length, 5);
  const goodSize = fs.statSync(file).size;

  faults.set(`fdatasync path=${file}$ errno=EIO`);
  const burstStart = Date.now();
  const during = [...(await sendEach(client, 12, 'during')), ...(await sendMany(client, 300, 'during-pipelined'))];
  const burstMs = Date.now() - burstStart;
  assert.deepEqual(
    during.filter((o) => o.status !== AckStatus.WRITE_FAILED),
    [],
    'every message whose fsync failed is answered WRITE_FAILED, none OK',
  );
  assert.equal(fs.statSync(file).size, goodSize, 'the failed records were cut back out of the file');
  const v = await verifyLog(file);
  assert.equal(v.ok, true, `the file stays valid during the fault: ${v.reason}`);

  faults.set('');
  const after = await sendMany(client, 50, 'after');
  assert.equal(ok(after).length, 50, 'OK again once fdatasync works');

  const fsyncFailures = await allReported(server, faults, 'fsync', /^fdatasync EIO /);
  assert.ok(fsyncFailures >= 12, `${fsyncFailures} failed fdatasync calls (one per batch at least for the 12 sent one by one)`);
  const s = await server.stats();
  assert.equal(s.failedRecords, during.length, 'failedRecords counts every WRITE_FAILED message');
  assert.ok(s.writeErrors > 0);
  assert.equal(s.acks.WRITE_FAILED, during.length);
  assert.equal(s.acks.OK, 55);

  const err = server.errors().find((e) => e.op === 'fsync')!;
  assert.equal(err.code, 'ERR_MSGS_IO');
  assert.equal(err.path, file);
  assert.equal(err.errno, EIO);
  assert.equal(err.syscall, 'fdatasync');
  assert.equal(err.message.startsWith(`cannot fsync ${file}: Input/output error`), true, err.message);

  assertRateLimited(errorLines(server, 'fsync'), fsyncFailures, burstMs, 'fsync');

  const metrics = await server.metrics();
  const series = /^msgserver_io_errors_total\{op="fsync"\} (\d+)$/m.exec(metrics);
  assert.ok(series, 'msgserver_io_errors_total{op="fsync"} is exposed');
  assert.equal(Number(series[1]), fsyncFailures);

  await client.close();
  assert.equal(await server.stop(), 0);
  assert.deepEqual(
    await readIds(file),
    ok([...before, ...during, ...after]).map((o) => o.msgId),
    'the file holds exactly the OK-ACKed messages, in order',
  );
});

test('written + interval fsync: a failing sync keeps the OK ACKs but is loud, and syncedRecords stops at the last good sync', T, async (t) => {
  const file = path.join(tempDir(), 'interval.log');
  const { server, faults, client } = await start(t, {
    port: 0,
    serviceThreads: 2,
    ackMode: 'written',
    file: { path: file, fsync: 'interval', fsyncIntervalMs: 50 },
  });

  const before = await sendMany(client, 20, 'before');
  assert.equal(ok(before).length, 20);
  const lastGood = await waitFor('the interval sync to cover the first messages', async () => {
    const s = await server.stats();
    return s.syncedRecords === 20 && s.syncedRecords;
  });

  faults.set(`fdatasync path=${file}$ errno=EIO`);
  const burstStart = Date.now();
  const during: Outcome[] = [];
  // Keep writing until several interval syncs have failed.
  await waitFor(
    'three failed interval syncs',
    async () => {
      during.push(...(await sendMany(client, 10, 'during')));
      const s = await server.stats();
      assert.equal(s.syncedRecords, lastGood, 'syncedRecords does not move while every sync fails');
      return count(faults, /^fdatasync EIO /) >= 3;
    },
    10_000,
  );
  assert.deepEqual(failed(during), [], "written mode: the records were written, the ACK's promise holds");
  assert.equal(ok(during).length, during.length);
  const fsyncFailures = await allReported(server, faults, 'fsync', /^fdatasync EIO /);
  const burstMs = Date.now() - burstStart;
  const s = await server.stats();
  assert.equal(s.syncedRecords, lastGood, 'syncedRecords stays at the last good sync');
  assert.equal(s.failedRecords, 0);

  const err = server.errors().find((e) => e.op === 'fsync')!;
  assert.equal(err.code, 'ERR_MSGS_IO');
  assert.equal(err.path, file);
  assert.equal(err.errno, EIO);
  assert.equal(err.syscall, 'fdatasync');
  assertRateLimited(errorLines(server, 'fsync'), fsyncFailures, burstMs, 'interval fsync');

  faults.set('');
  const after = await sendMany(client, 20, 'after');
  assert.equal(ok(after).length, 20);
  await waitFor('syncedRecords to advance again once fdatasync works', async () => {
    const now = await server.stats();
    return now.syncedRecords >= lastGood + 20;
  });

  await client.close();
  assert.equal(await server.stop(), 0);
  assert.deepEqual(await readIds(file), ok([...before, ...during, ...after]).map((o) => o.msgId), 'every OK-ACKed message is in the file, in order');
});

test('written + interval fsync: a slow sync holds no ACK, and counts only the records written when it began', T, async (t) => {
  const file = path.join(tempDir(), 'slow-sync.log');
  const { server, faults, client } = await start(t, {
    port: 0,
    serviceThreads: 2,
    ackMode: 'written',
    file: { path: file, fsync: 'interval', fsyncIntervalMs: 50 },
  });
  // The next interval sync takes 4 s (a slow disk under a second's worth of
  // pages); the one after it 2 s, so the first one's count can be read alone.
  faults.set(`fdatasync path=${file}$ delay_us=4000000 count=1\nfdatasync path=${file}$ delay_us=2000000 count=1`);
  const before = await sendMany(client, 20, 'before');
  assert.equal(ok(before).length, 20);
  await waitFor('the interval sync to start', () => count(faults, /^fdatasync delay_us=4000000 /) === 1);
  const s0 = await server.stats();

  // Each message its own batch, its own append, its own ACK: none waits for the sync.
  const during = await sendEach(client, 20, 'during');
  assert.equal(ok(during).length, 20);
  const s1 = await server.stats();
  assert.equal(s1.fsyncs, s0.fsyncs, 'the 20 ACKs came while the sync was still running');
  assert.equal(s1.recordsWritten, 40);

  const done = await waitFor('the slow sync to end', async () => {
    const s = await server.stats();
    return s.fsyncs > s0.fsyncs && s;
  }, 8_000);
  assert.ok(done.syncedRecords > 0 && done.syncedRecords <= 20, `${done.syncedRecords} synced: those written when it began`);
  await waitFor('the next sync to cover the rest', async () => (await server.stats()).syncedRecords === 40, 6_000);
  assert.equal((await server.stats()).ioErrors.fsync, 0);

  await client.close();
  assert.equal(await server.stop(), 0);
  assert.deepEqual(await readIds(file), ok([...before, ...during]).map((o) => o.msgId));
});

test('a failing cache drop (sync_file_range EIO): every message still OK and in the file; reported as writeback, never silent', T, async (t) => {
  const file = path.join(tempDir(), 'drop.log');
  // fsync 'never': no interval sync shares the drops' thread, so each 4 MiB starts one.
  const { server, faults, client } = await start(t, { port: 0, serviceThreads: 1, file: { path: file, fsync: 'never' } });
  faults.set(`sync_file_range path=${file}$ errno=EIO`);
  // 14 MB: a drop starts every 4 MiB written.
  const payload = Buffer.alloc(1000, 'd');
  const out: Outcome[] = [];
  const burstStart = Date.now();
  for (let round = 0; round < 14; round++) {
    out.push(...(await Promise.all(Array.from({ length: 1000 }, () => send(client, payload)))));
  }
  const burstMs = Date.now() - burstStart;
  assert.equal(ok(out).length, out.length, 'a failed drop answers nothing WRITE_FAILED');

  const failures = await allReported(server, faults, 'writeback', /^sync_file_range EIO /);
  assert.ok(failures >= 3, `${failures} drops failed`);
  const err = server.errors().find((e) => e.op === 'writeback')!;
  assert.equal(err.code, 'ERR_MSGS_IO');
  assert.equal(err.path, file);
  assert.equal(err.errno, EIO);
  assert.equal(err.syscall, 'sync_file_range');
  assert.equal(err.records, 0);
  assert.equal(err.message, `cannot drop the cached pages of ${file}: Input/output error`);
  const lines = errorLines(server, 'drop the cached pages of');
  assertRateLimited(lines, failures, burstMs, 'writeback');
  assert.equal(lines[0], `${err.message}; nothing is lost: the pages stay cached, and the next fsync reports whether they reached the disk`);
  const series = /^msgserver_io_errors_total\{op="writeback"\} (\d+)$/m.exec(await server.metrics());
  assert.equal(Number(series?.[1]), failures, 'msgserver_io_errors_total{op="writeback"}');
  const s = await server.stats();
  assert.equal(s.ioErrors.fsync, 0);
  assert.equal(s.failedRecords, 0);

  await client.close();
  assert.equal(await server.stop(), 0);
  assert.deepEqual(await readIds(file), out.map((o) => o.msgId), 'every message, in order');
});

test('a full disk mid-write (short pwrite, then ENOSPC): WRITE_FAILED, the file cut back and valid, the server keeps serving', T, async (t) => {
  const file = path.join(tempDir(), 'full.log');
  const { server, faults, client } = await start(t, { port: 0, serviceThreads: 2, file: { path: file } });

  const before = await sendMany(client, 30, 'before');
  assert.equal(ok(before).length, 30);
  const goodSize = fs.statSync(file).size;

  // The first write gets 100 bytes onto the disk, then the disk is full.
  faults.set(`pwrite path=${file}$ bytes=100 count=1\npwrite path=${file}$ errno=ENOSPC`);
  const burstStart = Date.now();
  const during = [...(await sendEach(client, 8, 'during')), ...(await sendMany(client, 200, 'during-pipelined'))];
  const burstMs = Date.now() - burstStart;
  assert.equal(count(faults, /^pwrite\S* bytes=100 /), 1, 'the short write happened');
  assert.deepEqual(during.filter((o) => o.status !== AckStatus.WRITE_FAILED), [], 'no OK while the disk is full');
  assert.equal(fs.statSync(file).size, goodSize, 'cut back to the end of the last good record (the partial write too)');
  const v = await verifyLog(file);
  assert.equal(v.ok, true, `the file stays valid: ${v.reason}`);

  const writeFailures = await allReported(server, faults, 'write', /^pwrite\S* ENOSPC /);
  const s = await server.stats();
  assert.equal(s.failedRecords, during.length);
  assert.ok(s.writeErrors >= 8, `writeErrors ${s.writeErrors}`);
  assert.equal(s.ioErrors.fsync, 0);
  const err = server.errors().find((e) => e.op === 'write')!;
  assert.equal(err.code, 'ERR_MSGS_IO');
  assert.equal(err.path, file);
  assert.equal(err.errno, ENOSPC);
  assert.equal(err.syscall, 'pwrite');
  assert.equal(err.message.startsWith(`cannot write ${file}: No space left on device`), true, err.message);
  assertRateLimited(errorLines(server, 'write'), writeFailures, burstMs, 'write');
  const series = /^msgserver_io_errors_total\{op="write"\} (\d+)$/m.exec(await server.metrics());
  assert.equal(Number(series?.[1]), writeFailures, 'msgserver_io_errors_total{op="write"}');

  faults.set('');
  const after = await sendMany(client, 50, 'after');
  assert.equal(ok(after).length, 50, 'the same server takes writes again');

  await client.close();
  assert.equal(await server.stop(), 0);
  assert.equal((await verifyLog(file)).ok, true);
  assert.deepEqual(await readIds(file), ok([...before, ...during, ...after]).map((o) => o.msgId), 'exactly the OK-ACKed messages, in order');
});

test('rotation: a failing sync of the segment being closed stops the rotation, is reported, and rotation resumes after', T, async (t) => {
  const dir = path.join(tempDir(), 'segs');
  const rotateBytes = 4096;
  // fsync 'never': the only fdatasync calls on segments are the rotations' (and close's).
  const { server, faults, client } = await start(t, { port: 0, serviceThreads: 1, ackMode: 'written', file: { path: dir, rotateBytes, fsync: 'never' } });
  const segments = (): string[] => fs.readdirSync(dir).sort();

  const before = await sendEach(client, 10, 'before'); // ~1.5 KiB: no rotation yet
  assert.equal(segments().length, 1);

  faults.set(`fdatasync path=${dir}/ errno=EIO`);
  const during = await sendEach(client, 120, 'during'); // ~18 KiB: several rotations would be due
  assert.ok(count(faults, /^fdatasync EIO /) >= 1, 'the rotation tried to sync the closing segment');
  await allReported(server, faults, 'fsync', /^fdatasync EIO /);
  assert.deepEqual(segments(), ['00000000000000000001.log'], 'no new segment while the closing one cannot be synced');
  assert.equal(server.rotations().length, 0, 'no rotate event');
  const s = await server.stats();
  assert.equal(s.rotations, 0);
  assert.ok(s.ioErrors.fsync >= 1);
  const err = server.errors().find((e) => e.op === 'fsync')!;
  assert.equal(err.code, 'ERR_MSGS_IO');
  assert.equal(err.path, path.join(dir, '00000000000000000001.log'));
  assert.equal(err.errno, EIO);
  assert.equal(err.syscall, 'fdatasync');

  faults.set('');
  const after: Outcome[] = [];
  await waitFor(
    'rotation to resume',
    async () => {
      after.push(...(await sendEach(client, 5, 'after')));
      return server.rotations().length > 0;
    },
    10_000,
  );
  after.push(...(await sendEach(client, 40, 'after-rotation')));
  await client.close();
  assert.equal(await server.stop(), 0);
  assert.ok(segments().length >= 2, `rotation resumed: ${segments().join(', ')}`);
  const all = [...before, ...during, ...after];
  const v = await verifyLog(dir);
  assert.equal(v.ok, true, `${v.reason} in ${v.file}`);
  assert.deepEqual(await readIds(dir), ok(all).map((o) => o.msgId), 'every OK-ACKed message exactly once, in order (and no WRITE_FAILED one)');
});

test('a failing directory sync when a segment is created is reported as dirSync, not silent', T, async (t) => {
  const dir = path.join(tempDir(), 'segs');
  const { server, faults, client } = await start(t, { port: 0, serviceThreads: 1, ackMode: 'written', file: { path: dir, rotateBytes: 4096 } });

  const before = await sendEach(client, 5, 'before');
  faults.set(`fsync path=${dir}$ errno=EIO`); // the directory itself, not the segments in it
  const during: Outcome[] = [];
  await waitFor(
    'a segment creation to sync the directory',
    async () => {
      during.push(...(await sendEach(client, 10, 'during')));
      return count(faults, /^fsync EIO /) > 0;
    },
    10_000,
  );
  const failures = await allReported(server, faults, 'dirSync', /^fsync EIO /);
  const err = server.errors().find((e) => e.op === 'dirSync')!;
  assert.equal(err.code, 'ERR_MSGS_IO');
  assert.equal(err.errno, EIO);
  assert.equal(err.syscall, 'fsync');
  assert.ok(typeof err.path === 'string' && err.path.startsWith(dir), `path ${err.path} names the directory or the new segment`);
  assert.ok(errorLines(server, 'sync the directory of').length >= 1 || server.logs().some((l) => l.level === 'error' && l.message.includes(dir)), 'logged');
  assert.equal((await server.stats()).ioErrors.fsync, 0, 'a directory sync is not counted as a file fsync');
  assert.ok(failures >= 1);

  faults.set('');
  const after = await sendEach(client, 60, 'after');
  await client.close();
  assert.equal(await server.stop(), 0);
  const all = [...before, ...during, ...after];
  assert.equal((await verifyLog(dir)).ok, true);
  assert.deepEqual(await readIds(dir), ok(all).map((o) => o.msgId), 'every OK-ACKed message exactly once, in order');
});

test('a segment that cannot be created (open fails): reported as open, writing goes on in the old segment, rotation resumes after', T, async (t) => {
  const dir = path.join(tempDir(), 'segs');
  const { server, faults, client } = await start(t, { port: 0, serviceThreads: 1, ackMode: 'written', file: { path: dir, rotateBytes: 4096 } });
  const segments = (): string[] => fs.readdirSync(dir).sort();

  const before = await sendEach(client, 5, 'before');
  faults.set(`open path=${dir}/ errno=ENOSPC`);
  const during: Outcome[] = [];
  await waitFor(
    'a failed segment creation',
    async () => {
      during.push(...(await sendEach(client, 10, 'during')));
      return count(faults, /^open\S* ENOSPC /) > 0;
    },
    10_000,
  );
  await allReported(server, faults, 'open', /^open\S* ENOSPC /);
  assert.deepEqual(segments(), ['00000000000000000001.log'], 'still writing the first segment');
  assert.deepEqual(failed(during), [], 'written mode: the records went into the old segment');
  const err = server.errors().find((e) => e.op === 'open')!;
  assert.equal(err.code, 'ERR_MSGS_IO');
  assert.equal(err.errno, ENOSPC);
  assert.ok(err.path?.startsWith(`${dir}/`), String(err.path));

  faults.set('');
  const after: Outcome[] = [];
  await waitFor(
    'rotation to resume',
    async () => {
      after.push(...(await sendEach(client, 5, 'after')));
      return server.rotations().length > 0;
    },
    10_000,
  );
  await client.close();
  assert.equal(await server.stop(), 0);
  const all = [...before, ...during, ...after];
  assert.equal((await verifyLog(dir)).ok, true);
  assert.deepEqual(await readIds(dir), ok(all).map((o) => o.msgId), 'every OK-ACKed message exactly once, in order');
});
