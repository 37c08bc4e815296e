// CLI tests: the pure flag -> option mapping (no processes), then the compiled
// CLIs run as child processes: --help, usage and config errors, msgclient
// against a fake server, msglog on crafted log files, and (when the server
// and its addon are built) msgserver + msgclient + msglog end to end.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  mergeServerOptions,
  parseClientArgs,
  parseLogArgs,
  parseServerArgs,
  SERVER_FLAGS,
  UsageError,
} from '../dist/cli/args';
import { AUTH_DEFAULTS, ConfigError, DEFAULTS, JETSTREAM_DEFAULTS, resolveConfig, TLS_DEFAULTS } from '../dist/server/config';

const ROOT = path.join(__dirname, '..');
const CLI = (name: string): string => path.join(ROOT, 'dist', 'cli', `${name}.js`);
const T = { timeout: 30_000 };

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(name: string, args: string[], input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI(name), ...args], { timeout: 20_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

const tmpDirs: string[] = [];
after(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'msgserver-cli-'));
  tmpDirs.push(d);
  return d;
}

// ---- args.ts: msgserver -----------------------------------------------------

test('every server flag maps to its option path', () => {
  const { flags, help, configPath } = parseServerArgs([
    '--host', '0.0.0.0', '--port', '9100', '--service-threads', '3', '--protocol', 'legacy',
    '--ack-mode', 'durable', '--file', '/tmp/m.log', '--format', 'binary', '--rotate-bytes', '1048576',
    '--fsync', 'batch', '--fsync-interval-ms', '50', '--repair', '--batch-max-messages', '10',
    '--batch-max-bytes', '8192', '--batch-max-delay-ms', '5', '--max-message-bytes', '2048',
    '--max-connections', '7', '--idle-timeout-ms', '1000', '--handshake-timeout-ms', '2000',
    '--frame-timeout-ms', '3000', '--max-queue-bytes=2097152',
  ]);
  assert.equal(help, false);
  assert.equal(configPath, undefined);
  assert.deepEqual(flags, {
    host: '0.0.0.0',
    port: 9100,
    serviceThreads: 3,
    protocol: 'legacy',
    ackMode: 'durable',
    file: { path: '/tmp/m.log', format: 'binary', rotateBytes: 1048576, fsync: 'batch', fsyncIntervalMs: 50, repair: true },
    batch: { maxMessages: 10, maxBytes: 8192, maxDelayMs: 5 },
    limits: {
      maxMessageBytes: 2048,
      maxConnections: 7,
      idleTimeoutMs: 1000,
      handshakeTimeoutMs: 2000,
      frameTimeoutMs: 3000,
      maxQueueBytes: 2097152,
    },
  });
  // And the result is a valid config.
  assert.equal(resolveConfig(flags).limits.maxQueueBytes, 2097152);
});

test('every option in DEFAULTS has exactly one flag', () => {
  const flagPaths = SERVER_FLAGS.map((f) => (typeof f.path === 'string' ? f.path : f.path.join('.'))).sort();
  const optionPaths: string[] = [];
  const walk = (prefix: string, o: object): void => {
    for (const [k, v] of Object.entries(o)) {
      if (v !== null && typeof v === 'object') walk(`${prefix}${k}.`, v);
      else if (!['jetstream', 'tls', 'auth'].includes(`${prefix}${k}`)) optionPaths.push(`${prefix}${k}`);
    }
  };
  walk('', DEFAULTS);
  // The jetstream section is off (null) by default: its fields are servers plus JETSTREAM_DEFAULTS.
  optionPaths.push('jetstream.servers');
  walk('jetstream.', JETSTREAM_DEFAULTS);
  // So are tls and auth; auth.principals (a map) is set in a config file only.
  for (const sub of ['cert', 'key', ...Object.keys(TLS_DEFAULTS)]) optionPaths.push(`tls.${sub}`);
  for (const sub of Object.keys(AUTH_DEFAULTS).filter((k) => k !== 'principals')) optionPaths.push(`auth.${sub}`);
  assert.deepEqual(flagPaths, optionPaths.sort());
});

test('no flags gives no options; --help and --config are read', () => {
  assert.deepEqual(parseServerArgs([]), { help: false, version: false, configPath: undefined, flags: {} });
  const a = parseServerArgs(['--help', '--config', 'srv.json']);
  assert.equal(a.help, true);
  assert.equal(a.configPath, 'srv.json');
});

test('a non-numeric number flag is left for resolveConfig to report by field', () => {
  const { flags } = parseServerArgs(['--port', 'x', '--max-message-bytes', '1.5']);
  assert.equal(flags.port, 'x' as unknown as number);
  assert.throws(() => resolveConfig(flags), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /port = 'x' \(allowed: integer 0\.\.65535\)/);
    assert.match(err.message, /limits\.maxMessageBytes = 1\.5/);
    return true;
  });
});

test('unknown flags and stray arguments are usage errors', () => {
  assert.throws(() => parseServerArgs(['--prot', '1']), UsageError);
  assert.throws(() => parseServerArgs(['extra']), UsageError);
  assert.throws(() => parseServerArgs(['--port']), UsageError);
});

test('flags override the config file field by field', () => {
  const merged = mergeServerOptions(
    { port: 1, host: 'a', file: { path: 'file.log', fsync: 'never' }, limits: { maxConnections: 2 } },
    { port: 2, file: { path: 'flag.log' } },
  );
  assert.deepEqual(merged, {
    port: 2,
    host: 'a',
    file: { path: 'flag.log', fsync: 'never' },
    limits: { maxConnections: 2 },
  });
});

// ---- args.ts: msgclient and msglog ----------------------------------------------

test('msgclient arguments: defaults, values, positional messages', () => {
  const noTls = { tls: false, ca: undefined, cert: undefined, key: undefined, servername: undefined, token: undefined };
  assert.deepEqual(parseClientArgs([], {}), {
    help: false, version: false, host: '127.0.0.1', port: 9000, clientId: undefined, name: '', window: 1024, messages: [],
    legacy: false, configPath: undefined, quiet: false, summary: false, connectTimeoutMs: 10000, ...noTls,
  });
  assert.deepEqual(parseClientArgs(['--host', 'h', '--port', '1', '--client-id', '4294967295', '--name', 'n', '--window', '2', 'a', 'b c'], {}), {
    help: false, version: false, host: 'h', port: 1, clientId: 4294967295, name: 'n', window: 2, messages: ['a', 'b c'],
    legacy: false, configPath: undefined, quiet: false, summary: false, connectTimeoutMs: 10000, ...noTls,
  });
  // TLS and token: --ca/--cert/--servername imply --tls; MSGS_TOKEN unless --token; an empty MSGS_TOKEN is none.
  const sec = parseClientArgs(['--ca', 'ca.pem', '--cert', 'c.pem', '--key', 'c.key', 'm'], { MSGS_TOKEN: 't1' });
  assert.deepEqual([sec.tls, sec.ca, sec.cert, sec.key, sec.token], [true, 'ca.pem', 'c.pem', 'c.key', 't1']);
  assert.equal(parseClientArgs(['--token', 't2'], { MSGS_TOKEN: 't1' }).token, 't2');
  assert.equal(parseClientArgs([], { MSGS_TOKEN: '' }).token, undefined);
  assert.equal(parseClientArgs(['--tls'], {}).tls, true);
  assert.throws(() => parseClientArgs(['--cert', 'c.pem'], {}), /--cert and --key go together/);
  assert.throws(() => parseClientArgs(['--token', ''], {}), /--token must not be empty/);
  assert.deepEqual(parseClientArgs(['--legacy', '--config', 'app.conf', '7', 'x,y']).messages, ['7', 'x,y']);
  assert.throws(() => parseClientArgs(['--legacy', '7']), /exactly <client_id> <msg1,msg2,...>/);
  assert.throws(() => parseClientArgs(['--port', '0']), /--port must be an integer 1\.\.65535, got '0'/);
  assert.throws(() => parseClientArgs(['--window', 'many']), UsageError);
  assert.throws(() => parseClientArgs(['--client-id', '4294967296']), UsageError);
  assert.throws(() => parseClientArgs(['--nope']), UsageError);
});

test('msglog arguments: commands, formats, errors', () => {
  assert.deepEqual(parseLogArgs(['cat', 'f.log']), {
    help: false, command: 'cat', file: 'f.log', format: 'json', allowTornTail: false, fromSeq: undefined,
  });
  assert.deepEqual(parseLogArgs(['cat', 'f.log', '--format', 'text', '--allow-torn-tail', '--from-seq', '42']), {
    help: false, command: 'cat', file: 'f.log', format: 'text', allowTornTail: true, fromSeq: 42n,
  });
  assert.deepEqual(parseLogArgs(['tail', 'dir', '-n', '5', '-f']), {
    help: false, command: 'tail', file: 'dir', format: 'json', lines: 5, follow: true, pollMs: 250,
  });
  assert.deepEqual(parseLogArgs(['stats', 'dir']), { help: false, command: 'stats', file: 'dir' });
  assert.throws(() => parseLogArgs(['cat', 'a', '--from-seq', 'x']), /--from-seq must be a sequence number/);
  assert.throws(() => parseLogArgs(['tail', 'a', '--allow-torn-tail']), /does not apply to msglog tail/);
  assert.deepEqual(parseLogArgs(['verify', 'f.log']), { help: false, command: 'verify', file: 'f.log' });
  assert.deepEqual(parseLogArgs(['--help']), { help: true });
  // --jetstream toward a secured NATS: TLS files as flags, secrets from the environment only.
  assert.deepEqual(
    parseLogArgs(['stats', '--jetstream', 'tls://h:4222', '--stream', 'S', '--jetstream-tls-ca', 'ca.pem', '--jetstream-user', 'u'], { MSGS_JETSTREAM_PASSWORD: 'pw' }),
    { help: false, command: 'stats', jetstream: ['tls://h:4222'], stream: 'S', nats: { tls: { ca: 'ca.pem', cert: undefined, key: undefined }, user: 'u', password: 'pw' } },
  );
  assert.throws(() => parseLogArgs(['stats', '--jetstream', 'h', '--stream', 'S', '--jetstream-tls-cert', 'c.pem'], {}), /go together/);
  assert.throws(() => parseLogArgs(['stats', '--jetstream', 'h', '--stream', 'S', '--jetstream-user', 'u', '--jetstream-creds', 'x.creds'], {}), /one kind of NATS credentials/);
  assert.throws(() => parseLogArgs(['stats', '--jetstream', 'h', '--stream', 'S'], { MSGS_JETSTREAM_PASSWORD: 'pw' }), /needs --jetstream-user/);
  assert.throws(() => parseLogArgs(['verify', 'f.log', '--jetstream-creds', 'x.creds'], {}), /does not apply to msglog verify/);
  assert.throws(() => parseLogArgs([]), /missing command/);
  assert.throws(() => parseLogArgs(['dump', 'f']), /unknown command 'dump'/);
  assert.throws(() => parseLogArgs(['cat']), /needs a file/);
  assert.throws(() => parseLogArgs(['cat', 'a', 'b']), /unexpected argument 'b'/);
  assert.throws(() => parseLogArgs(['cat', 'a', '--format', 'xml']), /json or text/);
  assert.throws(() => parseLogArgs(['verify', 'a', '--format', 'json']), UsageError);
});

// ---- spawned CLIs: help, usage and config errors ------------------------------------

for (const name of ['msgserver', 'msgclient', 'msglog']) {
  test(`${name} --help prints usage and exits 0`, T, async () => {
    const r = await run(name, ['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^usage: ${name} `));
    assert.match(r.stdout, /exit status:/);
  });
  test(`${name} starts with a node shebang`, () => {
    assert.ok(fs.readFileSync(CLI(name), 'utf8').startsWith('#!/usr/bin/env node\n'));
  });
}

test('msgserver: an unknown flag exits 2 with one line pointing at --help', T, async () => {
  const r = await run('msgserver', ['--bogus']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'msgserver: unknown flag --bogus (see msgserver --help)\n');
});

test('msgserver: invalid options exit 2 naming every bad field', T, async () => {
  const r = await run('msgserver', ['--port', 'x', '--ack-mode', 'maybe']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /port = 'x' \(allowed: integer 0\.\.65535\)/);
  assert.match(r.stderr, /ackMode = 'maybe'/);
  assert.equal(r.stdout, '');
});

test('msgserver: a bad --config file exits 2 naming the file; flags are checked with it', T, async () => {
  const dir = tmpDir();
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, '{"port": 9000,');
  const r1 = await run('msgserver', ['--config', bad]);
  assert.equal(r1.code, 2);
  assert.match(r1.stderr, new RegExp(`invalid config file ${bad.replace(/[.\\]/g, '\\$&')}`));

  const unknown = path.join(dir, 'unknown.json');
  fs.writeFileSync(unknown, JSON.stringify({ port: 9000, limits: { maxConections: 5 } }));
  const r2 = await run('msgserver', ['--config', unknown, '--port', '70000']);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /port = 70000/); // the flag overrode the file's valid port
  assert.match(r2.stderr, /limits\.maxConections = 5 \(allowed: no such option/);

  const r3 = await run('msgserver', ['--config', path.join(dir, 'missing.json')]);
  assert.equal(r3.code, 2);
  assert.match(r3.stderr, /cannot read config file/);
});

// ---- msgclient against a fake server ----------------------------------------------

/** A one-connection fake server: answers HELLO_OK, ACKs each message with status(payload). */
async function fakeServer(status: (payload: string) => number): Promise<{ port: number; received: string[]; close: () => Promise<void> }> {
  const received: string[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    let buf = Buffer.alloc(0);
    let helloDone = false;
    s.on('error', () => {});
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!helloDone && buf.length >= 12) {
        helloDone = true;
        buf = buf.subarray(12);
        const ok = Buffer.alloc(12);
        ok.write('MSGS', 'latin1');
        ok[4] = 1;
        ok.writeUInt32BE(1 << 20, 8);
        s.write(ok);
      }
      while (helloDone && buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const nameLen = buf[5];
        const msgId = buf.readBigUInt64BE(6);
        const payload = buf.toString('utf8', 14 + nameLen, 4 + len);
        received.push(payload);
        const ack = Buffer.alloc(20);
        ack.writeUInt32BE(16, 0);
        ack[4] = 0x81;
        ack[5] = status(payload);
        ack.writeUInt32BE(1, 8);
        ack.writeBigUInt64BE(msgId, 12);
        s.write(ack);
        buf = buf.subarray(4 + len);
      }
    });
    s.on('end', () => s.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { port, received, close };
}

test('msgclient sends its arguments and prints one line per ACK', T, async () => {
  const fake = await fakeServer(() => 0);
  try {
    const r = await run('msgclient', ['--port', String(fake.port), 'one', 'two words', 'three']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'ack msg_id=1 status=OK\nack msg_id=2 status=OK\nack msg_id=3 status=OK\n');
    assert.deepEqual(fake.received, ['one', 'two words', 'three']);
  } finally {
    await fake.close();
  }
});

test('msgclient exits 1 when a message gets a non-OK status', T, async () => {
  const fake = await fakeServer((p) => (p === 'bad' ? 1 : 0));
  try {
    const r = await run('msgclient', ['--port', String(fake.port), 'good', 'bad', 'good']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, 'ack msg_id=1 status=OK\nack msg_id=2 status=TOO_LARGE\nack msg_id=3 status=OK\n');
    assert.match(r.stderr, /1 message\(s\) not acknowledged OK/);
  } finally {
    await fake.close();
  }
});

test('msgclient with no message arguments sends each stdin line', T, async () => {
  const fake = await fakeServer(() => 0);
  try {
    const lines = Array.from({ length: 500 }, (_, i) => `line ${i}`);
    const r = await run('msgclient', ['--port', String(fake.port), '--window', '8'], lines.join('\n') + '\n');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fake.received, lines);
    assert.equal(r.stdout.split('\n').filter((l) => /^ack msg_id=\d+ status=OK$/.test(l)).length, 500);
  } finally {
    await fake.close();
  }
});

test('msgclient exits 3 when it cannot connect', T, async () => {
  const fake = await fakeServer(() => 0);
  await fake.close(); // the port is now closed
  const r = await run('msgclient', ['--port', String(fake.port), 'x']);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /cannot connect to 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
});

// ---- msglog on crafted files --------------------------------------------------------

const haveLogReader = fs.existsSync(path.join(ROOT, 'dist', 'read', 'log-reader.js')) && fs.existsSync(path.join(ROOT, 'dist', 'format', 'record.js'));
const LOG_SKIP = haveLogReader ? false : 'dist/read/log-reader.js or dist/format/record.js not built yet';

/** Writes a log with the given payloads; returns the path and each record's offset. */
function writeLog(dir: string, payloads: Buffer[]): { file: string; offsets: number[]; size: number } {
  // Required lazily so this file loads even before the formats helper's modules exist.
  const rec = require('../dist/format/record') as typeof import('../dist/format/record');
  const parts: Buffer[] = [rec.encodeFileHeader()];
  const offsets: number[] = [];
  let off = parts[0].length;
  payloads.forEach((payload, i) => {
    const r = rec.encodeRecord({
      seq: BigInt(i + 1),
      timeUs: 1_700_000_000_000_000n + BigInt(i),
      clientId: 42,
      msgId: BigInt(100 + i),
      name: Buffer.from(i === 1 ? 'two\nlines' : 'n'),
      payload,
    });
    offsets.push(off);
    off += r.length;
    parts.push(r);
  });
  const file = path.join(dir, 'messages.log');
  fs.writeFileSync(file, Buffer.concat(parts));
  return { file, offsets, size: off };
}

const PAYLOADS = [Buffer.from('hello'), Buffer.from('back\\slash and\nnewline'), Buffer.from([0xff, 0x00, 0x41])];

test('msglog cat prints JSON lines; invalid UTF-8 payloads also carry payloadBase64', { ...T, skip: LOG_SKIP }, async () => {
  const { file } = writeLog(tmpDir(), PAYLOADS);
  const r = await run('msglog', ['cat', file]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 3);
  assert.deepEqual(lines[0], {
    seq: '1',
    time: new Date(1_700_000_000_000).toISOString(),
    clientId: 42,
    msgId: '100',
    name: 'n',
    payload: 'hello',
  });
  assert.equal(lines[1].payload, 'back\\slash and\nnewline');
  assert.equal(lines[1].payloadBase64, undefined);
  assert.equal(lines[2].payloadBase64, Buffer.from([0xff, 0x00, 0x41]).toString('base64'));
});

test('msglog cat --format text prints the original line format, escaped', { ...T, skip: LOG_SKIP }, async () => {
  const { file } = writeLog(tmpDir(), PAYLOADS.slice(0, 2));
  const r = await run('msglog', ['cat', file, '--format', 'text']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '42 100 n hello\n42 101 two\\nlines back\\\\slash and\\nnewline\n');
});

test('msglog verify: OK summary exits 0; corruption exits 1 naming the offset', { ...T, skip: LOG_SKIP }, async () => {
  const dir = tmpDir();
  const { file, offsets, size } = writeLog(dir, PAYLOADS);
  const ok = await run('msglog', ['verify', file]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, `${file}: OK, 3 records, seq 1..3, ${size} bytes\n`);

  const bytes = fs.readFileSync(file);
  bytes[offsets[1] + 8 + 29 + 5] ^= 0xff; // a payload byte of record 2: its CRC no longer matches
  fs.writeFileSync(file, bytes);
  const bad = await run('msglog', ['verify', file]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, new RegExp(`CORRUPT at offset ${offsets[1]}\\b`));
  assert.match(bad.stderr, /1 records/);

  const cat = await run('msglog', ['cat', file]);
  assert.equal(cat.code, 1);
  assert.equal(cat.stdout.trimEnd().split('\n').length, 1); // the good record before the damage
  assert.match(cat.stderr, new RegExp(`corrupt at offset ${offsets[1]}\\b`));
});

test('msglog: a torn tail fails verify and cat, unless cat --allow-torn-tail', { ...T, skip: LOG_SKIP }, async () => {
  const { file, offsets, size } = writeLog(tmpDir(), PAYLOADS);
  fs.truncateSync(file, size - 2);
  const v = await run('msglog', ['verify', file]);
  assert.equal(v.code, 1);
  assert.match(v.stderr, new RegExp(`TORN TAIL at offset ${offsets[2]}\\b`));
  const c1 = await run('msglog', ['cat', file]);
  assert.equal(c1.code, 1);
  assert.match(c1.stderr, /torn tail/);
  const c2 = await run('msglog', ['cat', file, '--allow-torn-tail']);
  assert.equal(c2.code, 0, c2.stderr);
  assert.equal(c2.stdout.trimEnd().split('\n').length, 2);
});

test('msglog: a missing file exits 3, a bad command exits 2', T, async () => {
  const missing = await run('msglog', ['verify', path.join(tmpDir(), 'nope.log')]);
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /ENOENT/);
  const usage = await run('msglog', ['frobnicate', 'x']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /unknown command 'frobnicate'/);
});

// ---- end to end with the real server ---------------------------------------------------

function serverBuilt(): string | false {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'server', 'server.js'))) return 'dist/server/server.js not built yet';
  const hasAddon = ['build/Release', 'prebuilds/linux-x64'].some((d) => {
    const dir = path.join(ROOT, d);
    return fs.existsSync(dir) && fs.readdirSync(dir).some((f) => f.endsWith('.node'));
  });
  return hasAddon ? false : 'native addon not built yet';
}

test('end to end: msgserver + msgclient + msglog', { ...T, skip: serverBuilt() || LOG_SKIP }, async () => {
  const dir = tmpDir();
  const log = path.join(dir, 'e2e.log');
  const server = spawn(process.execPath, [CLI('msgserver'), '--port', '0', '--file', log, '--service-threads', '2'], {
    timeout: 25_000,
  });
  let serverErr = '';
  server.stderr.setEncoding('utf8').on('data', (d: string) => (serverErr += d));
  const exited = new Promise<number | null>((resolve) => server.on('close', (code) => resolve(code)));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      server.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const m = /^msgserver listening on 127\.0\.0\.1:(\d+), writing (.+) \(ackMode written\)$/m.exec(out);
        if (m) {
          assert.equal(m[2], log);
          resolve(Number(m[1]));
        }
      });
      server.on('close', (code) => reject(new Error(`msgserver exited ${code} before listening: ${serverErr}`)));
    });
    const c = await run('msgclient', ['--port', String(port), '--name', 'e2e', '--client-id', '7', 'alpha', 'beta', 'gamma']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout, 'ack msg_id=1 status=OK\nack msg_id=2 status=OK\nack msg_id=3 status=OK\n');
  } finally {
    server.kill('SIGINT');
  }
  assert.equal(await exited, 0, serverErr);
  const cat = await run('msglog', ['cat', log]);
  assert.equal(cat.code, 0, cat.stderr);
  const recs = cat.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(recs.map((r) => [r.seq, r.clientId, r.msgId, r.name, r.payload]), [
    ['1', 7, '1', 'e2e', 'alpha'],
    ['2', 7, '2', 'e2e', 'beta'],
    ['3', 7, '3', 'e2e', 'gamma'],
  ]);
  const v = await run('msglog', ['verify', log]);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /OK, 3 records, seq 1\.\.3/);
});
