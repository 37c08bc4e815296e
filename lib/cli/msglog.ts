#!/usr/bin/env node
// msglog: reads a binary message log. `cat` prints records (JSON lines or the
// original server's text lines), `verify` checks every CRC and the sequence
// order and says where the first damage is. `cat` and `stats` also read a NATS
// JetStream stream written by the JetStream sink (--jetstream, --stream).
import { isUtf8 } from 'node:buffer';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { LogCorruptError, readLog, verifyLog, type VerifyResult } from '../log-reader';
import { encodeTextLine } from '../text-format';
import { RECORD_HEADER_SIZE, BODY_FIXED_SIZE, type LogRecord } from '../record';
import { NatsConnectError, readStream, StreamCorruptError, StreamNotFoundError, type StreamRecord } from '../stream-reader';
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_UNAVAILABLE,
  EXIT_USAGE,
  logUsage,
  parseLogArgs,
  UsageError,
  type LogArgs,
} from './args';

/** JSON line; bigints as strings because JSON numbers lose precision past 2^53. */
export function recordToJson(r: LogRecord): string {
  return JSON.stringify(recordFields(r));
}

/** A stream record's JSON line: where it is in the stream, then the same fields as recordToJson. */
export function streamRecordToJson(r: StreamRecord): string {
  return JSON.stringify({ streamSeq: r.streamSeq.toString(), subject: r.subject, ...recordFields(r) });
}

function recordFields(r: LogRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {
    seq: r.seq.toString(),
    time: r.time.toISOString(),
    clientId: r.clientId,
    msgId: r.msgId.toString(),
    name: r.name,
    payload: r.payload.toString('utf8'),
  };
  // Invalid UTF-8 decodes lossily (U+FFFD); the base64 copy keeps the exact bytes.
  if (!isUtf8(r.payload)) out.payloadBase64 = r.payload.toString('base64');
  return out;
}

/** The text log's line (lib/text-format.ts), without its newline: exactly what file.format 'text' writes. */
export function recordToText(r: LogRecord): string {
  const line = encodeTextLine({ clientId: r.clientId, msgId: r.msgId, name: r.nameBytes, payload: r.payload });
  return line.subarray(0, line.length - 1).toString('utf8');
}

/** Writes with back-pressure so a multi-GB log does not pile up in memory. */
async function writeOut(line: string): Promise<void> {
  if (!process.stdout.write(line + '\n')) await once(process.stdout, 'drain');
}

type StreamArgs<C> = Extract<LogArgs, { command: C; jetstream: string[] }>;
type FileArgs<C> = Exclude<Extract<LogArgs, { command: C }>, { jetstream: string[] }>;

/**
 * A stream's records, as `cat` prints a file's: JSON lines (with streamSeq and
 * subject first) or the text line (exactly what file.format 'text' writes, so
 * no stream sequence there).
 */
async function catStream(args: StreamArgs<'cat'>): Promise<number> {
  const format = args.format === 'json' ? streamRecordToJson : recordToText;
  for await (const rec of readStream({ servers: args.jetstream, stream: args.stream, fromSeq: args.fromSeq, follow: args.follow })) {
    await writeOut(format(rec));
  }
  return EXIT_OK;
}

async function cat(args: FileArgs<'cat'>): Promise<number> {
  const format = args.format === 'json' ? recordToJson : recordToText;
  for await (const rec of readLog(args.file, { allowTornTail: args.allowTornTail, fromSeq: args.fromSeq })) {
    await writeOut(format(rec));
  }
  return EXIT_OK;
}

/**
 * The last N records, then (with -f) every new one as the server writes it,
 * across rotations. Each poll re-reads from the last seen sequence number; in
 * a rotated directory that starts at the active segment. A record being
 * written at that moment looks torn and is picked up by the next poll.
 */
async function tail(args: Extract<LogArgs, { command: 'tail' }>): Promise<number> {
  const format = args.format === 'json' ? recordToJson : recordToText;
  const ring: LogRecord[] = [];
  let next: bigint | undefined;
  for await (const rec of readLog(args.file, { allowTornTail: true })) {
    ring.push(rec);
    if (ring.length > args.lines) ring.shift();
    next = rec.seq + 1n;
  }
  for (const rec of ring) await writeOut(format(rec));
  if (!args.follow) return EXIT_OK;
  let stop = false;
  process.once('SIGINT', () => (stop = true)).once('SIGTERM', () => (stop = true));
  while (!stop) {
    await sleep(args.pollMs);
    for await (const rec of readLog(args.file, { allowTornTail: true, fromSeq: next })) {
      await writeOut(format(rec));
      next = rec.seq + 1n;
    }
  }
  return EXIT_OK;
}

/** What `stats` counts over records, from a file or a stream. */
class Tally {
  readonly clients = new Map<number, number>();
  readonly names = new Map<string, number>();
  count = 0;
  payloadBytes = 0;
  minPayload = Infinity;
  maxPayload = 0;
  firstTime: Date | null = null;
  lastTime: Date | null = null;

  add(rec: LogRecord): void {
    this.count++;
    this.clients.set(rec.clientId, (this.clients.get(rec.clientId) ?? 0) + 1);
    this.names.set(rec.name, (this.names.get(rec.name) ?? 0) + 1);
    this.payloadBytes += rec.payload.length;
    this.minPayload = Math.min(this.minPayload, rec.payload.length);
    this.maxPayload = Math.max(this.maxPayload, rec.payload.length);
    if (rec.timeUs > 0n) {
      this.firstTime ??= rec.time;
      this.lastTime = rec.time;
    }
  }

  /** The time, clients, names and payload lines; `n` is the record count to average over. */
  lines(n: number): string[] {
    const top = (m: Map<string | number, number>): string =>
      [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([k, c]) => `${JSON.stringify(k)}: ${c}`).join(', ');
    return [
      `time: ${this.firstTime ? `${this.firstTime.toISOString()} .. ${this.lastTime!.toISOString()}` : '-'}`,
      `clients: ${this.clients.size} (most messages: ${top(this.clients)})`,
      `names: ${this.names.size} (most used: ${top(this.names)})`,
      `payload bytes: ${this.payloadBytes} (min ${n ? this.minPayload : 0}, avg ${n ? (this.payloadBytes / n).toFixed(1) : 0}, max ${this.maxPayload})`,
    ];
  }
}

async function stats(file: string): Promise<number> {
  const v = await verifyLog(file);
  const tally = new Tally();
  for await (const rec of readLog(file, { allowTornTail: true })) tally.add(rec);
  const n = v.records;
  const lines = [
    `file: ${file}${v.segments > 1 ? ` (${v.segments} segments)` : ''}`,
    `status: ${v.ok ? 'OK' : v.tornTail ? 'TORN TAIL' : 'CORRUPT'}${v.ok ? '' : ` at offset ${v.firstBadOffset}${v.file && v.file !== file ? ` of ${v.file}` : ''}: ${v.reason}`}`,
    `records: ${n}`,
    `bytes: ${v.bytes}`,
    `seq: ${v.firstSeq === null ? '-' : `${v.firstSeq}..${v.lastSeq}`}`,
    ...tally.lines(n),
  ];
  for (const l of lines) await writeOut(l);
  return v.ok || v.tornTail ? EXIT_OK : EXIT_FAILURE;
}

/**
 * stats over a stream, up to its last message as of the start. `bytes` are
 * the records' bytes (the message data); `stream seq` the JetStream sequence
 * range read, `seq` the records' own (per publishing instance) range. A
 * message that is not one valid record ends the count (status CORRUPT, exit 1).
 */
async function statsStream(args: StreamArgs<'stats'>): Promise<number> {
  const tally = new Tally();
  let bytes = 0;
  let firstStreamSeq: bigint | null = null;
  let lastStreamSeq: bigint | null = null;
  let minSeq: bigint | null = null;
  let maxSeq: bigint | null = null;
  let problem: StreamCorruptError | null = null;
  try {
    for await (const rec of readStream({ servers: args.jetstream, stream: args.stream })) {
      tally.add(rec);
      bytes += RECORD_HEADER_SIZE + BODY_FIXED_SIZE + rec.nameBytes.length + rec.payload.length;
      firstStreamSeq ??= rec.streamSeq;
      lastStreamSeq = rec.streamSeq;
      if (minSeq === null || rec.seq < minSeq) minSeq = rec.seq;
      if (maxSeq === null || rec.seq > maxSeq) maxSeq = rec.seq;
    }
  } catch (err) {
    if (!(err instanceof StreamCorruptError)) throw err;
    problem = err;
  }
  const n = tally.count;
  const lines = [
    `stream: ${args.stream} (${args.jetstream.join(',')})`,
    `status: ${problem === null ? 'OK' : `CORRUPT at stream seq ${problem.streamSeq}: ${problem.reason}`}`,
    `records: ${n}`,
    `bytes: ${bytes}`,
    `stream seq: ${firstStreamSeq === null ? '-' : `${firstStreamSeq}..${lastStreamSeq}`}`,
    `seq: ${minSeq === null ? '-' : `${minSeq}..${maxSeq}`}`,
    ...tally.lines(n),
  ];
  for (const l of lines) await writeOut(l);
  return problem === null ? EXIT_OK : EXIT_FAILURE;
}

export function verifySummary(r: VerifyResult): string {
  const seqs = r.firstSeq === null ? 'no records' : `seq ${r.firstSeq}..${r.lastSeq}`;
  const counts = `${r.records} records, ${seqs}, ${r.bytes} bytes`;
  const segs = r.segments > 1 ? `, ${r.segments} segments` : '';
  if (r.ok && !r.tornTail) return `${r.path}: OK, ${counts}${segs}`;
  const inFile = r.file && r.file !== r.path ? ` of ${r.file}` : '';
  const where = r.firstBadOffset === null ? '' : ` at offset ${r.firstBadOffset}${inFile}`;
  const what = r.tornTail ? 'TORN TAIL' : 'CORRUPT';
  const why = r.reason === null ? '' : `: ${r.reason}`;
  return `${r.path}: ${what}${where}${why} (${counts} valid before it)`;
}

async function verify(file: string): Promise<number> {
  const result = await verifyLog(file);
  const line = verifySummary(result);
  const healthy = result.ok && !result.tornTail;
  (healthy ? process.stdout : process.stderr).write(line + '\n');
  return healthy ? EXIT_OK : EXIT_FAILURE;
}

function exitWith(code: number, message: string): never {
  process.stderr.write(`msglog: ${message}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<number> {
  let args: LogArgs;
  try {
    args = parseLogArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) exitWith(EXIT_USAGE, `${err.message}\n${logUsage()}`);
    throw err;
  }
  if (args.help) {
    process.stdout.write(logUsage() + '\n');
    return EXIT_OK;
  }
  switch (args.command) {
    case 'cat':
      return 'jetstream' in args ? catStream(args) : cat(args);
    case 'tail':
      return tail(args);
    case 'stats':
      return 'jetstream' in args ? statsStream(args) : stats(args.file);
    case 'verify':
      return verify(args.file);
  }
}

function reportFailure(err: unknown): never {
  if (err instanceof LogCorruptError) {
    const what = err.tornTail ? 'torn tail (use --allow-torn-tail to ignore it)' : 'corrupt';
    exitWith(EXIT_FAILURE, `${err.path}: ${what} at offset ${err.offset}: ${err.reason}`);
  }
  if (err instanceof StreamCorruptError) exitWith(EXIT_FAILURE, err.message);
  // No such stream, or NATS not reachable: the stream cannot be read at all, like a missing file.
  if (err instanceof StreamNotFoundError || err instanceof NatsConnectError) exitWith(EXIT_UNAVAILABLE, err.message);
  const e = err as NodeJS.ErrnoException;
  // Errors from a system call (ENOENT, EACCES, EISDIR...) mean the file could not be read at all.
  if (typeof e?.syscall === 'string') exitWith(EXIT_UNAVAILABLE, e.message);
  exitWith(EXIT_FAILURE, err instanceof Error ? (err.stack ?? err.message) : String(err));
}

if (require.main === module) {
  // `msglog cat big.log | head` closes stdout early: that is success, not a crash.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT_OK);
    exitWith(EXIT_FAILURE, err.message);
  });
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  }, reportFailure);
}
