// msgbench smoke test: the native load generator against a real
// MessageServer for about a second; every ACK arrived and matched, the result
// has its fields, and the server saw exactly the messages msgbench counted.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';

import { runLoad, loadSucceeded, type LoadProgress } from '../dist/bench/bench';
import { MessageServer } from '../dist/index';
import { tempDir } from './helpers';

test('msgbench v1: 8 connections x window 16, payload 0-2000 B, ~1.2 s: every ACK matched', async (t) => {
  const dir = tempDir();
  const server = new MessageServer({ port: 0, file: { path: path.join(dir, 'messages.log') } });
  const { port } = await server.listen();
  t.after(() => server.close());

  const progress: LoadProgress[] = [];
  const r = await runLoad({
    port,
    connections: 8,
    window: 16,
    durationMs: 1200,
    payload: [0, 2000],
    threads: 2,
    progressIntervalMs: 200,
    onProgress: (p) => progress.push(p),
  });
  assert.ok(loadSucceeded(r), `errors: ${JSON.stringify(r.errorsByKind)} ${r.errorSamples.join('; ')}`);
  assert.ok(r.messagesAcked > 100, `only ${r.messagesAcked} messages`);
  assert.equal(r.messagesAcked, r.messagesSent);
  assert.equal(r.connectionsOk, 8);
  assert.equal(r.latency.count, r.messagesAcked);
  for (const k of ['p50Us', 'p99Us', 'p999Us', 'maxUs'] as const) assert.ok(r.latency[k] > 0, `latency.${k}`);
  assert.ok(r.latency.p50Us <= r.latency.p99Us && r.latency.p99Us <= r.latency.p999Us && r.latency.p999Us <= r.latency.maxUs);
  assert.ok(r.msgsPerSec > 0 && r.wireMBPerSec > 0 && r.elapsedMs >= 1200);
  assert.ok(r.ackFrames >= 1 && r.ackFrames <= r.messagesAcked);
  assert.ok(progress.length >= 2, 'progress was reported');
  // What the server counted is what msgbench counted.
  const s = server.stats();
  assert.equal(s.messagesIn, r.messagesAcked);
  assert.equal(s.acks.OK, r.messagesAcked);
});

test('msgbench: fixed message count; ACKs with an error status are counted as errors', async (t) => {
  const dir = tempDir();
  const server = new MessageServer({ port: 0, file: { path: path.join(dir, 'messages.log') }, limits: { maxMessageBytes: 1000 } });
  const { port } = await server.listen();
  t.after(() => server.close());
  const ok = await runLoad({ port, connections: 3, messages: 500, window: 1, payload: 1000 });
  assert.ok(loadSucceeded(ok));
  assert.equal(ok.messagesAcked, 1500);
  // Over maxMessageBytes: the server ACKs with TOO_LARGE; msgbench must not count that as success.
  const bad = await runLoad({ port, connections: 1, messages: 10, window: 4, payload: 1001 });
  assert.equal(bad.errorsByKind.badStatus, 10);
  assert.equal(bad.messagesAcked, 0);
  assert.equal(loadSucceeded(bad), false);
});

test('msgbench CLI: --help; nothing listening: exit 3 and the --json result says why', () => {
  const cli = path.join(__dirname, '..', 'dist', 'cli', 'msgbench.js');
  assert.match(execFileSync(process.execPath, [cli, '--help'], { encoding: 'utf8' }), /usage: msgbench/);
  // No server on this port: connect errors, exit status 3.
  try {
    execFileSync(process.execPath, [cli, '--port', '1', '-n', '1', '-q', '--json'], { encoding: 'utf8', stdio: 'pipe' });
    assert.fail('expected a non-zero exit');
  } catch (err) {
    const e = err as { status: number; stdout: string };
    assert.equal(e.status, 3);
    assert.equal(JSON.parse(e.stdout).result.errorsByKind.connect, 1);
  }
});

test('msgbench legacy: 4 connections x window 8 against protocol legacy (skipped until the server has it)', async (t) => {
  const dir = tempDir();
  let server: MessageServer;
  try {
    server = new MessageServer({ port: 0, protocol: 'legacy', file: { path: path.join(dir, 'messages.log') } });
  } catch (err) {
    if (/not supported by this build yet/.test((err as Error).message)) return t.skip('server lacks legacy');
    throw err;
  }
  const { port } = await server.listen();
  t.after(() => server.close());
  const r = await runLoad({ port, protocol: 'legacy', connections: 4, window: 8, messages: 2000, payload: [0, 1023] });
  assert.ok(loadSucceeded(r), `errors: ${JSON.stringify(r.errorsByKind)} ${r.errorSamples.join('; ')}`);
  assert.equal(r.messagesAcked, 8000);
  assert.equal(r.wireBytesSent, 8000 * 1160);
  assert.equal(server.stats().messagesIn, 8000);
});
