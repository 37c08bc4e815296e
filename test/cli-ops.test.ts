// The operations side of the CLIs, through the built bins: `msglog tail -f`
// across rotations under load and idle on a large file (its CPU read from
// /proc/<pid>/stat), `msglog salvage`, `msgserver` serving /healthz and
// /readyz on --metrics-port, and SIGHUP reloading --config under load.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { test } from 'node:test';

import { MessageClient, MessageServer, readLog, verifyLog } from '../dist/index';
import { encodeFileHeader, encodeRecord } from '../dist/format/record';
import { tempDir } from './helpers';

const BIN = path.join(__dirname, '..', 'dist', 'cli');
const MSGLOG = path.join(BIN, 'msglog.js');
const MSGSERVER = path.join(BIN, 'msgserver.js');
const T0 = 1_700_000_000_000_000n;

/** Lines of a child's stream, with a way to wait (bounded) for one that matches. */
class Lines {
  readonly all: string[] = [];
  private buf = '';
  private waiters: Array<{ match: (l: string) => boolean; resolve: (l: string) => void }> = [];
  private ended = false;
  private endWaiters: Array<() => void> = [];

  constructor(stream: NodeJS.ReadableStream) {
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      this.buf += d;
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        this.all.push(line);
        this.waiters = this.waiters.filter((w) => {
          if (!w.match(line)) return true;
          w.resolve(line);
          return false;
        });
      }
    });
    stream.on('end', () => {
      this.ended = true;
      for (const r of this.endWaiters) r();
    });
  }

  /** The first line (already seen or to come) that matches; rejects after timeoutMs or at the end of the stream. */
  wait(what: string, match: (l: string) => boolean, timeoutMs = 20_000): Promise<string> {
    const seen = this.all.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last lines:\n${this.all.slice(-10).join('\n')}`)), timeoutMs);
      const onEnd = (): void => {
        clearTimeout(timer);
        reject(new Error(`stream ended before ${what}; last lines:\n${this.all.slice(-10).join('\n')}`));
      };
      if (this.ended) return onEnd();
      this.endWaiters.push(onEnd);
      this.waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }
}

function exited(proc: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  return new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
}

async function kill(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
  await exited(proc);
}

/** utime + stime of a process in seconds, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ": state is field 3, utime 14 and stime 15 (1-based).
  const ticks = Number(fields[14 - 3]) + Number(fields[15 - 3]);
  const hz = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  return ticks / hz;
}

test('msglog tail -f across rotations under load: every record exactly once, in order', async (t) => {
  const dir = path.join(tempDir('msgs-cli-tail-'), 'segments');
  t.after(() => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));
  const server = new MessageServer({ port: 0, serviceThreads: 2, file: { path: dir, rotateBytes: 64 * 1024 } });
  let rotations = 0;
  server.on('rotate', () => rotations++);
  const { port } = await server.listen();
  t.after(() => server.close());

  // -n larger than the total: whatever was written before the tail caught up
  // comes from its ring, the rest live; both must join without a gap or repeat.
  const tail = spawn(process.execPath, [MSGLOG, 'tail', dir, '-f', '-n', '100000', '--format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => kill(tail));
  const out = new Lines(tail.stdout!);
  const err = new Lines(tail.stderr!);
  void err;

  const CLIENTS = 4;
  const PER = 4000;
  const clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => MessageClient.connect({ firstMsgId: 1, port, clientId: i + 1, window: 256 })));
  await Promise.all(clients.map((c, k) => Promise.all(Array.from({ length: PER }, (_, i) => c.send(`c${k} m${i}`.padEnd(40 + (i % 100), '.'))))));
  await Promise.all(clients.map((c) => c.close()));
  const total = CLIENTS * PER;
  await out.wait(`record ${total}`, (l) => JSON.parse(l).seq === String(total), 60_000);
  assert.ok(rotations >= 3, `${rotations} rotations (want at least 3)`);
  const recs = out.all.map((l) => JSON.parse(l) as { seq: string; clientId: number; msgId: string; payload: string });
  assert.equal(recs.length, total, 'exactly once');
  const next = new Map<number, number>();
  recs.forEach((r, i) => {
    assert.equal(r.seq, String(i + 1), 'in order');
    const want = (next.get(r.clientId) ?? 0) + 1;
    assert.equal(r.msgId, String(want));
    next.set(r.clientId, want);
  });
  assert.equal(tail.exitCode, null, 'still following');
  // SIGTERM ends it cleanly.
  tail.kill('SIGTERM');
  assert.deepEqual(await exited(tail), { code: 0, signal: null });
});

test('msglog tail -f idle on a large log uses (nearly) no CPU', { skip: !fs.existsSync('/proc/self/stat') }, async (t) => {
  const dir = tempDir('msgs-cli-idle-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'big.log');
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, encodeFileHeader());
  const payload = Buffer.alloc(4000, 'p');
  let seq = 0n;
  for (let written = 16; written < 220 * 1024 * 1024; ) {
    const batch: Buffer[] = [];
    for (let i = 0; i < 256; i++) batch.push(encodeRecord({ seq: ++seq, timeUs: T0 + seq, clientId: 1, msgId: seq, name: Buffer.from('big'), payload }));
    const b = Buffer.concat(batch);
    fs.writeSync(fd, b);
    written += b.length;
  }
  fs.closeSync(fd);
  const last = seq;

  const tail = spawn(process.execPath, [MSGLOG, 'tail', file, '-f', '-n', '1', '--format', 'json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => kill(tail));
  const out = new Lines(tail.stdout!);
  await out.wait(`the last record (${last})`, (l) => JSON.parse(l).seq === String(last), 60_000);
  const before = cpuSeconds(tail.pid!);
  await new Promise((r) => setTimeout(r, 10_000)); // the measurement window
  const used = cpuSeconds(tail.pid!) - before;
  t.diagnostic(`idle msglog tail -f on ${(fs.statSync(file).size / 2 ** 20).toFixed(0)} MiB: ${used.toFixed(2)} s CPU over 10 s`);
  assert.ok(used < 0.5, `idle CPU ${used} s over 10 s`);
  // Still following.
  fs.appendFileSync(file, encodeRecord({ seq: last + 1n, timeUs: T0, clientId: 1, msgId: 0n, name: Buffer.from('n'), payload: Buffer.from('new') }));
  const line = await out.wait('the appended record', (l) => JSON.parse(l).seq === String(last + 1n));
  assert.equal(JSON.parse(line).payload, 'new');
});

test('msglog salvage: a file with several damaged ranges, and a segment directory', async (t) => {
  const dir = tempDir('msgs-cli-salvage-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const parts = [encodeFileHeader()];
  const offsets: number[] = [];
  let at = 16;
  for (let i = 1; i <= 400; i++) {
    const b = encodeRecord({ seq: BigInt(i), timeUs: T0, clientId: 2, msgId: BigInt(i), name: Buffer.from('s'), payload: Buffer.alloc(100 + (i % 50), i & 0xff) });
    offsets.push(at);
    at += b.length;
    parts.push(b);
  }
  const bytes = Buffer.concat(parts);
  // Damage records 50 (one byte), 200-202 (a run of zeros) and 390.
  bytes[offsets[49] + 20] ^= 0xff;
  bytes.fill(0, offsets[199] + 4, offsets[202] - 2);
  bytes[offsets[389] + 40] ^= 0x01;
  const file = path.join(dir, 'damaged.log');
  fs.writeFileSync(file, bytes);
  const out = path.join(dir, 'salvaged.log');
  const r = spawnSync(process.execPath, [MSGLOG, 'salvage', file, '-o', out], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const skipped = r.stderr.split('\n').filter((l) => l.startsWith('skipped'));
  assert.deepEqual(skipped.map((l) => l.match(/offset (\d+), (\d+) bytes/)!.slice(1).map(Number)), [
    [offsets[49], offsets[50] - offsets[49]],
    [offsets[199], offsets[202] - offsets[199]],
    [offsets[389], offsets[390] - offsets[389]],
  ]);
  assert.match(r.stdout, /395 records/);
  assert.match(r.stdout, /3 damaged ranges/);
  const v = await verifyLog(out);
  assert.equal(v.ok, true);
  assert.equal(v.records, 395);
  const lost = new Set([50, 200, 201, 202, 390]);
  const got: number[] = [];
  for await (const rec of readLog(out)) got.push(Number(rec.seq));
  assert.deepEqual(got, Array.from({ length: 400 }, (_, i) => i + 1).filter((s) => !lost.has(s)));
  // An existing output is refused; a missing -o is a usage error.
  const again = spawnSync(process.execPath, [MSGLOG, 'salvage', file, '-o', out], { encoding: 'utf8' });
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already exists/);
  const usage = spawnSync(process.execPath, [MSGLOG, 'salvage', file], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /-o/);
});

function httpGet(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p, timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

interface CliServer {
  proc: ChildProcess;
  port: number;
  metricsPort: number;
  log: Lines;
}

async function startCliServer(args: string[], t: { after: (fn: () => unknown) => void }): Promise<CliServer> {
  const proc = spawn(process.execPath, [MSGSERVER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => kill(proc));
  const out = new Lines(proc.stdout!);
  const log = new Lines(proc.stderr!);
  const listening = await out.wait('the listening line', (l) => l.startsWith('msgserver listening on'));
  const port = Number(listening.match(/:(\d+),/)![1]);
  const metrics = JSON.parse(await log.wait('the metrics line', (l) => l.includes('"metricsPort"')));
  return { proc, port, metricsPort: metrics.metricsPort, log };
}

test('msgserver serves /healthz and /readyz on --metrics-port', async (t) => {
  const dir = tempDir('msgs-cli-health-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const s = await startCliServer(['--port', '0', '--file', path.join(dir, 'h.log'), '--metrics-port', '0'], t);
  const h = await httpGet(s.metricsPort, '/healthz');
  assert.equal(h.status, 200);
  assert.equal(JSON.parse(h.body).checks.lastWrite.ok, true);
  const r = await httpGet(s.metricsPort, '/readyz');
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).checks.diskSpace.ok, true);
  assert.equal((await httpGet(s.metricsPort, '/metrics')).status, 200);
});

test('SIGHUP under load: a limit changes live, nothing dropped or lost; a bad file changes nothing', async (t) => {
  const dir = tempDir('msgs-cli-hup-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'hup.log');
  const config = path.join(dir, 'msgserver.json');
  const writeConfig = (o: object): void => {
    fs.writeFileSync(`${config}.tmp`, JSON.stringify(o));
    fs.renameSync(`${config}.tmp`, config);
  };
  const base = { port: 0, file: { path: file }, limits: { maxConnections: 50 } };
  writeConfig(base);
  const s = await startCliServer(['--config', config, '--metrics-port', '0'], t);
  const reloads = (): string[] => s.log.all.filter((l) => l.includes('SIGHUP'));

  const CLIENTS = 4;
  const PER = 6000;
  const clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => MessageClient.connect({ firstMsgId: 1, port: s.port, clientId: i + 1, window: 64 })));
  let drops = 0;
  for (const c of clients) c.on('disconnect', () => drops++);
  let sent = 0;
  const sending = Promise.all(
    clients.map(async (c, k) => {
      const acks: Array<Promise<unknown>> = [];
      for (let i = 0; i < PER; i++) {
        acks.push(c.send(`c${k} m${i}`));
        sent++;
        if (i % 256 === 255) await acks[acks.length - 1];
      }
      return Promise.all(acks);
    }),
  );

  // Mid-load: lower maxConnections to the 4 open ones, and change the port (needs a restart).
  await new Promise<void>((resolve) => {
    const check = (): void => (sent >= (CLIENTS * PER) / 4 ? resolve() : void setImmediate(check));
    check();
  });
  writeConfig({ ...base, port: s.port + 1, limits: { maxConnections: CLIENTS } });
  s.proc.kill('SIGHUP');
  const applied = await s.log.wait('the reload log line', (l) => /reconfigured/.test(l) && l.includes('limits.maxConnections'));
  assert.ok(applied, 'applied and logged');
  await s.log.wait('the needs-restart line', (l) => /needs a restart/.test(l) && l.includes('port'));
  assert.ok(sent < CLIENTS * PER, 'the reload happened under load');

  // The new limit holds: a fifth connection is refused (BUSY).
  await assert.rejects(MessageClient.connect({ port: s.port, clientId: 99, connectTimeoutMs: 5000 }), /BUSY|busy|maximum|refused/i);

  // A bad file changes nothing and is logged.
  fs.writeFileSync(config, '{ not json');
  s.proc.kill('SIGHUP');
  await s.log.wait('the bad-config line', (l) => /config/.test(l) && /unchanged|not applied|nothing changed/.test(l) && l.includes('"level":50'));
  await assert.rejects(MessageClient.connect({ port: s.port, clientId: 98, connectTimeoutMs: 5000 }), /BUSY|busy|maximum|refused/i, 'still the reloaded limit');

  const results = await sending;
  assert.equal(results.flat().length, CLIENTS * PER);
  assert.equal(drops, 0, 'no connection dropped');
  assert.ok(reloads().length >= 2, 'each SIGHUP logged');
  assert.equal(s.proc.exitCode, null, 'SIGHUP did not stop the server');
  await Promise.all(clients.map((c) => c.close()));
  s.proc.kill('SIGTERM');
  assert.equal((await exited(s.proc)).code, 0);
  // Every message once in the file.
  const seen = new Map<number, Set<bigint>>();
  for await (const r of readLog(file)) {
    const m = seen.get(r.clientId) ?? new Set<bigint>();
    assert.ok(!m.has(r.msgId), `client ${r.clientId} msg ${r.msgId} once`);
    m.add(r.msgId);
    seen.set(r.clientId, m);
  }
  for (let c = 1; c <= CLIENTS; c++) assert.equal(seen.get(c)?.size, PER, `client ${c}: every message`);
});
