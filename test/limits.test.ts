// Each limit fires under a test that provokes it, while a well-behaved client
// on the same server keeps getting ACKs with no loss.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';

import { MessageClient, MessageServer, readLog, type ServerOptions } from '../dist/index';
import { encodeHello, ErrCode } from '../dist/format/codec';
import { rawExchange, tempDir } from './helpers';

/** A server plus a good client that sends steadily until stopped; stop() checks it lost nothing. */
async function withGoodClient(options: ServerOptions, t: { after: (fn: () => unknown) => void }) {
  const dir = tempDir();
  const file = path.join(dir, 'limits.log');
  const server = new MessageServer({ port: 0, serviceThreads: 2, ...options, file: { path: file, ...options.file } });
  const { port } = await server.listen();
  t.after(() => server.close());
  const good = await MessageClient.connect({ firstMsgId: 1, port, clientId: 4242, window: 8 });
  let running = true;
  let sent = 0;
  const loop = (async () => {
    while (running) {
      const r = await good.send(`steady ${++sent}`);
      assert.equal(r.statusName, 'OK');
    }
  })();
  const stop = async (): Promise<void> => {
    running = false;
    await loop;
    await good.close();
    await server.close();
    let n = 0;
    for await (const r of readLog(file)) if (r.clientId === 4242) assert.equal(r.msgId, BigInt(++n));
    assert.equal(n, sent, 'the good client lost nothing');
    assert.ok(sent > 0);
  };
  return { server, port, stop };
}

function lastErr(frames: Array<{ type: string; code?: number }>): number | undefined {
  const f = frames.at(-1);
  return f?.type === 'err' ? f.code : undefined;
}

test('handshake timeout: no complete HELLO in time -> ERR HANDSHAKE_TIMEOUT', async (t) => {
  const { server, port, stop } = await withGoodClient({ limits: { handshakeTimeoutMs: 300 } }, t);
  const r = await rawExchange(port, [encodeHello(1).subarray(0, 7)]);
  assert.equal(r.closed, true);
  assert.equal(lastErr(r.frames), ErrCode.HANDSHAKE_TIMEOUT);
  assert.equal(server.stats().errors.HANDSHAKE_TIMEOUT, 1);
  await stop();
});

test('idle timeout: no bytes for idleTimeoutMs -> ERR IDLE_TIMEOUT', async (t) => {
  const { server, port, stop } = await withGoodClient({ limits: { idleTimeoutMs: 400 } }, t);
  const r = await rawExchange(port, [encodeHello(2)]);
  assert.equal(r.helloOk, true);
  assert.equal(lastErr(r.frames), ErrCode.IDLE_TIMEOUT);
  assert.equal(server.stats().errors.IDLE_TIMEOUT, 1, 'the steady client is never idle');
  await stop();
});

test('slow frame: a frame started but not finished in time -> ERR SLOW_FRAME', async (t) => {
  const { server, port, stop } = await withGoodClient({ limits: { frameTimeoutMs: 300, idleTimeoutMs: 0 } }, t);
  const partial = Buffer.from([0, 0, 0, 20, 0x01, 0]); // a MSG of 20 bytes, 2 of them sent
  const r = await rawExchange(port, [encodeHello(3), partial]);
  assert.equal(lastErr(r.frames), ErrCode.SLOW_FRAME);
  assert.equal(server.stats().errors.SLOW_FRAME, 1);
  await stop();
});

test('maxInflightBytesPerConnection: a flooding client is paused until its ACKs are out, nothing lost', async (t) => {
  const { server, port, stop } = await withGoodClient(
    { ackMode: 'durable', file: { fsync: 'batch' }, limits: { maxInflightBytesPerConnection: 16 * 1024 } },
    t,
  );
  const flood = await MessageClient.connect({ firstMsgId: 1, port, clientId: 7, window: 4096 });
  const acks = await Promise.all(Array.from({ length: 4000 }, (_, i) => flood.send(Buffer.alloc(1024, i % 256))));
  assert.ok(acks.every((a) => a.statusName === 'OK'));
  assert.ok(server.stats().inflightPauses > 0, 'the limit fired');
  await flood.close();
  await stop();
});

test('accept errors (EMFILE): accepting pauses instead of spinning, is logged once, and recovers', async () => {
  const child = path.join(__dirname, 'fixtures', 'server-child.js');
  const dir = tempDir();
  const opts = JSON.stringify({ port: 0, serviceThreads: 1, file: { path: path.join(dir, 'emfile.log') } });
  const proc = spawn('prlimit', ['--nofile=64:64', '--', process.execPath, child, opts], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Array<Record<string, any>> = [];
  let port = 0;
  const waiters: Array<() => void> = [];
  let buf = '';
  proc.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const o = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      lines.push(o);
      if (o.listening) port = o.listening;
      waiters.splice(0).forEach((w) => w());
    }
  });
  const next = (pred: (o: Record<string, any>) => boolean): Promise<Record<string, any>> =>
    new Promise((resolve) => {
      const check = (): void => {
        const hit = lines.find(pred);
        if (hit) resolve(hit);
        else waiters.push(check);
      };
      check();
    });
  try {
    await next((o) => o.listening);
    const good = await MessageClient.connect({ firstMsgId: 1, port, clientId: 1 });
    // Open raw connections until the server runs out of descriptors.
    const socks: net.Socket[] = [];
    for (let i = 0; i < 80; i++) {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      socks.push(s);
    }
    const logged = await next((o) => o.log && /accept failed: Too many open files; pausing accepts/.test(o.log.message));
    assert.equal(logged.log.level, 'error');
    // The established client is still served while accepts are paused.
    assert.equal((await good.send('still served')).statusName, 'OK');
    // No busy loop: at most one accept error per 100 ms pause, per waiting connection burst.
    proc.kill('SIGUSR2');
    const s1 = (await next((o) => o.stats)).stats;
    lines.length = 0;
    await new Promise((r) => setTimeout(r, 500)); // a time window to count errors in, not a synchronisation
    proc.kill('SIGUSR2');
    const s2 = (await next((o) => o.stats)).stats;
    assert.ok(s2.acceptErrors - s1.acceptErrors <= 20, `${s2.acceptErrors - s1.acceptErrors} accept errors in 500 ms`);
    // Free descriptors: waiting connections get in.
    for (const s of socks) s.destroy();
    const later = await MessageClient.connect({ firstMsgId: 1, port, clientId: 2 });
    assert.equal((await later.send('after the storm')).statusName, 'OK');
    await later.close();
    await good.close();
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
});
