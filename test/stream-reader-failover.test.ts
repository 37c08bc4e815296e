// readStream through node loss: a follower (follow: true) reads a
// 3-replica stream while msgserver writes to it and the stream's leader is
// SIGKILLed; it delivers every stream sequence once, in order, with no gap,
// and raises nothing. Then a plain read of the whole stream after the node
// is back, and `msglog cat --jetstream -f` through a second failover.
//
// Skips when nats-server is missing, unless MSGS_REQUIRE_NATS=1 (CI).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { test } from 'node:test';
import { connect } from 'nats';

import { MessageClient, MessageServer } from '../dist/index';
import { readStream, StreamReadError } from '../dist/read/stream-reader';
import { tempDir } from './helpers';
import { natsServerPath, startNatsCluster, startNatsServer, streamLeader } from './support/nats-cluster';

const skip = natsServerPath() === null && process.env.MSGS_REQUIRE_NATS !== '1' ? 'nats-server is not installed' : false;
const TOTAL = 3000;


test('a following readStream and msglog cat -f ride out the stream leader SIGKILLed: every sequence once, in order', { skip, timeout: 120_000 }, async (t) => {
  const dir = tempDir('msgserver-readfail-');
  const cluster = await startNatsCluster({ nodes: 3 });
  const server = new MessageServer({
    port: 0,
    serviceThreads: 1,
    ackMode: 'replicated',
    file: { enabled: false },
    jetstream: { servers: cluster.urls, stream: 'FOLLOW', subjectPrefix: 'follow', replicas: 3, ackTimeoutMs: 1000, retryMs: 20_000 },
  });
  let client: MessageClient | undefined;
  let cli: ChildProcess | undefined;
  let cliErr = '';
  t.after(async () => {
    if (cli && cli.exitCode === null) cli.kill('SIGKILL');
    await client?.close().catch(() => {});
    await server.close();
    await cluster.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const { port } = await server.listen({ waitForSink: true });
  const t0 = Date.now();
  const mark = (what: string): void => t.diagnostic(`${what} at ${Date.now() - t0} ms`);
  cli = spawn(process.execPath, [path.join(__dirname, '..', 'dist', 'cli', 'msglog.js'), 'cat', '--jetstream', cluster.urls.join(','), '--stream', 'FOLLOW', '-f'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cli.stderr!.on('data', (d) => (cliErr += d));
  client = await MessageClient.connect({ port, clientId: 31, window: 128 });

  // The stream exists (ready): start the follower before the load.
  const seqs: bigint[] = [];
  const follower = (async () => {
    for await (const r of readStream({ servers: cluster.urls, stream: 'FOLLOW', follow: true, timeoutMs: 2000, retryMs: 30_000 })) {
      seqs.push(r.streamSeq);
      if (seqs.length === TOTAL) break;
    }
  })();
  const cliSeqs: number[] = [];
  const cliDone = new Promise<void>((resolve) => {
    readline.createInterface({ input: cli!.stdout! }).on('line', (line) => {
      cliSeqs.push(Number((JSON.parse(line) as { streamSeq: string | number }).streamSeq));
      if (cliSeqs.length === TOTAL) resolve();
    });
  });

  let killed = false;
  const sends: Array<Promise<unknown>> = [];
  for (let i = 0; i < TOTAL; i++) {
    sends.push(client.send(`f-${i}`, { msgId: BigInt(i + 1) }));
    if (i === TOTAL / 3 && !killed) {
      killed = true;
      await Promise.all(sends); // the followers have something to read before the fault
      const k = await streamLeader(cluster, 'FOLLOW');
      await cluster.kill(k);
      mark(`leader n${k} killed`);
      void cluster.restart(k).catch(() => {});
    }
  }
  await Promise.all(sends);
  mark('all sends answered');
  await follower;
  mark('readStream follower done');
  assert.equal(seqs.length, TOTAL);
  seqs.forEach((s, i) => assert.equal(s, BigInt(i + 1), `sequence ${i + 1} delivered once, in order`));
  await cliDone;
  mark('msglog cat -f done');
  assert.deepEqual(cliSeqs, Array.from({ length: TOTAL }, (_, i) => i + 1), `msglog cat -f: ${cliErr}`);
  await cluster.waitHealthy(30_000);

  let n = 0;
  for await (const r of readStream({ servers: cluster.urls, stream: 'FOLLOW' })) assert.equal(r.streamSeq, BigInt(++n));
  assert.equal(n, TOTAL);
});

test('readStream: a stream that stays unreachable raises StreamReadError with a code and the cause after retryMs', { skip, timeout: 60_000 }, async (t) => {
  const dir = tempDir('msgserver-readlost-');
  const nats = await startNatsServer(dir);
  t.after(async () => {
    await nats.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const nc = await connect({ servers: nats.url });
  await (await nc.jetstreamManager()).streams.add({ name: 'LOST', subjects: ['lost.>'] });
  await nc.close();
  // Following an empty stream: connected and waiting when its only node dies.
  const it = readStream({ servers: nats.url, stream: 'LOST', follow: true, timeoutMs: 500, retryMs: 1500 });
  const first = it.next();
  await new Promise((r) => setTimeout(r, 1000));
  nats.proc.kill('SIGKILL');
  const t0 = Date.now();
  await assert.rejects(first, (err: unknown) => {
    assert.ok(err instanceof StreamReadError, String(err));
    assert.equal(err.code, 'ERR_MSGS_STREAM_READ');
    assert.ok(err.cause, 'the cause is kept');
    assert.match(err.message, /did not recover within 1500 ms/);
    return true;
  });
  assert.ok(Date.now() - t0 < 20_000);
});
