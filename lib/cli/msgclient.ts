#!/usr/bin/env node
// msgclient: sends messages (arguments, or stdin lines) through one pipelined
// connection. By default it prints one line per acknowledgement, in send
// order; --quiet prints only failures, --summary only failures and, at the
// end, the counts, rate and latency percentiles (with a progress line on a
// terminal while a long input is sent). --legacy is the original client.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { MessageClient } from '../client/client';
import { ConfigError, parseAppConf } from '../server/config';
import { LegacyClient } from '../client/legacy-client';
import { AckError, ProtocolMismatchError } from '../errors';
import {
  clientUsage,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_UNAVAILABLE,
  EXIT_USAGE,
  parseClientArgs,
  UsageError,
  type ClientArgs,
} from './args';
import { usageLine, versionLine } from './flags';
import { LatencyHistogram, progressLine, summaryLines } from './summary';

/** How long a run goes before the progress line appears (short runs never show it). */
const PROGRESS_AFTER_MS = 1000;
const PROGRESS_EVERY_MS = 250;

type Mode = 'lines' | 'quiet' | 'summary';

/**
 * Prints outcomes strictly in send order. ACKs already arrive in order, but a
 * send refused locally (too large) settles at once, ahead of earlier ones.
 * In 'lines' mode every outcome goes to stdout; otherwise only failures, to
 * stderr.
 */
class Reporter {
  sent = 0;
  ok = 0;
  failures = 0;
  readonly latency = new LatencyHistogram();
  readonly started = performance.now();
  private printed: Promise<void> = Promise.resolve();

  constructor(private readonly mode: Mode) {}

  track(msgId: bigint, send: () => Promise<unknown>): Promise<void> {
    this.sent++;
    const t0 = performance.now();
    const line = send().then(
      () => {
        this.ok++;
        this.latency.add((performance.now() - t0) * 1000);
        return this.mode === 'lines' ? `ack msg_id=${msgId} status=OK` : null;
      },
      (err: Error) => {
        this.failures++;
        if (err instanceof AckError) return `ack msg_id=${msgId} status=${err.statusName}`;
        return `error msg_id=${msgId}: ${err.message}`;
      },
    );
    this.printed = this.printed.then(async () => {
      const text = await line;
      if (text === null) return;
      if (this.mode === 'lines') process.stdout.write(text + '\n');
      else process.stderr.write(text + '\n');
    });
    return this.printed;
  }

  counts(): { sent: number; ok: number; failed: number; elapsedMs: number } {
    return { sent: this.sent, ok: this.ok, failed: this.failures, elapsedMs: performance.now() - this.started };
  }
}

/** The progress line on stderr, redrawn in place; only on a terminal, only after PROGRESS_AFTER_MS. */
function startProgress(reporter: Reporter): () => void {
  let drawn = false;
  let last = { t: 0, ok: 0 };
  const timer = setInterval(() => {
    const c = reporter.counts();
    if (c.elapsedMs < PROGRESS_AFTER_MS) return;
    const dt = (c.elapsedMs - last.t) / 1000;
    const rate = dt > 0 ? (c.ok - last.ok) / dt : 0;
    last = { t: c.elapsedMs, ok: c.ok };
    process.stderr.write(`\r${progressLine(c, rate)}\x1b[K`);
    drawn = true;
  }, PROGRESS_EVERY_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    if (drawn) process.stderr.write('\r\x1b[K');
  };
}

async function sendAll(client: MessageClient, args: ClientArgs, reporter: Reporter): Promise<void> {
  const done = args.messages.map((m, i) => {
    const msgId = BigInt(i + 1);
    return reporter.track(msgId, () => client.send(m, { name: args.name, msgId }));
  });
  await Promise.all(done);
}

/**
 * Streams stdin lines. At most 4 windows of sends are outstanding, so a huge
 * input is read only as fast as the server acknowledges it.
 */
async function sendLines(client: MessageClient, args: ClientArgs, reporter: Reporter): Promise<void> {
  const limit = args.window * 4;
  let outstanding: Promise<void>[] = [];
  let head = 0;
  let msgId = 0n;
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (client.closed) break; // the connection is gone: every further send would fail the same way
    msgId++;
    const id = msgId;
    outstanding.push(reporter.track(id, () => client.send(line, { name: args.name, msgId: id })));
    if (outstanding.length - head >= limit) await outstanding[head++];
    if (head >= 1024) {
      outstanding = outstanding.slice(head);
      head = 0;
    }
  }
  rl.close();
  await Promise.all(outstanding.slice(head));
}

/** Why a connection could not be made, with what to check. */
function connectFailure(host: string, port: number, err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  const at = `cannot connect to ${host}:${port}`;
  if (code === 'ECONNREFUSED') return `${at}: connection refused (ECONNREFUSED); is msgserver running there? Set the address with --host and --port`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `${at}: cannot resolve the host name '${host}' (${code}); check --host`;
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return `${at}: no route to the host (${code}); check --host`;
  if (code === 'ERR_MSGS_CONNECT_TIMEOUT' || code === 'ERR_MSGS_TLS') return err.message; // it names host, port and what to check
  return `${at}: ${err.message}`;
}

/** --tls and its files as node:tls options (false without --tls); a file that cannot be read exits 2 naming its flag. */
function tlsOptions(args: ClientArgs): false | { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string } {
  if (!args.tls) return false;
  const read = (flag: string, file: string | undefined): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return fs.readFileSync(file);
    } catch (err) {
      exitWith(EXIT_USAGE, `--${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
  return { ca: read('ca', args.ca), cert: read('cert', args.cert), key: read('key', args.key), servername: args.servername };
}

function givenFlag(argv: string[], flag: string): boolean {
  return argv.some((a) => a === flag || a.startsWith(`${flag}=`));
}

/**
 * The original client: one message at a time, msg ids from 1, name
 * client_<id>, a pause of TIME_INTERVAL_BTN_MSG seconds between messages
 * (the original calls sleep() with it), each ack printed with its latency,
 * then the total and the average.
 */
async function runLegacy(argv: string[], args: ClientArgs): Promise<number> {
  const confPath = args.configPath ?? (process.env.MS_HOME ? path.join(process.env.MS_HOME, 'app.conf') : undefined);
  let host = args.host;
  let port = args.port;
  let intervalSeconds = 0;
  if (confPath && fs.existsSync(confPath)) {
    const conf = parseAppConf(fs.readFileSync(confPath, 'utf8'), confPath);
    if (!givenFlag(argv, '--host')) host = conf.options.host ?? host;
    if (!givenFlag(argv, '--port')) port = conf.options.port ?? port;
    intervalSeconds = conf.timeIntervalSeconds ?? 0;
  }
  const clientId = parseClientId(args.messages[0]);
  const messages = args.messages[1].split(',');
  let client: LegacyClient;
  try {
    client = await LegacyClient.connect({ host, port });
  } catch (err) {
    exitWith(EXIT_UNAVAILABLE, connectFailure(host, port, err as Error));
  }
  let totalMs = 0;
  for (let i = 0; i < messages.length; i++) {
    if (i > 0 && intervalSeconds > 0) await sleep(intervalSeconds * 1000);
    const t0 = process.hrtime.bigint();
    try {
      await client.send(clientId, i + 1, `client_${clientId}`, messages[i]);
    } catch (err) {
      process.stderr.write(`msgclient: message ${i + 1} not acknowledged: ${(err as Error).message}\n`);
      return err instanceof ProtocolMismatchError ? EXIT_UNAVAILABLE : EXIT_FAILURE;
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    totalMs += ms;
    process.stdout.write(`ack msg_id=${i + 1} latency=${ms.toFixed(3)}ms\n`);
  }
  await client.close();
  process.stdout.write(`total latency ${totalMs.toFixed(3)}ms, average ${(totalMs / messages.length).toFixed(3)}ms over ${messages.length} message(s)\n`);
  return EXIT_OK;
}

function parseClientId(raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > 0xffffffff) {
    process.stderr.write(`msgclient: <client_id> must be an integer 0..4294967295, got '${raw}' (see msgclient --help)\n`);
    process.exit(EXIT_USAGE);
  }
  return n;
}

function exitWith(code: number, message?: string): never {
  if (message !== undefined) process.stderr.write(`msgclient: ${message}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<number> {
  let args: ClientArgs;
  try {
    args = parseClientArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(usageLine('msgclient', err) + '\n');
      return EXIT_USAGE;
    }
    throw err;
  }
  if (args.help) {
    process.stdout.write(clientUsage() + '\n');
    return EXIT_OK;
  }
  if (args.version) {
    process.stdout.write(versionLine('msgclient') + '\n');
    return EXIT_OK;
  }
  if (args.legacy) {
    try {
      return await runLegacy(argv, args);
    } catch (err) {
      if (err instanceof ConfigError) exitWith(EXIT_USAGE, err.message);
      throw err;
    }
  }
  let client: MessageClient;
  const tls = tlsOptions(args);
  try {
    client = await MessageClient.connect({
      host: args.host,
      port: args.port,
      clientId: args.clientId,
      window: args.window,
      connectTimeoutMs: args.connectTimeoutMs,
      tls,
      token: args.token,
    });
  } catch (err) {
    exitWith(EXIT_UNAVAILABLE, connectFailure(args.host, args.port, err as Error));
  }
  const mode: Mode = args.summary ? 'summary' : args.quiet ? 'quiet' : 'lines';
  const reporter = new Reporter(mode);
  // A progress line only where it cannot mix with the per-message lines.
  const progress = process.stderr.isTTY === true && mode !== 'quiet' && (mode === 'summary' || process.stdout.isTTY !== true);
  const stopProgress = progress ? startProgress(reporter) : () => undefined;
  try {
    if (args.messages.length > 0) await sendAll(client, args, reporter);
    else await sendLines(client, args, reporter);
  } finally {
    stopProgress();
  }
  await client.close();
  if (mode === 'summary') process.stdout.write(summaryLines(reporter.counts(), reporter.latency).join('\n') + '\n');
  if (reporter.failures > 0) process.stderr.write(`msgclient: ${reporter.failures} message(s) not acknowledged OK\n`);
  return reporter.failures > 0 ? EXIT_FAILURE : EXIT_OK;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => exitWith(EXIT_FAILURE, err instanceof Error ? err.message : String(err)),
);
