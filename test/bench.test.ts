// msgbench smoke test: the native load generator against a real
// MessageServer for about a second; every ACK arrived and matched, the result
// has its fields, and the server saw exactly the messages msgbench counted.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
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

// ---- the bench runner's parts (bench/*.js) ------------------------------------

const BENCH = path.join(__dirname, '..', 'bench');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { lineChart } = require(path.join(BENCH, 'svg.js')) as { lineChart: (o: object) => string };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { ServerProc } = require(path.join(BENCH, 'server-proc.js')) as {
  ServerProc: new (name: string, cmd: string[], o?: object) => {
    start(): Promise<number>;
    stats(): Promise<unknown>;
    stop(): Promise<void>;
    cpuSeconds(): number;
    died: string | null;
    exited: Promise<unknown>;
  };
};

/** Well-formed XML, checked without a parser dependency: tags nest, attributes are quoted, text holds no raw < or bare &. */
function assertWellFormed(xml: string): void {
  const stack: string[] = [];
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<|&(?!(?:amp|lt|gt|quot|apos);)/g;
  let m: RegExpExecArray | null;
  let last = 0;
  let roots = 0;
  while ((m = token.exec(xml))) {
    assert.ok(m[2], `stray '${m[0]}' at ${m.index}: ${xml.slice(m.index, m.index + 40)}`);
    assert.ok(stack.length > 0 || xml.slice(last, m.index).trim() === '', 'text outside the root element');
    last = token.lastIndex;
    if (m[1]) assert.equal(stack.pop(), m[2], `</${m[2]}> closes the wrong element`);
    else if (!m[4]) {
      if (stack.length === 0) roots++;
      stack.push(m[2]);
    } else if (stack.length === 0) roots++;
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  assert.equal(roots, 1, 'one root element');
  assert.equal(xml.slice(last).trim(), '');
}

test('bench/svg.js: a line chart is one well-formed <svg>, text escaped, unusable points left out', () => {
  const svg = lineChart({
    title: 'a <b> & "c"',
    xLabel: 'connections',
    yLabel: 'msgs/s',
    xLog: true,
    yLog: true,
    series: [
      { name: 'msgserver', points: [[1, 1000], [16, 20000], [256, 300000], [10000, 250000]] },
      { name: 'ceiling & co', points: [[1, 900], [16, NaN], [0, 5], [2048, 280000]] },
      { name: 'empty', points: [] },
    ],
  });
  assertWellFormed(svg);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.ok(svg.includes('a &lt;b&gt; &amp; &quot;c&quot;'));
  assert.ok(svg.includes('ceiling &amp; co'));
  assert.equal((svg.match(/<circle /g) || []).length, 4 + 2, 'NaN and x = 0 on a log axis are dropped');
  assert.equal((svg.match(/<polyline /g) || []).length, 2);
  assert.ok(!/NaN|Infinity|undefined/.test(svg));
  // A linear chart with fixed ticks is well-formed too.
  const lin = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', xTicks: [[0.3, 'p50'], [2, 'p99']], series: [{ name: 's', points: [[0.3, 10], [2, 40]] }] });
  assertWellFormed(lin);
  assert.ok(lin.includes('>p99<'));
});

test('bench/server-proc.js: a server that dies after listening does not hang the runner', async () => {
  // Listens, then exits on its first stats request without answering it.
  const script = "process.stdout.write('fake listening on 127.0.0.1:1\\n'); process.stdin.on('data', () => process.exit(7));";
  const p = new ServerProc('fake', [process.execPath, '-e', script]);
  assert.equal(await p.start(), 1);
  assert.ok(p.cpuSeconds() >= 0);
  const t0 = Date.now();
  assert.equal(await p.stats(), null, 'the pending stats() resolves with null');
  assert.ok(Date.now() - t0 < 10000);
  await p.exited;
  assert.match(String(p.died), /fake exited \(7\) after listening/);
  assert.equal(await p.stats(), null, 'later stats() resolve at once');
  assert.ok(Number.isNaN(p.cpuSeconds()));
  await p.stop();
  // One that dies before listening: start() rejects with why.
  const q = new ServerProc('early', [process.execPath, '-e', "process.stderr.write('boom'); process.exit(3)"]);
  await assert.rejects(q.start(), /early exited \(3\) before listening: boom/);
});

test('bench/ceiling.c --file (the written ceiling): every byte received is in its file before the ACKs', async (t) => {
  const dir = tempDir();
  const bin = path.join(dir, 'ceiling');
  execFileSync(process.env.CC || 'cc', ['-O2', '-o', bin, path.join(BENCH, 'ceiling.c'), '-lpthread']);
  const file = path.join(dir, 'ceiling.log');
  const p = new ServerProc('written ceiling', [bin, '--port', '0', '--file', file]);
  const port = await p.start();
  t.after(() => p.stop());
  const r = await runLoad({ port, connections: 4, window: 8, messages: 500, payload: 300 });
  assert.ok(loadSucceeded(r), r.errorSamples.join('; '));
  assert.equal(r.messagesAcked, 2000);
  // ACKed means written: the file already holds every byte sent (HELLOs included).
  assert.equal(fs.statSync(file).size, r.wireBytesSent);
});

test('the listening socket keeps its backlog (min of 4096 and net.core.somaxconn), not libevent\'s default 128', async (t) => {
  const server = new MessageServer({ port: 0, file: { path: path.join(tempDir(), 'messages.log') } });
  const { port } = await server.listen();
  t.after(() => server.close());
  let out: string;
  try {
    out = execFileSync('ss', ['-lnt', `sport = :${port}`], { encoding: 'utf8' });
  } catch {
    return t.skip('ss (iproute2) is not installed');
  }
  // For a listening socket, ss shows the backlog as Send-Q.
  const line = out.split('\n').find((l) => l.startsWith('LISTEN'));
  assert.ok(line, out);
  const backlog = Number(line.trim().split(/\s+/)[2]);
  const somaxconn = Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
  assert.equal(backlog, Math.min(4096, somaxconn));
});

test('bench/run.js without nats-server: the JetStream rows are skipped with the reason, and the run succeeds', () => {
  const dir = tempDir();
  const out = path.join(dir, 'B.md');
  const log = execFileSync(process.execPath, [path.join(BENCH, 'run.js'), '--quick', '--only', 'jetstream', '--out', out], {
    encoding: 'utf8',
    // A machine without nats-server, where nobody requires the JetStream rows (CI sets MSGS_REQUIRE_NATS=1).
    env: { ...process.env, MSGBENCH_NATS_SERVER: path.join(dir, 'no-nats-server'), MSGS_REQUIRE_NATS: '0' },
  });
  assert.match(log, /skipping the JetStream rows: nats-server not found/);
  const md = fs.readFileSync(out, 'utf8');
  assert.match(md, /\| skipped: nats-server not found/);
});
