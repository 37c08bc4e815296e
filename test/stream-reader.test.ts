// readStream and `msglog cat/stats --jetstream` against a real, local
// nats-server with JetStream (one child process for the whole file). Records
// are published the way the JetStream sink publishes them: one encoded record
// per message, subject <prefix>.<clientId>, header Nats-Msg-Id
// <clientId>-<msgId>. Without a nats-server binary the suite is skipped,
// unless MSGS_REQUIRE_NATS=1 (CI), where that is a failure.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';

import { connect, headers, type JetStreamClient, type JetStreamManager, type NatsConnection } from 'nats';
import { parseLogArgs } from '../dist/cli/args';
import { encodeRecord } from '../dist/format/record';
import { NatsConnectError, readStream, StreamCorruptError, StreamNotFoundError, type StreamRecord } from '../dist/read/stream-reader';
import { freePort, prng, randomBytes, tempDir } from './helpers';
import { natsServerPath, startNatsServer } from './support/nats-cluster';

// ---- the nats-server child ------------------------------------------------------

const NATS_BIN = natsServerPath();
const REQUIRED = process.env.MSGS_REQUIRE_NATS === '1';
const SKIP: string | false =
  NATS_BIN === null ? `nats-server not found (${process.env.NATS_SERVER_BIN ?? '/usr/bin, /usr/sbin, /usr/local/bin, $PATH'}); MSGS_REQUIRE_NATS=1 makes this a failure` : false;
const T = { timeout: 30_000, skip: SKIP };

if (NATS_BIN === null && REQUIRED) {
  test('nats-server is installed (MSGS_REQUIRE_NATS=1)', () => {
    assert.fail('MSGS_REQUIRE_NATS=1 but no nats-server binary was found (install it: apt-get install nats-server)');
  });
}

let stopNats: (() => Promise<void>) | null = null;
let storeDir = '';
let url = '';
let nc: NatsConnection;
let jsm: JetStreamManager;
let js: JetStreamClient;

/** Starts nats-server (test/support) and connects the test's own nats.js client. */
async function startNats(): Promise<void> {
  storeDir = tempDir('msgserver-nats-');
  const server = await startNatsServer(storeDir);
  stopNats = server.stop;
  url = server.url;
  nc = await connect({ servers: url });
  jsm = await nc.jetstreamManager();
  js = nc.jetstream();
}

if (SKIP === false && NATS_BIN !== null) {
  before(startNats);
  after(async () => {
    if (nc && !nc.isClosed()) await nc.close().catch(() => {});
    await stopNats?.();
    if (storeDir) fs.rmSync(storeDir, { recursive: true, force: true });
  });
}

// ---- publishing like the sink ---------------------------------------------------

interface Sent {
  seq: bigint;
  timeUs: bigint;
  clientId: number;
  msgId: bigint;
  name: Buffer;
  payload: Buffer;
}

async function publishRaw(stream: string, subject: string, data: Uint8Array, msgIdHeader?: string): Promise<number> {
  const h = headers();
  if (msgIdHeader !== undefined) h.set('Nats-Msg-Id', msgIdHeader);
  const ack = await js.publish(subject, data, { headers: h });
  assert.equal(ack.stream, stream);
  return ack.seq;
}

async function publishRecord(stream: string, r: Sent): Promise<number> {
  return publishRaw(stream, `msgs.${r.clientId}`, encodeRecord(r), `${r.clientId}-${r.msgId}`);
}

async function createStream(name: string): Promise<void> {
  await jsm.streams.add({ name, subjects: [`${name}.x`, ...(name === 'MAIN' ? ['msgs.>'] : [])] });
}

/** N records from two clients: names empty and not, payloads text, binary and empty. */
function makeRecords(n: number): Sent[] {
  const rand = prng(99);
  const out: Sent[] = [];
  for (let i = 1; i <= n; i++) {
    const clientId = i % 3 === 0 ? 4_000_000_000 : 17;
    const payload = i % 7 === 0 ? Buffer.alloc(0) : i % 5 === 0 ? randomBytes(rand, 1 + ((rand() * 3000) | 0)) : Buffer.from(`payload ${i} ✓`);
    out.push({
      seq: BigInt(1000 + i),
      timeUs: 1_700_000_000_000_000n + BigInt(i) * 1234n,
      clientId,
      msgId: BigInt(i) + (clientId === 17 ? 0n : (1n << 63n)),
      name: Buffer.from(i % 2 === 0 ? '' : `name-${i % 4}`),
      payload,
    });
  }
  return out;
}

async function collect(it: AsyncIterable<StreamRecord>): Promise<StreamRecord[]> {
  const out: StreamRecord[] = [];
  for await (const r of it) out.push(r);
  return out;
}

function assertRecord(got: StreamRecord, want: Sent, streamSeq: number, subject = `msgs.${want.clientId}`): void {
  assert.equal(got.streamSeq, BigInt(streamSeq));
  assert.equal(got.subject, subject);
  assert.equal(got.seq, want.seq);
  assert.equal(got.timeUs, want.timeUs);
  assert.equal(got.time.getTime(), Number(want.timeUs / 1000n));
  assert.equal(got.clientId, want.clientId);
  assert.equal(got.msgId, want.msgId);
  assert.ok(got.nameBytes.equals(want.name));
  assert.equal(got.name, want.name.toString('utf8'));
  assert.ok(got.payload.equals(want.payload), `payload of stream seq ${streamSeq}`);
  assert.equal(got.offset, 0);
}

async function consumerCount(stream: string): Promise<number> {
  return (await jsm.streams.info(stream)).state.consumer_count;
}

const N = 60;
let sent: Sent[] = [];

async function mainStream(): Promise<void> {
  if (sent.length > 0) return;
  await createStream('MAIN');
  sent = makeRecords(N);
  for (let i = 0; i < N; i++) assert.equal(await publishRecord('MAIN', sent[i]), i + 1);
}

// ---- readStream -----------------------------------------------------------------

test('readStream returns every record exactly, in stream order, and leaves no consumer behind', T, async () => {
  await mainStream();
  const got = await collect(readStream({ servers: url, stream: 'MAIN' }));
  assert.equal(got.length, N);
  for (let i = 0; i < N; i++) assertRecord(got[i], sent[i], i + 1);
  assert.equal(await consumerCount('MAIN'), 0, 'the ordered consumer was deleted');
  // A list of servers (one unreachable) works too.
  const dead = `nats://127.0.0.1:${await freePort()}`;
  const again = await collect(readStream({ servers: [url, dead], stream: 'MAIN' }));
  assert.equal(again.length, N);
});

test('readStream fromSeq (number or bigint) starts at that stream sequence; past the end yields nothing', T, async () => {
  await mainStream();
  const from = await collect(readStream({ servers: url, stream: 'MAIN', fromSeq: 41 }));
  assert.deepEqual(from.map((r) => r.streamSeq), Array.from({ length: N - 40 }, (_, i) => BigInt(41 + i)));
  for (const r of from) assertRecord(r, sent[Number(r.streamSeq) - 1], Number(r.streamSeq));
  const big = await collect(readStream({ servers: url, stream: 'MAIN', fromSeq: BigInt(N) }));
  assert.deepEqual(big.map((r) => r.streamSeq), [BigInt(N)]);
  assert.deepEqual(await collect(readStream({ servers: url, stream: 'MAIN', fromSeq: N + 1 })), []);
  for (const bad of [0, -1, 1.5, 0n, 2n ** 60n]) {
    await assert.rejects(collect(readStream({ servers: url, stream: 'MAIN', fromSeq: bad })), RangeError, `fromSeq ${bad}`);
  }
  await assert.rejects(collect(readStream({ servers: [], stream: 'MAIN' })), /servers must be one or more/);
  await assert.rejects(collect(readStream({ servers: url, stream: '' })), /stream must be a non-empty/);
});

test('without follow, reading stops at the last message as of the start; with follow, new ones arrive', T, async () => {
  await createStream('GROW');
  const recs = makeRecords(5).map((r) => ({ ...r, clientId: 1 }));
  const pub = (r: Sent): Promise<number> => publishRaw('GROW', 'GROW.x', encodeRecord(r), `${r.clientId}-${r.msgId}`);
  for (const r of recs.slice(0, 3)) await pub(r);
  const seen: bigint[] = [];
  for await (const r of readStream({ servers: url, stream: 'GROW' })) {
    seen.push(r.streamSeq);
    if (r.streamSeq === 1n) await pub(recs[3]); // appended after the start: not read
  }
  assert.deepEqual(seen, [1n, 2n, 3n]);

  const followed: bigint[] = [];
  for await (const r of readStream({ servers: url, stream: 'GROW', fromSeq: 3, follow: true })) {
    followed.push(r.streamSeq);
    assert.equal(r.subject, 'GROW.x');
    if (r.streamSeq === 4n) await pub(recs[4]); // published while following: arrives
    if (r.streamSeq === 5n) break;
  }
  assert.deepEqual(followed, [3n, 4n, 5n]);
  assert.equal(await consumerCount('GROW'), 0);
});

test('an empty stream, and deleted messages at the end, end the iteration instead of waiting', T, async () => {
  await createStream('EMPTY');
  assert.deepEqual(await collect(readStream({ servers: url, stream: 'EMPTY' })), []);
  await createStream('HOLES');
  const recs = makeRecords(4);
  for (const r of recs) await publishRaw('HOLES', 'HOLES.x', encodeRecord(r));
  await jsm.streams.deleteMessage('HOLES', 2);
  await jsm.streams.deleteMessage('HOLES', 4); // the last one
  assert.deepEqual((await collect(readStream({ servers: url, stream: 'HOLES' }))).map((r) => r.streamSeq), [1n, 3n]);
  assert.deepEqual(await collect(readStream({ servers: url, stream: 'HOLES', fromSeq: 4 })), []);
  assert.equal(await consumerCount('HOLES'), 0);
});

test('a message that is not exactly one valid record throws StreamCorruptError naming the stream and sequence', T, async () => {
  await createStream('BAD');
  const [good1, good2, good3] = makeRecords(3);
  const crcBroken = encodeRecord(good3);
  crcBroken[crcBroken.length - 1] ^= 0x01;
  await publishRaw('BAD', 'BAD.x', encodeRecord(good1)); // 1
  await publishRaw('BAD', 'BAD.x', randomBytes(prng(7), 64)); // 2: random bytes
  await publishRaw('BAD', 'BAD.x', Buffer.concat([encodeRecord(good2), Buffer.from([0])])); // 3: a trailing byte
  await publishRaw('BAD', 'BAD.x', crcBroken); // 4: bad CRC
  await publishRaw('BAD', 'BAD.x', Buffer.alloc(0)); // 5: empty
  await publishRaw('BAD', 'BAD.x', encodeRecord(good2).subarray(0, 20)); // 6: cut short

  const yielded: StreamRecord[] = [];
  await assert.rejects(
    (async () => {
      for await (const r of readStream({ servers: url, stream: 'BAD' })) yielded.push(r);
    })(),
    (err: unknown) => {
      assert.ok(err instanceof StreamCorruptError, String(err));
      assert.equal(err.stream, 'BAD');
      assert.equal(err.streamSeq, 2n);
      assert.match(err.message, /^stream BAD: message at stream sequence 2 is not one valid record: /);
      return true;
    },
  );
  assert.equal(yielded.length, 1, 'the good record before the damage was yielded');
  assertRecord(yielded[0], good1, 1, 'BAD.x');
  const reasonAt = async (seq: number): Promise<string> => {
    try {
      await collect(readStream({ servers: url, stream: 'BAD', fromSeq: seq }));
    } catch (err) {
      assert.ok(err instanceof StreamCorruptError);
      assert.equal(err.streamSeq, BigInt(seq));
      return err.reason;
    }
    return assert.fail(`no error at stream seq ${seq}`);
  };
  assert.match(await reasonAt(3), /^1 bytes after the record/);
  assert.match(await reasonAt(4), /^CRC mismatch/);
  assert.match(await reasonAt(5), /^truncated record \(0 bytes\)/);
  assert.match(await reasonAt(6), /^truncated record \(20 bytes\)/);
  assert.equal(await consumerCount('BAD'), 0, 'an error also deletes the consumer');
});

test('a missing stream throws StreamNotFoundError naming it; an unreachable server NatsConnectError', T, async () => {
  await assert.rejects(collect(readStream({ servers: url, stream: 'NO_SUCH' })), (err: unknown) => {
    assert.ok(err instanceof StreamNotFoundError, String(err));
    assert.equal(err.stream, 'NO_SUCH');
    assert.match(err.message, /stream 'NO_SUCH' not found on nats:\/\/127\.0\.0\.1:\d+/);
    return true;
  });
  const dead = `nats://127.0.0.1:${await freePort()}`;
  await assert.rejects(collect(readStream({ servers: dead, stream: 'MAIN', timeoutMs: 2_000 })), (err: unknown) => {
    assert.ok(err instanceof NatsConnectError, String(err));
    assert.ok(err.message.startsWith(`cannot connect to NATS at ${dead}: `), err.message);
    return true;
  });
});

// The iterator must close its NATS connection however the loop ends: a
// process that breaks out early, reads to the end, or hits an error must exit
// by itself (an open connection would keep it alive).
test('break, the end and an error all close the connection: a process using readStream exits by itself', T, async () => {
  await mainStream();
  await createStream('BAD2');
  await publishRaw('BAD2', 'BAD2.x', Buffer.from('not a record at all, definitely'));
  const script = `
    const { readStream } = require(${JSON.stringify(path.resolve(__dirname, '../dist/read/stream-reader.js'))});
    (async () => {
      let n = 0;
      for await (const r of readStream({ servers: process.argv[1], stream: 'MAIN' })) if (++n === 2) break;
      let all = 0;
      for await (const r of readStream({ servers: process.argv[1], stream: 'MAIN' })) all++;
      let failed = '';
      try { for await (const r of readStream({ servers: process.argv[1], stream: 'BAD2' })) {} } catch (e) { failed = e.name; }
      console.log(JSON.stringify({ n, all, failed }));
    })();
  `;
  const proc = spawn(process.execPath, ['-e', script, url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => proc.once('exit', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  assert.equal(signal, null, `the process did not exit by itself (a NATS connection left open?); output: ${stdout}${stderr}`);
  assert.equal(code, 0, stderr);
  assert.deepEqual(JSON.parse(stdout), { n: 2, all: N, failed: 'StreamCorruptError' });
  assert.equal(await consumerCount('MAIN'), 0);
});

// ---- msglog --jetstream -----------------------------------------------------------

const MSGLOG = path.resolve(__dirname, '../dist/cli/msglog.js');

function msglog(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [MSGLOG, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    proc.on('error', reject);
    proc.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function expectedJson(r: Sent, streamSeq: number): string {
  const out: Record<string, unknown> = {
    streamSeq: String(streamSeq),
    subject: `msgs.${r.clientId}`,
    seq: r.seq.toString(),
    time: new Date(Number(r.timeUs / 1000n)).toISOString(),
    clientId: r.clientId,
    msgId: r.msgId.toString(),
    name: r.name.toString('utf8'),
    payload: r.payload.toString('utf8'),
  };
  if (!r.payload.equals(Buffer.from(r.payload.toString('utf8'), 'utf8'))) out.payloadBase64 = r.payload.toString('base64');
  return JSON.stringify(out);
}

test('msglog cat --jetstream prints the stream as JSON lines with streamSeq and subject', T, async () => {
  await mainStream();
  const r = await msglog(['cat', '--jetstream', url, '--stream', 'MAIN']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, sent.map((s, i) => expectedJson(s, i + 1) + '\n').join(''));
  const from = await msglog(['cat', '--jetstream', `${url},nats://127.0.0.1:1`, '--stream', 'MAIN', '--from-seq', String(N - 1), '--json']);
  assert.equal(from.code, 0, from.stderr);
  assert.deepEqual(from.stdout.trim().split('\n'), [expectedJson(sent[N - 2], N - 1), expectedJson(sent[N - 1], N)]);
  // --format text: exactly the text log's line (as for a file), no stream position.
  const text = await msglog(['cat', '--jetstream', url, '--stream', 'MAIN', '--from-seq', '1', '--format', 'text']);
  assert.equal(text.code, 0, text.stderr);
  const first = text.stdout.split('\n')[0];
  assert.equal(first, `${sent[0].clientId} ${sent[0].msgId} ${sent[0].name.toString()} ${sent[0].payload.toString()}`);
});

test('msglog stats --jetstream counts the stream; errors exit 1 (corrupt) and 3 (no stream, no server)', T, async () => {
  await mainStream();
  const s = await msglog(['stats', '--jetstream', url, '--stream', 'MAIN']);
  assert.equal(s.code, 0, s.stderr);
  const lines = s.stdout.trim().split('\n');
  assert.equal(lines[0], `stream: MAIN (${url})`);
  assert.equal(lines[1], 'status: OK');
  assert.equal(lines[2], `records: ${N}`);
  const bytes = sent.reduce((a, r) => a + encodeRecord(r).length, 0);
  assert.equal(lines[3], `bytes: ${bytes}`);
  assert.equal(lines[4], `stream seq: 1..${N}`);
  assert.equal(lines[5], `seq: 1001..${1000 + N}`);
  assert.match(lines[7], /^clients: 2 \(most messages: 17: 40, 4000000000: 20\)$/);

  await createStream('BAD3');
  await publishRaw('BAD3', 'BAD3.x', encodeRecord(sent[0]));
  await publishRaw('BAD3', 'BAD3.x', Buffer.from('garbage'));
  const bad = await msglog(['stats', '--jetstream', url, '--stream', 'BAD3']);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /status: CORRUPT at stream seq 2: truncated record \(7 bytes\)\nrecords: 1\n/);
  const badCat = await msglog(['cat', '--jetstream', url, '--stream', 'BAD3']);
  assert.equal(badCat.code, 1);
  assert.equal(badCat.stdout, expectedJson(sent[0], 1).replace('"subject":"msgs.17"', '"subject":"BAD3.x"') + '\n');
  assert.match(badCat.stderr, /msglog: stream BAD3: message at stream sequence 2 is not one valid record: truncated record/);

  const missing = await msglog(['cat', '--jetstream', url, '--stream', 'NOPE']);
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /stream 'NOPE' not found/);
  const noServer = await msglog(['stats', '--jetstream', `nats://127.0.0.1:${await freePort()}`, '--stream', 'MAIN']);
  assert.equal(noServer.code, 3);
  assert.match(noServer.stderr, /cannot connect to NATS at /);
});

test('msglog --jetstream arguments parse into the stream variants', () => {
  assert.deepEqual(parseLogArgs(['cat', '--jetstream', 'nats://a:4222, b:4222', '--stream', 'S'], {}), {
    help: false,
    command: 'cat',
    jetstream: ['nats://a:4222', 'b:4222'],
    stream: 'S',
    nats: {},
    format: 'json',
    fromSeq: undefined,
    follow: false,
  });
  assert.deepEqual(parseLogArgs(['cat', '--jetstream=x', '--stream=S', '--from-seq', '7', '-f', '--format', 'text'], {}), {
    help: false,
    command: 'cat',
    jetstream: ['x'],
    stream: 'S',
    nats: {},
    format: 'text',
    fromSeq: 7n,
    follow: true,
  });
  assert.deepEqual(parseLogArgs(['stats', '--jetstream', 'x', '--stream', 'S'], {}), { help: false, command: 'stats', jetstream: ['x'], stream: 'S', nats: {} });
  // --json works for files too; file variants are unchanged.
  assert.deepEqual(parseLogArgs(['cat', 'f.log', '--json']), { help: false, command: 'cat', file: 'f.log', format: 'json', allowTornTail: false, fromSeq: undefined });
});

test('msglog --jetstream argument errors exit 2', { timeout: 30_000 }, async () => {
  for (const [args, re] of [
    [['cat', '--jetstream', 'x'], /--jetstream needs --stream/],
    [['cat', '--stream', 's'], /--stream needs --jetstream/],
    [['cat', 'file.log', '--jetstream', 'x', '--stream', 's'], /reads a stream, not a file/],
    [['verify', '--jetstream', 'x', '--stream', 's'], /apply to msglog cat and stats only/],
    [['cat', '--jetstream', 'x', '--stream', 's', '--allow-torn-tail'], /--allow-torn-tail does not apply/],
    [['stats', '--jetstream', 'x', '--stream', 's', '--from-seq', '3'], /--from-seq does not apply/],
    [['cat', '--jetstream', 'x', '--stream', 's', '--from-seq', '0'], /--from-seq must be a stream sequence/],
    [['cat', '--jetstream', 'a,,b', '--stream', 's'], /one or more NATS URLs/],
    [['cat', '--jetstream', 'x', '--stream', 's', '--json', '--format', 'text'], /contradict/],
  ] as const) {
    const r = await msglog([...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});
