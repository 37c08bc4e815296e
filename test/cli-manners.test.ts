// The CLIs as a user meets them, run as the installed bins are (node
// dist/cli/<name>.js, or through a pseudo-terminal with script(1) where a
// terminal matters): --version and -h everywhere; a flag error is one line
// pointing at --help, with the closest flag suggested and numbers checked by
// our own messages; msgserver's logs readable on a terminal and JSON
// elsewhere, and a failure to start is one line naming cause and fix;
// msgclient --quiet, --summary and its progress line; msglog on a directory
// without segments and the true count of valid bytes before damage;
// msgclient --legacy pausing TIME_INTERVAL_BTN_MSG seconds.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';

import { closestFlag, parseFlags, UsageError } from '../dist/cli/flags';
import { prettyLine, usePrettyLogs } from '../dist/cli/log-format';
import { explainStartFailure } from '../dist/cli/explain';
import { LatencyHistogram } from '../dist/cli/summary';
import { encodeFileHeader, encodeRecord } from '../dist/format/record';
import { tempDir } from './helpers';

const ROOT = path.join(__dirname, '..');
const BIN = (name: string): string => path.join(ROOT, 'dist', 'cli', `${name}.js`);
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const T = { timeout: 60_000 };
const CLIS = ['msgserver', 'msgclient', 'msglog', 'msgbench'];
const HAVE_SCRIPT = spawnSync('script', ['--version']).status === 0;
const NO_TTY = HAVE_SCRIPT ? false : 'script(1) is not installed: no pseudo-terminal to test with';

const dirs: string[] = [];
const closers: Array<() => void> = [];
after(() => {
  for (const c of closers) c();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function dir(): string {
  const d = tempDir('msgserver-cli-manners-');
  dirs.push(d);
  return d;
}

/** The environment without the runner's MSGSERVER_* options or MS_HOME (the addon path is kept). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if ((!k.startsWith('MSGSERVER_') || k === 'MSGSERVER_ADDON') && k !== 'MS_HOME' && k !== 'NO_COLOR') env[k] = v;
  }
  return { ...env, ...extra };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(name: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [BIN(name), ...args], { env: opts.env ?? cleanEnv(), timeout: 50_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - t0 }));
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs a shell command line on a pseudo-terminal (stdout and stderr are the terminal); returns what it showed. */
function runOnTty(cmdline: string, env: NodeJS.ProcessEnv = cleanEnv()): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', cmdline, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'], timeout: 50_000 });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    // stdin stays open until the command ends: an EOF would end the session early.
    child.on('close', (code) => resolve({ code, out }));
  });
}

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

async function occupiedPort(): Promise<number> {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  closers.push(() => holder.close());
  return (holder.address() as net.AddressInfo).port;
}

function serverBuilt(): string | false {
  const hasAddon = ['build/Release', 'prebuilds/linux-x64'].some((d) => {
    const p = path.join(ROOT, d);
    return fs.existsSync(p) && fs.readdirSync(p).some((f) => f.endsWith('.node'));
  });
  return hasAddon ? false : 'native addon not built';
}

// ---- item 2: --version, -h, one-line flag errors ---------------------------------

for (const name of CLIS) {
  test(`${name} --version and -h`, T, async () => {
    const v = await run(name, ['--version']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, new RegExp(`^${name} ${VERSION.replace(/\./g, '\\.')} \\(node v\\d+`));
    const h = await run(name, ['-h']);
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, new RegExp(`^usage: ${name} `));
    assert.match(h.stdout, /--version/);
  });
}

const FLAG_ERRORS: Array<[string, string[], RegExp]> = [
  ['msgserver', ['--max-conections', '5'], /^msgserver: unknown flag --max-conections; did you mean --max-connections\?/],
  ['msgserver', ['--prot', 'v1'], /^msgserver: unknown flag --prot; did you mean --protocol\?/],
  ['msgserver', ['--prt', '9000'], /^msgserver: unknown flag --prt; did you mean --port\?/],
  ['msgserver', ['--log-format', 'xml'], /^msgserver: --log-format must be one of auto, pretty, json, got 'xml'/],
  ['msgserver', ['stray'], /^msgserver: unexpected argument 'stray'/],
  ['msgclient', ['--prot', '9000', 'x'], /^msgclient: unknown flag --prot; did you mean --port\?/],
  ['msgclient', ['--client-id', '-1', 'x'], /^msgclient: --client-id must be an integer 0\.\.4294967295, got '-1'/],
  ['msgclient', ['--window', '0', 'x'], /^msgclient: --window must be an integer 1\.\.1000000, got '0'/],
  ['msgclient', ['--port=70000', 'x'], /^msgclient: --port must be an integer 1\.\.65535, got '70000'/],
  ['msgclient', ['--port'], /^msgclient: --port needs a value/],
  ['msgclient', ['--quiet=yes'], /^msgclient: --quiet takes no value/],
  ['msglog', ['verfy', 'x.log'], /^msglog: unknown command 'verfy'; did you mean 'verify'\?/],
  ['msglog', ['tail', 'x.log', '--folow'], /^msglog: unknown flag --folow; did you mean --follow\?/],
  ['msglog', ['tail', 'x.log', '-n', '-3'], /^msglog: --lines must be an integer 0\.\.1000000, got '-3'/],
  ['msgbench', ['--conections', '4'], /^msgbench: unknown flag --conections; did you mean --connections\?/],
  ['msgbench', ['-c', '0'], /^msgbench: --connections must be an integer 1\.\.1000000, got '0'/],
  ['msgbench', ['-n'], /^msgbench: -n \(--messages\) needs a value/],
];

for (const [name, args, want] of FLAG_ERRORS) {
  test(`${name} ${args.join(' ')}: one line, see --help, exit 2`, T, async () => {
    const r = await run(name, args);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, want);
    assert.match(r.stderr, new RegExp(`\\(see ${name} --help\\)\\n$`));
    assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /usage:|ambiguous|ERR_PARSE_ARGS/);
  });
}

test('msgserver checks a negative number as a value and says what is allowed', T, async () => {
  const r = await run('msgserver', ['--port', '-1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /port = -1 \(allowed: integer 0\.\.65535\)/);
  assert.doesNotMatch(r.stderr, /ambiguous/);
  const env = await run('msgserver', [], { env: cleanEnv({ MSGSERVER_LOG_FORMAT: 'fancy' }) });
  assert.equal(env.code, 2);
  assert.match(env.stderr, /MSGSERVER_LOG_FORMAT must be one of auto, pretty, json, got 'fancy'/);
});

test('the flag parser: suggestions, values that start with "-", --, short flags', () => {
  assert.equal(closestFlag('prot', ['port', 'protocol', 'host']), 'protocol'); // a prefix of exactly one
  assert.equal(closestFlag('hots', ['port', 'host']), 'host');
  assert.equal(closestFlag('zzzzzz', ['port', 'host']), undefined);
  const specs = [
    { name: 'lines', short: 'n', type: 'string' as const },
    { name: 'follow', short: 'f', type: 'boolean' as const },
    { name: 'quiet', short: 'q', type: 'boolean' as const },
    { name: 'name', type: 'string' as const },
  ];
  assert.deepEqual(parseFlags(['-n5', '-fq', 'a', '--', '--name', '-x'], specs, { positionals: true }), {
    values: { lines: '5', follow: true, quiet: true },
    positionals: ['a', '--name', '-x'],
  });
  assert.deepEqual(parseFlags(['--name=-dash', '--lines', '-1', '-5'], specs, { positionals: true }), { values: { name: '-dash', lines: '-1' }, positionals: ['-5'] });
  assert.throws(() => parseFlags(['--name', '-f'], specs, { positionals: true }), /--name needs a value/); // -f is a flag, not a value
  assert.throws(() => parseFlags(['--name', '--lines', '3'], specs, { positionals: true }), /--name needs a value/);
  assert.throws(() => parseFlags(['-z'], specs, { positionals: true }), (e: unknown) => e instanceof UsageError && /unknown flag -z/.test(e.message));
  assert.throws(() => parseFlags(['x'], specs, { positionals: false }), /unexpected argument 'x'/);
});

// ---- item 3: logs for people; one clear line when the start fails ------------------

test('prettyLine: time, level, message, key=value, objects on an indented line, errors left out', () => {
  const line = prettyLine(
    JSON.stringify({ level: 40, time: Date.UTC(2024, 0, 1, 12, 3, 7, 412), pid: 1, hostname: 'h', name: 'msgserver', msg: 'recovered: cut', port: 9000, file: 'a b.log', recovered: { offset: 16, bytesCut: 3 }, err: { stack: 'x' } }),
  );
  const [first, second, ...rest] = line.split('\n');
  assert.match(first, /^\d\d:\d\d:\d\d\.\d{3} WARN  recovered: cut port=9000 file="a b\.log"$/);
  assert.equal(second, '    recovered: offset=16 bytesCut=3');
  assert.deepEqual(rest, []);
  assert.doesNotMatch(line, /stack|hostname|pid/);
  assert.match(prettyLine(JSON.stringify({ level: 60, msg: 'boom' }), { color: true }), /\x1b\[1;31mFATAL\x1b\[0m boom/);
  assert.equal(prettyLine('not json'), 'not json');
  assert.equal(usePrettyLogs('auto', true), true);
  assert.equal(usePrettyLogs('auto', false), false);
  assert.equal(usePrettyLogs('json', true), false);
  assert.equal(usePrettyLogs('pretty', false), true);
});

test('explainStartFailure names the cause and the flag that fixes it', () => {
  const ctx = { host: '127.0.0.1', port: 80, file: '/var/msgs/m.log', rotating: false };
  assert.match(explainStartFailure({ code: 'EACCES', syscall: 'bind', message: 'x' }, ctx), /127\.0\.0\.1:80: permission denied \(EACCES\).*--port/);
  assert.match(explainStartFailure({ code: 'EADDRNOTAVAIL', syscall: 'bind', message: 'x' }, ctx), /not an address of this host \(EADDRNOTAVAIL\).*--host/);
  assert.match(explainStartFailure({ code: 'EISDIR', syscall: 'open', path: '/var/msgs' }, ctx), /\/var\/msgs: it is a directory \(EISDIR\).*--file/);
  assert.match(explainStartFailure({ code: 'EACCES', syscall: 'open', path: '/var/msgs/m.log' }, ctx), /permission denied \(EACCES\).*--file/);
  assert.match(explainStartFailure({ code: 'ERR_MSGS_NOT_A_LOG', path: '/x.log' }, ctx), /not a msgserver log.*--file/);
  assert.equal(explainStartFailure(new Error('jetstream: cannot connect'), ctx), 'cannot start: jetstream: cannot connect');
});

test('msgserver, port in use, JSON logs (stderr not a terminal): one fatal line naming the port and --port', { ...T, skip: serverBuilt() }, async () => {
  const port = await occupiedPort();
  const r = await run('msgserver', ['--port', String(port), '--file', path.join(dir(), 'm.log')]);
  assert.equal(r.code, 1);
  const lines = r.stderr.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const fatal = lines.filter((l) => l.level === 60);
  assert.equal(fatal.length, 1, r.stderr);
  assert.equal(fatal[0], lines[lines.length - 1]);
  assert.match(String(fatal[0].msg), new RegExp(`^cannot listen on 127\\.0\\.0\\.1:${port}: port ${port} is already in use \\(EADDRINUSE\\);.* --port <n>`));
  assert.deepEqual(fatal[0].error, {
    message: `listen EADDRINUSE 127.0.0.1:${port}: Address already in use`,
    code: 'EADDRINUSE',
    errno: -98,
    syscall: 'bind',
    address: '127.0.0.1',
    port,
  });
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

test('msgserver --log-format pretty: readable lines; the failure is one line', { ...T, skip: serverBuilt() }, async () => {
  const port = await occupiedPort();
  const r = await run('msgserver', ['--port', String(port), '--file', path.join(dir(), 'm.log'), '--log-format', 'pretty']);
  assert.equal(r.code, 1);
  assert.doesNotMatch(r.stderr, /^\{/m, 'no JSON line');
  assert.doesNotMatch(r.stderr, /\x1b\[/, 'no colour off a terminal');
  assert.match(r.stderr, /^\d\d:\d\d:\d\d\.\d{3} INFO  effective config configFile=null fromEnv=\{\}\n {4}config: host=127\.0\.0\.1 port=\d+ /m);
  const fatal = r.stderr.split('\n').filter((l) => / FATAL /.test(l));
  assert.equal(fatal.length, 1);
  assert.match(fatal[0], new RegExp(`FATAL cannot listen on 127\\.0\\.0\\.1:${port}: port ${port} is already in use \\(EADDRINUSE\\); stop the program using it, or choose another port with --port <n> \\(--port 0 picks a free one\\)$`));
});

test('msgserver on a terminal logs readable lines by default, JSON with --log-format json', { ...T, skip: serverBuilt() || NO_TTY }, async () => {
  const port = await occupiedPort();
  const file = path.join(dir(), 'm.log');
  const base = `${q(process.execPath)} ${q(BIN('msgserver'))} --port ${port} --file ${q(file)}`;
  const tty = await runOnTty(base);
  assert.equal(tty.code, 1);
  assert.doesNotMatch(tty.out, /"level":/);
  assert.match(tty.out, /\d\d:\d\d:\d\d\.\d{3} \x1b\[1;31mFATAL\x1b\[0m cannot listen on .*--port <n>/);
  const json = await runOnTty(`${base} --log-format json`);
  assert.equal(json.code, 1);
  assert.match(json.out, /\{"level":60,.*"msg":"cannot listen on 127\.0\.0\.1:\d+: port \d+ is already in use/);
  const noColor = await runOnTty(base, cleanEnv({ NO_COLOR: '1' }));
  assert.match(noColor.out, /\d{3} FATAL cannot listen/);
});

test('msgserver start failures: the metrics port, a missing directory, a corrupt log each name their fix', { ...T, skip: serverBuilt() }, async () => {
  const d = dir();
  const busy = await occupiedPort();
  const m = await run('msgserver', ['--port', '0', '--file', path.join(d, 'a.log'), '--metrics-port', String(busy), '--log-format', 'pretty']);
  assert.equal(m.code, 1);
  assert.match(m.stderr, new RegExp(`FATAL metrics: cannot listen on 127\\.0\\.0\\.1:${busy}: port ${busy} is already in use \\(EADDRINUSE\\);.*--metrics-port <n>`));

  const missing = path.join(d, 'nope', 'm.log');
  const f = await run('msgserver', ['--port', '0', '--file', missing, '--log-format', 'pretty']);
  assert.equal(f.code, 1);
  assert.match(f.stderr, new RegExp(`FATAL cannot open the log file ${missing.replace(/[.]/g, '\\.')}: its directory .*nope does not exist \\(ENOENT\\); create it, or choose another path with --file`));

  const recs = [1n, 2n, 3n].map((seq) => encodeRecord({ seq, timeUs: 1n, clientId: 1, msgId: seq, name: Buffer.from('n'), payload: Buffer.from('payload') }));
  const corrupt = path.join(d, 'corrupt.log');
  const bytes = Buffer.concat([encodeFileHeader(), ...recs]);
  bytes[16 + recs[0].length + 30] ^= 0xff;
  fs.writeFileSync(corrupt, bytes);
  const c = await run('msgserver', ['--port', '0', '--file', corrupt, '--log-format', 'pretty']);
  assert.equal(c.code, 1);
  assert.match(c.stderr, /FATAL .*corrupt record at byte offset \d+ .*start with --repair to set the damaged file aside.*msglog verify/);
});

// ---- item 5: msgclient --quiet, --summary, progress ------------------------------------

/** A v1 fake server: HELLO_OK, then ACK each message with status(payload), each after delayMs. */
async function fakeServer(status: (payload: string) => number, delayMs = 0): Promise<number> {
  const sockets: net.Socket[] = [];
  const srv = net.createServer((s) => {
    sockets.push(s);
    let buf = Buffer.alloc(0);
    let hello = false;
    s.on('error', () => {});
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!hello && buf.length >= 12) {
        hello = true;
        buf = buf.subarray(12);
        const ok = Buffer.alloc(12);
        ok.write('MSGS', 'latin1');
        ok[4] = 1;
        ok.writeUInt32BE(1 << 20, 8);
        s.write(ok);
      }
      while (hello && buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const nameLen = buf[5];
        const msgId = buf.readBigUInt64BE(6);
        const payload = buf.toString('utf8', 14 + nameLen, 4 + len);
        const ack = Buffer.alloc(20);
        ack.writeUInt32BE(16, 0);
        ack[4] = 0x81;
        ack[5] = status(payload);
        ack.writeUInt32BE(1, 8);
        ack.writeBigUInt64BE(msgId, 12);
        if (delayMs > 0) setTimeout(() => s.write(ack), delayMs);
        else s.write(ack);
        buf = buf.subarray(4 + len);
      }
    });
    s.on('end', () => s.end());
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  closers.push(() => {
    for (const s of sockets) s.destroy();
    srv.close();
  });
  return (srv.address() as net.AddressInfo).port;
}

test('msgclient --quiet prints only the failures, on stderr', T, async () => {
  const port = await fakeServer((p) => (p === 'bad' ? 1 : 0));
  const ok = await run('msgclient', ['--port', String(port), '--quiet', 'a', 'b']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, '');
  assert.equal(ok.stderr, '');
  const lines = ['one', 'bad', 'three', 'bad'].join('\n') + '\n';
  const bad = await run('msgclient', ['--port', String(port), '-q'], { input: lines });
  assert.equal(bad.code, 1);
  assert.equal(bad.stdout, '');
  assert.equal(bad.stderr, 'ack msg_id=2 status=TOO_LARGE\nack msg_id=4 status=TOO_LARGE\nmsgclient: 2 message(s) not acknowledged OK\n');
});

function parseUs(v: string): number {
  const m = /^([\d.]+) (us|ms|s)$/.exec(v);
  assert.ok(m, `a duration: ${v}`);
  return Number(m[1]) * (m[2] === 's' ? 1e6 : m[2] === 'ms' ? 1e3 : 1);
}

test('msgclient --summary: counts, rate and latency percentiles at the end, no line per message', T, async () => {
  const port = await fakeServer((p) => (p === 'line 7' ? 2 : 0));
  const input = Array.from({ length: 300 }, (_, i) => `line ${i}`).join('\n') + '\n';
  const r = await run('msgclient', ['--port', String(port), '--summary', '--window', '16'], { input });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'ack msg_id=8 status=WRITE_FAILED\nmsgclient: 1 message(s) not acknowledged OK\n');
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 2, r.stdout);
  assert.match(lines[0], /^messages 300 sent, 299 OK, 1 failed in \d+\.\d{3} s \([\d,]+ msgs\/s\)$/);
  const m = /^latency {2}p50 (.+), p90 (.+), p99 (.+), max (.+) \(send to ACK, 299 ACKed OK\)$/.exec(lines[1]);
  assert.ok(m, lines[1]);
  const [p50, p90, p99, max] = m.slice(1).map(parseUs);
  assert.ok(p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= max, lines[1]);
  assert.doesNotMatch(r.stderr + r.stdout, /msgclient: [\d.]+ s {2}sent/, 'no progress line off a terminal');
});

test('msgclient --summary on a terminal shows a progress line while a long input is sent', { ...T, skip: NO_TTY }, async () => {
  const port = await fakeServer(() => 0, 3); // each ACK 3 ms late: 400 messages at window 1 take > 1 s
  const input = path.join(dir(), 'in.txt');
  fs.writeFileSync(input, Array.from({ length: 400 }, (_, i) => `m${i}`).join('\n') + '\n');
  const r = await runOnTty(`${q(process.execPath)} ${q(BIN('msgclient'))} --port ${port} --window 1 --summary < ${q(input)}`);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /\rmsgclient: \d+\.\d s {2}sent [\d,]+ {2}ok [\d,]+ {2}failed 0 {2}[\d,]+ msgs\/s\x1b\[K/);
  assert.match(r.out, /\r\x1b\[Kmessages 400 sent, 400 OK, 0 failed/, 'the progress line is cleared before the summary');
});

test('LatencyHistogram percentiles are within a few percent', () => {
  const h = new LatencyHistogram();
  for (let i = 1; i <= 10_000; i++) h.add(i / 10); // 0.1 .. 1000 us
  const near = (got: number, want: number): void => assert.ok(Math.abs(got - want) / want < 0.03, `${got} vs ${want}`);
  near(h.percentile(50), 500);
  near(h.percentile(90), 900);
  near(h.percentile(99), 990);
  assert.equal(h.max, 1000);
  assert.ok(h.percentile(100) <= h.max);
  assert.ok(Number.isNaN(new LatencyHistogram().percentile(50)));
});

// ---- item 6: msglog ------------------------------------------------------------

function records(first: number, n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) =>
    encodeRecord({ seq: BigInt(first + i), timeUs: 1_700_000_000_000_000n, clientId: 3, msgId: BigInt(i), name: Buffer.from('n'), payload: Buffer.from(`payload ${first + i}`) }),
  );
}

test('msglog on a directory without segments: exit 1 naming what it holds, for verify, cat, stats and tail', T, async () => {
  const d = dir();
  const log = path.join(d, 'messages.log');
  fs.writeFileSync(log, Buffer.concat([encodeFileHeader(), ...records(1, 50)]));
  for (const cmd of ['verify', 'cat', 'stats', 'tail']) {
    const r = await run('msglog', [cmd, d]);
    assert.equal(r.code, 1, `${cmd}: ${r.stderr}`);
    assert.equal(r.stdout, '', cmd);
    assert.equal(
      r.stderr,
      `msglog: ${d} is a directory without log segments (files named like 00000000000000000001.log): it holds messages.log; ` +
        `to read a single log file, give its path: ${log}\n`,
      cmd,
    );
  }
  const ok = await run('msglog', ['verify', log]);
  assert.equal(ok.code, 0, ok.stderr);
  const empty = dir();
  const e = await run('msglog', ['verify', empty]);
  assert.equal(e.code, 1);
  assert.match(e.stderr, /without log segments .*: it is empty\n$/);
});

test('msglog verify reports the bytes valid before the damage, not the file size', T, async () => {
  const d = dir();
  const recs = records(1, 20);
  const file = path.join(d, 'damaged.log');
  const bytes = Buffer.concat([encodeFileHeader(), ...recs, Buffer.alloc(4000, 0x41)]);
  const bad = 16 + recs[0].length * 5; // record 6 starts here
  bytes[bad + 20] ^= 0xff;
  fs.writeFileSync(file, bytes);
  const r = await run('msglog', ['verify', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`CORRUPT at offset ${bad}: .* \\(5 records, seq 1\\.\\.5, ${bad} of ${bytes.length} bytes valid before it\\)\\n$`));

  const junk = path.join(d, 'junk.log');
  fs.writeFileSync(junk, Buffer.from('01234567'.replace(/\d/g, 'x')));
  const j = await run('msglog', ['verify', junk]);
  assert.equal(j.code, 1);
  assert.match(j.stderr, /CORRUPT at offset 0: not a log file \(bad header\) \(0 records, 0 of 8 bytes valid before it\)\n$/);

  // A rotated directory: the valid bytes count the whole first segment.
  const segs = path.join(d, 'segs');
  fs.mkdirSync(segs);
  const first = Buffer.concat([encodeFileHeader(), ...records(1, 3)]);
  const second = records(4, 3);
  const secondBytes = Buffer.concat([encodeFileHeader(), ...second]);
  const at = 16 + second[0].length; // record 5
  secondBytes[at + 20] ^= 0xff;
  fs.writeFileSync(path.join(segs, '00000000000000000001.log'), first);
  fs.writeFileSync(path.join(segs, '00000000000000000004.log'), secondBytes);
  const s = await run('msglog', ['verify', segs]);
  assert.equal(s.code, 1);
  const total = first.length + secondBytes.length;
  assert.match(s.stderr, new RegExp(`CORRUPT at offset ${at} of .*00000000000000000004\\.log: .* \\(4 records, seq 1\\.\\.4, ${first.length + at} of ${total} bytes valid before it, 2 segments\\)`));
});

// ---- item 8: msgclient --legacy pauses TIME_INTERVAL_BTN_MSG seconds ---------------------

/** A fake legacy server: answers "ack" to each 1160-byte struct and records when each arrived. */
async function fakeLegacy(): Promise<{ port: number; arrivals: number[] }> {
  const arrivals: number[] = [];
  const srv = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 1160) {
        arrivals.push(Date.now());
        buf = buf.subarray(1160);
        s.write('ack');
      }
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  closers.push(() => srv.close());
  return { port: (srv.address() as net.AddressInfo).port, arrivals };
}

test('msgclient --legacy waits TIME_INTERVAL_BTN_MSG seconds between messages, like the original', T, async () => {
  const home = dir();
  const legacy = await fakeLegacy();
  fs.writeFileSync(path.join(home, 'app.conf'), `IP=127.0.0.1\nPORT=${legacy.port}\nTIME_INTERVAL_BTN_MSG=1\n`);
  const r = await run('msgclient', ['--legacy', '5', 'a,b,c'], { env: cleanEnv({ MS_HOME: home }) });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /ack msg_id=3 latency=[\d.]+ms\ntotal latency/);
  assert.equal(legacy.arrivals.length, 3);
  const gaps = legacy.arrivals.slice(1).map((t, i) => t - legacy.arrivals[i]);
  for (const g of gaps) assert.ok(g >= 950 && g < 3000, `a gap of about 1 s, got ${g} ms`);

  // 0: no pause at all.
  const fast = await fakeLegacy();
  fs.writeFileSync(path.join(home, 'zero.conf'), `PORT=${fast.port}\nTIME_INTERVAL_BTN_MSG=0\n`);
  const z = await run('msgclient', ['--legacy', '--config', path.join(home, 'zero.conf'), '5', 'a,b,c']);
  assert.equal(z.code, 0, z.stderr);
  assert.ok(fast.arrivals[2] - fast.arrivals[0] < 900, 'no pause with 0');
});
