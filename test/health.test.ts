// /healthz and /readyz on the metrics port (metricsHandler with { server }):
// 200 or 503 with a JSON body naming each check; they flip to 503 and back
// when the log cannot be written (the LD_PRELOAD fault shim fails pwrite in a
// server child) and when NATS stops in 'replicated' mode.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { test } from 'node:test';

import { AckError, checkHealth, checkReadiness, collectMetrics, MessageClient, MessageServer, metricsHandler, type HealthReport } from '../dist/index';
import { faultShimSkip, waitFor, withFaults } from './support/faults';
import { natsServerPath, startNatsServer } from './support/nats-cluster';
import { tempDir } from './helpers';

interface Answer {
  status: number;
  body: string;
  type: string | undefined;
}

function get(port: number, p: string, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: res.headers['content-type'] }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${p} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

async function report(port: number, p: '/healthz' | '/readyz'): Promise<{ status: number; report: HealthReport }> {
  const a = await get(port, p);
  assert.equal(a.type, 'application/json');
  return { status: a.status, report: JSON.parse(a.body) as HealthReport };
}

async function serve(handler: http.RequestListener): Promise<{ port: number; close: () => Promise<void> }> {
  const web = http.createServer(handler);
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  return { port: (web.address() as { port: number }).port, close: () => new Promise<void>((r) => web.close(() => r())) };
}

test('metricsHandler with { server }: /metrics, /healthz, /readyz, 404, 405, HEAD; 503 when not listening', async (t) => {
  const dir = tempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const server = new MessageServer({ port: 0, file: { path: path.join(dir, 'h.log') } });
  const web = await serve(metricsHandler(collectMetrics(server), { server }));
  t.after(() => web.close());

  const before = await report(web.port, '/healthz');
  assert.equal(before.status, 503);
  assert.equal(before.report.status, 'fail');
  assert.equal(before.report.checks.listening.ok, false);

  await server.listen();
  const h = await report(web.port, '/healthz');
  assert.equal(h.status, 200);
  assert.deepEqual(Object.keys(h.report.checks).sort(), ['lastWrite', 'listening']);
  assert.equal(h.report.status, 'ok');
  const r = await report(web.port, '/readyz');
  assert.equal(r.status, 200, JSON.stringify(r.report));
  assert.deepEqual(Object.keys(r.report.checks).sort(), ['diskSpace', 'listening', 'logWritable'], 'no jetstream check outside replicated mode');
  assert.deepEqual(checkReadiness(server), r.report);
  assert.deepEqual(checkHealth(server), h.report);

  const m = await get(web.port, '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.body, /msgserver_connections_accepted_total/);
  assert.equal((await get(web.port, '/healthz', 'HEAD')).status, 200);
  assert.equal((await get(web.port, '/healthz', 'HEAD')).body, '');
  assert.equal((await get(web.port, '/readyz', 'POST')).status, 405);
  assert.equal((await get(web.port, '/nope')).status, 404);
  assert.equal((await get(web.port, '/healthz?verbose=1')).status, 200, 'a query string is ignored');

  await server.close();
  const after = await report(web.port, '/readyz');
  assert.equal(after.status, 503);
  assert.equal(after.report.checks.listening.ok, false);
});

test('metricsHandler without { server } has no health paths', async (t) => {
  const server = new MessageServer({ port: 0, file: { path: path.join(tempDir(), 'm.log') } });
  const web = await serve(metricsHandler(collectMetrics(server)));
  t.after(() => web.close());
  assert.equal((await get(web.port, '/healthz')).status, 404);
});

interface Child {
  port: number;
  http: number;
  stop: () => Promise<void>;
}

function startHealthChild(options: object, env: NodeJS.ProcessEnv): Promise<Child> {
  const proc = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'health-child.js'), JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'], env });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const o = JSON.parse(buf.slice(0, nl));
      if (o.error) return reject(new Error(o.error));
      resolve({
        port: o.listening,
        http: o.http,
        stop: async () => {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
          await exited;
        },
      });
    });
    void exited.then(() => reject(new Error('health child exited before listening')));
  });
}

test('/healthz and /readyz flip to 503 while the log cannot be written, and back', { skip: faultShimSkip() }, async (t) => {
  const dir = tempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'unwritable.log');
  const faults = withFaults();
  const child = await startHealthChild({ port: 0, serviceThreads: 1, file: { path: file } }, faults.env);
  t.after(() => child.stop());
  const client = await MessageClient.connect({ port: child.port, clientId: 1, firstMsgId: 1 });
  t.after(() => client.close());

  assert.equal((await client.send('before')).status, 0);
  assert.equal((await report(child.http, '/healthz')).status, 200);
  assert.equal((await report(child.http, '/readyz')).status, 200);

  // The log cannot be written: every pwrite fails with EIO.
  faults.set(`pwrite path=${file} errno=EIO`);
  await assert.rejects(client.send('during'), (err: unknown) => err instanceof AckError && err.statusName === 'WRITE_FAILED');
  assert.ok(faults.injected().some((l) => l.startsWith('pwrite EIO')), 'the fault fired');
  // lastStoreFailed is set by the writer as it answers: by the time the
  // client has its WRITE_FAILED the gauge is 1 (waitFor only absorbs the
  // hand-over to the HTTP child; it fails if the gauge never flips).
  const sick = await waitFor('/healthz 503', async () => {
    const r = await report(child.http, '/healthz');
    return r.status === 503 && r;
  });
  assert.equal(sick.report.checks.lastWrite.ok, false);
  assert.equal(sick.report.checks.listening.ok, true);
  const unready = await report(child.http, '/readyz');
  assert.equal(unready.status, 503);
  assert.equal(unready.report.checks.logWritable.ok, false);

  // Writable again: the next stored batch clears it; the connection stayed open.
  faults.set('');
  assert.equal((await client.send('after')).status, 0);
  await waitFor('/healthz 200', async () => (await report(child.http, '/healthz')).status === 200);
  assert.equal((await report(child.http, '/readyz')).status, 200);
});

const NATS = natsServerPath();
const natsSkip = NATS === null && process.env.MSGS_REQUIRE_NATS !== '1' ? 'nats-server is not installed (apt-get install nats-server)' : false;

test('/readyz in replicated mode: 503 while NATS is down, 200 again once it is back', { skip: natsSkip, timeout: 90_000 }, async (t) => {
  const dir = tempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  let nats = await startNatsServer(dir);
  const port = nats.port;
  t.after(() => nats.stop());
  const server = new MessageServer({
    port: 0,
    ackMode: 'replicated',
    file: { enabled: false },
    jetstream: { servers: nats.url, stream: 'HEALTHZ', subjectPrefix: 'healthz', ackTimeoutMs: 1000 },
  });
  server.on('error', () => undefined);
  await server.listen();
  t.after(() => server.close());
  const web = await serve(metricsHandler(collectMetrics(server), { server }));
  t.after(() => web.close());

  const ready = await waitFor('/readyz 200 with NATS up', async () => {
    const r = await report(web.port, '/readyz');
    return r.status === 200 && r;
  }, 15_000);
  assert.equal(ready.report.checks.jetstream.ok, true);

  await nats.stop();
  const down = await waitFor('/readyz 503 with NATS down', async () => {
    const r = await report(web.port, '/readyz');
    return r.status === 503 && r;
  }, 15_000);
  assert.equal(down.report.checks.jetstream.ok, false);
  assert.equal(down.report.checks.listening.ok, true);

  nats = await startNatsServer(dir, port);
  const back = await waitFor('/readyz 200 once NATS is back', async () => {
    const r = await report(web.port, '/readyz');
    return r.status === 200 && r;
  }, 30_000);
  assert.equal(back.report.checks.jetstream.ok, true);
});
