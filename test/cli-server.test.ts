// msgserver CLI as a process: --metrics-port serving /metrics, MSGSERVER_*
// environment overrides (defaults < config file < environment < flags), bad
// variables named in the error, the effective config logged at start, and
// SIGTERM under load (exit 0, every ACKed message in the file, none lost).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';

import { envVarFor, parseServerArgs, SERVER_ENV_VARS, SERVER_FLAGS } from '../dist/cli/args';
import { serverOptionsFromEnv } from '../dist/server/config';
import { MessageClient, readLog, verifyLog } from '../dist/index';
import { freePort, tempDir } from './helpers';
import { parseExposition, sample } from './prometheus-text';

const CLI = path.join(__dirname, '..', 'dist', 'cli', 'msgserver.js');
const T = { timeout: 60_000 };

const dirs: string[] = [];
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function dir(): string {
  const d = tempDir('msgserver-cli-server-');
  dirs.push(d);
  return d;
}


/**
 * The environment without the runner's own MSGSERVER_* options or MS_HOME
 * (MSGSERVER_ADDON, the addon path of sanitizer runs, is kept).
 */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if ((!k.startsWith('MSGSERVER_') || k === 'MSGSERVER_ADDON') && k !== 'MS_HOME') env[k] = v;
  }
  return { ...env, ...extra };
}

interface Running {
  child: ChildProcess;
  port: number;
  file: string;
  stdout: () => string;
  stderr: () => string;
  /** The pino JSON lines logged so far. */
  logs: () => Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns msgserver and resolves once it printed its listening line. */
function start(args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<Running> {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  const logs = (): Array<Record<string, unknown>> =>
    err
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`msgserver did not start: ${err}`)), 20_000);
    const onData = (): void => {
      const m = /^msgserver listening on [^:]+:(\d+), writing (.+) \(ackMode \w+\)$/m.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      resolve({ child, port: Number(m[1]), file: m[2], stdout: () => out, stderr: () => err, logs, exited });
    };
    child.stdout!.on('data', onData);
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`msgserver exited ${code} before listening: ${err}`));
    });
  });
}

/** Runs msgserver expecting it to exit on its own (bad config). */
function runToExit(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, timeout: 20_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function stop(r: Running): Promise<void> {
  r.child.kill('SIGTERM');
  const { code } = await r.exited;
  assert.equal(code, 0, r.stderr());
}

test('every server flag has its MSGSERVER_* variable, setting the same option', () => {
  assert.equal(SERVER_ENV_VARS.length, SERVER_FLAGS.length);
  const argv: string[] = [];
  const env: NodeJS.ProcessEnv = {};
  SERVER_FLAGS.forEach((f, i) => {
    const value = f.kind === 'number' ? String(1000 + i) : f.kind === 'boolean' ? 'true' : `v${i}`;
    argv.push(f.kind === 'boolean' ? `--${f.flag}` : `--${f.flag}=${value}`);
    env[envVarFor(f.flag)] = value;
  });
  assert.equal(envVarFor('fsync-interval-ms'), 'MSGSERVER_FSYNC_INTERVAL_MS');
  const fromEnv = serverOptionsFromEnv(env, SERVER_ENV_VARS);
  assert.deepEqual(fromEnv.options, parseServerArgs(argv).flags);
  assert.equal(Object.keys(fromEnv.sources).length, SERVER_FLAGS.length);
  // Empty counts as unset; booleans take true/1/false/0; other text is kept for resolveConfig to report.
  assert.deepEqual(serverOptionsFromEnv({ MSGSERVER_PORT: '', MSGSERVER_REPAIR: '0' }, SERVER_ENV_VARS).options, { file: { repair: false } });
  assert.deepEqual(serverOptionsFromEnv({ MSGSERVER_PORT: ' 12 ', MSGSERVER_REPAIR: 'yes' }, SERVER_ENV_VARS).options, { port: 12, file: { repair: 'yes' } });
});

test("docs/api.md's flag table has a row for every server flag, naming its variable and option", () => {
  const doc = fs.readFileSync(path.join(__dirname, '..', 'docs', 'api.md'), 'utf8');
  const header = '| flag | environment | option |\n|---|---|---|\n';
  const start = doc.indexOf(header);
  assert.ok(start >= 0, 'docs/api.md has the flag table');
  const table = doc.slice(start + header.length).split('\n\n')[0];
  const rows = new Map<string, string>();
  for (const m of table.matchAll(/^\| `--([a-z0-9-]+)[^|]*\|([^\n]*)$/gm)) rows.set(m[1], m[2]);
  assert.equal(table.split('\n').length, SERVER_FLAGS.length, 'one row per flag, and no row for a flag that is gone');
  for (const f of SERVER_FLAGS) {
    const row = rows.get(f.flag);
    assert.ok(row !== undefined, `docs/api.md has no row for --${f.flag}`);
    assert.ok(row.includes(`\`${envVarFor(f.flag)}\``), `--${f.flag}: the row names ${envVarFor(f.flag)}`);
    const option = typeof f.path === 'string' ? f.path : f.path.join('.');
    assert.ok(row.includes(`\`${option}\``), `--${f.flag}: the row names the option ${option}`);
  }
});

test('--metrics-port serves valid /metrics whose message counter matches what was sent', T, async () => {
  const d = dir();
  const metricsPort = await freePort();
  const r = await start(['--port', '0', '--file', path.join(d, 'm.log'), '--service-threads', '2', '--metrics-port', String(metricsPort)]);
  try {
    const base = `http://127.0.0.1:${metricsPort}`;
    const client = await MessageClient.connect({ firstMsgId: 1, port: r.port, clientId: 5 });
    await Promise.all(Array.from({ length: 1234 }, (_, i) => client.send(`m${i}`, { name: 'cli' })));
    await client.close();

    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const families = parseExposition(await res.text());
    assert.equal(sample(families, 'msgserver_messages_in_total'), 1234);
    assert.equal(sample(families, 'msgserver_acks_total', { status: 'OK' }), 1234);
    assert.equal(sample(families, 'msgserver_connections_accepted_total'), 1);
    // The CLI adds prom-client's process metrics, under the same prefix.
    assert.ok(families.has('msgserver_process_cpu_user_seconds_total'));

    const missing = await fetch(`${base}/`);
    assert.equal(missing.status, 404);
    await missing.text();
    assert.ok(r.logs().some((l) => l.msg === `metrics on ${base}/metrics`), r.stderr());
  } finally {
    await stop(r);
  }
});

test('environment overrides the config file; flags override the environment', T, async () => {
  const d = dir();
  const [filePort, envPort, flagPort] = [await freePort(), await freePort(), await freePort()];
  const config = path.join(d, 'srv.json');
  fs.writeFileSync(config, JSON.stringify({ port: filePort, file: { path: path.join(d, 'file.log'), fsync: 'never' }, limits: { maxConnections: 77 } }));

  // Env beats the file, field by field: port and file.fsync from env, the rest from the file.
  const r1 = await start(['--config', config], cleanEnv({ MSGSERVER_PORT: String(envPort), MSGSERVER_FSYNC: 'batch', MSGSERVER_REPAIR: 'true' }));
  assert.equal(r1.port, envPort);
  assert.equal(r1.file, path.join(d, 'file.log'));
  const effective = r1.logs().find((l) => l.msg === 'effective config');
  assert.ok(effective, `effective config logged: ${r1.stderr()}`);
  const cfg = effective.config as { port: number; file: { fsync: string; repair: boolean }; limits: { maxConnections: number } };
  assert.equal(cfg.port, envPort);
  assert.equal(cfg.file.fsync, 'batch');
  assert.equal(cfg.file.repair, true);
  assert.equal(cfg.limits.maxConnections, 77);
  assert.equal(effective.configFile, config);
  assert.deepEqual(effective.fromEnv, { port: 'MSGSERVER_PORT', 'file.fsync': 'MSGSERVER_FSYNC', 'file.repair': 'MSGSERVER_REPAIR' });
  // stdout holds only the human line; the logs are JSON on stderr.
  assert.equal(r1.stdout().trim().split('\n').length, 1);
  await stop(r1);

  // A flag beats the environment.
  const r2 = await start(['--config', config, '--port', String(flagPort)], cleanEnv({ MSGSERVER_PORT: String(envPort) }));
  assert.equal(r2.port, flagPort);
  const effective2 = r2.logs().find((l) => l.msg === 'effective config');
  assert.equal((effective2?.config as { port: number }).port, flagPort);
  assert.deepEqual(effective2?.fromEnv, {});
  await stop(r2);
});

test('a bad environment value exits 2 naming the field and the variable', T, async () => {
  const r = await runToExit([], cleanEnv({ MSGSERVER_PORT: 'x', MSGSERVER_ACK_MODE: 'sometimes', MSGSERVER_REPAIR: 'maybe' }));
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /port \(env MSGSERVER_PORT\) = 'x' \(allowed: integer 0\.\.65535\)/);
  assert.match(r.stderr, /ackMode \(env MSGSERVER_ACK_MODE\) = 'sometimes' \(allowed: one of 'received', 'written', 'durable', 'replicated'\)/);
  assert.match(r.stderr, /file\.repair \(env MSGSERVER_REPAIR\) = 'maybe' \(allowed: true or false\)/);
  assert.equal(r.stdout, '');

  // Flag errors in the same run are still reported by field alone.
  const both = await runToExit(['--max-connections', '0'], cleanEnv({ MSGSERVER_MAX_MESSAGE_BYTES: '-1' }));
  assert.equal(both.code, 2);
  assert.match(both.stderr, /limits\.maxMessageBytes \(env MSGSERVER_MAX_MESSAGE_BYTES\) = -1/);
  assert.match(both.stderr, /limits\.maxConnections = 0 \(allowed/);

  const metrics = await runToExit([], cleanEnv({ MSGSERVER_METRICS_PORT: 'abc' }));
  assert.equal(metrics.code, 2);
  assert.match(metrics.stderr, /MSGSERVER_METRICS_PORT must be an integer 0\.\.65535, got 'abc'/);
  const level = await runToExit(['--log-level', 'loud'], cleanEnv());
  assert.equal(level.code, 2);
  assert.match(level.stderr, /--log-level must be one of fatal, error, warn, info, debug, trace, silent/);
});

test('--log-level warn hides info lines; the listening line stays on stdout', T, async () => {
  const d = dir();
  const r = await start(['--port', '0', '--file', path.join(d, 'm.log'), '--log-level', 'warn'], cleanEnv({ MSGSERVER_BOGUS: '1' }));
  await stop(r);
  const logs = r.logs();
  assert.ok(!logs.some((l) => l.msg === 'effective config'), 'info lines are hidden');
  assert.ok(logs.some((l) => typeof l.msg === 'string' && /unknown environment variables MSGSERVER_BOGUS/.test(l.msg)), r.stderr());
  assert.match(r.stdout(), /^msgserver listening on 127\.0\.0\.1:\d+, writing /);
});

test('SIGTERM during load: exit 0, every ACKed message is in the file, no ACK lost', T, async (t) => {
  const d = dir();
  const file = path.join(d, 'load.log');
  const r = await start(['--port', '0', '--file', file, '--service-threads', '2']);
  const client = await MessageClient.connect({ firstMsgId: 1, port: r.port, clientId: 99, window: 1024 });
  const acked = new Set<bigint>();
  let failed = 0;
  let signalled = false;
  const total = 100_000;
  const sends = Array.from({ length: total }, (_, i) =>
    client.send(`load message ${i}`, { name: 'load' }).then(
      (ack) => {
        assert.equal(ack.statusName, 'OK');
        acked.add(ack.msgId);
        if (acked.size === 5000 && !signalled) {
          signalled = true;
          r.child.kill('SIGTERM');
        }
      },
      () => failed++,
    ),
  );
  await Promise.all(sends);
  const { code } = await r.exited;
  await client.close();
  assert.ok(signalled, 'SIGTERM was sent while the client was sending');
  assert.equal(code, 0, r.stderr());
  t.diagnostic(`${acked.size} ACKed OK, ${failed} cut off by the shutdown`);
  assert.equal(acked.size + failed, total);

  const closed = r.logs().find((l) => l.msg === 'closed');
  assert.ok(closed, r.stderr());
  assert.equal(closed.timedOut, false);

  const v = await verifyLog(file);
  assert.ok(v.ok, `log is intact: ${String(v.reason)}`);
  const inFile = new Set<bigint>();
  for await (const rec of readLog(file)) {
    assert.equal(rec.clientId, 99);
    inFile.add(rec.msgId);
  }
  for (const id of acked) assert.ok(inFile.has(id), `ACKed message ${id} is in the file`);
  // And the converse: every message stored was ACKed to the client before the
  // server closed the connection (no ACK lost in flight).
  for (const id of inFile) assert.ok(acked.has(id), `stored message ${id} was ACKed`);
  assert.equal(inFile.size, acked.size);
});
