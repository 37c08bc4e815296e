#!/usr/bin/env node
// msglog: reads a binary message log. `cat` prints records (JSON lines or the
// original server's text lines), `verify` checks every CRC and the sequence
// order and says where the first damage is, `tail -f` follows a live log,
// `salvage` copies every record that verifies to a new log. `cat` and `stats`
// also read a NATS JetStream stream written by the JetStream sink
// (--jetstream, --stream).
import { isUtf8 } from 'node:buffer';
import { once } from 'node:events';
import * as fs from 'node:fs';
import { listSegments, LogCorruptError, NoSegmentsError, readLog, salvageLog, verifyLog, type VerifyResult } from '../read/log-reader';
import { encodeTextLine } from '../format/text-format';
import { RECORD_HEADER_SIZE, BODY_FIXED_SIZE, type LogRecord } from '../format/record';
import {
  NatsConnectError,
  readStream,
  StreamCorruptError,
  StreamInconsistentError,
  StreamNotFoundError,
  StreamReadError,
  type StreamRecord,
} from '../read/stream-reader';
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
import { usageLine, versionLine } from './flags';

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

/** The text log's line (lib/format/text-format.ts), without its newline: exactly what file.format 'text' writes. */
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
  for await (const rec of readStream({ ...args.nats, servers: args.jetstream, stream: args.stream, fromSeq: args.fromSeq, follow: args.follow })) {
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
 * across rotations, until SIGINT/SIGTERM (exit 0). With -f one
 * readLog({ follow: true }) does it all: it reads the log once, keeps the
 * last N records until it has caught up with the end, prints them, and then
 * prints each new record as it comes. It reads only new bytes (file-system
 * notifications, and a poll every --poll-ms as a fallback), so an idle tail
 * costs next to no CPU whatever the size of the log.
 */
async function tail(args: Extract<LogArgs, { command: 'tail' }>): Promise<number> {
  const format = args.format === 'json' ? recordToJson : recordToText;
  const ring: LogRecord[] = [];
  const keep = (rec: LogRecord): void => {
    if (args.lines === 0) return;
    ring.push(rec);
    if (ring.length > args.lines) ring.shift();
  };
  if (!args.follow) {
    for await (const rec of readLog(args.file, { allowTornTail: true })) keep(rec);
    for (const rec of ring) await writeOut(format(rec));
    return EXIT_OK;
  }
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop).once('SIGTERM', stop);
  let live = false;
  const onCaughtUp = (): void => {
    if (live) return;
    live = true;
    // At most N lines: written at once (the iterator waits for the next record meanwhile).
    for (const rec of ring.splice(0)) process.stdout.write(format(rec) + '\n');
  };
  for await (const rec of readLog(args.file, { follow: true, signal: ac.signal, pollMs: args.pollMs, onCaughtUp })) {
    if (live) await writeOut(format(rec));
    else keep(rec);
  }
  return EXIT_OK;
}

/**
 * Writes every record of the log that verifies to a new log file, skipping
 * damaged ranges (each reported on stderr) and printing a summary on stdout.
 */
async function salvage(args: Extract<LogArgs, { command: 'salvage' }>): Promise<number> {
  if (fs.existsSync(args.output)) {
    process.stderr.write(`msglog: ${args.output} already exists; salvage writes a new file (give another -o, or remove it)\n`);
    return EXIT_FAILURE;
  }
  const report = await salvageLog(args.file, args.output, {
    onSkip: (r) => process.stderr.write(`skipped ${r.file} at offset ${r.offset}, ${r.length} bytes: ${r.reason}\n`),
  });
  const skippedBytes = report.skipped.reduce((n, r) => n + r.length, 0);
  const seqs = report.firstSeq === null ? 'no records' : `seq ${report.firstSeq}..${report.lastSeq}`;
  const ranges = report.skipped.length === 0 ? 'no damaged ranges' : `${report.skipped.length} damaged ranges skipped (${skippedBytes} bytes)`;
  await writeOut(`${report.output}: ${report.records} records salvaged (${seqs}), ${report.bytes} bytes; ${ranges}`);
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
    for await (const rec of readStream({ ...args.nats, servers: args.jetstream, stream: args.stream })) {
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

/**
 * The verify line. `validBytes`: the bytes before the damage (for a
 * directory, counting the segments before the damaged one); by default the
 * damaged offset, which is that count for a single file.
 */
export function verifySummary(r: VerifyResult, validBytes: number | null = r.firstBadOffset): string {
  const seqs = r.firstSeq === null ? 'no records' : `seq ${r.firstSeq}..${r.lastSeq}`;
  const segs = r.segments > 1 ? `, ${r.segments} segments` : '';
  if (r.ok && !r.tornTail) return `${r.path}: OK, ${r.records} records, ${seqs}, ${r.bytes} bytes${segs}`;
  const inFile = r.file && r.file !== r.path ? ` of ${r.file}` : '';
  const where = r.firstBadOffset === null ? '' : ` at offset ${r.firstBadOffset}${inFile}`;
  const what = r.tornTail ? 'TORN TAIL' : 'CORRUPT';
  const why = r.reason === null ? '' : `: ${r.reason}`;
  const valid = validBytes ?? 0;
  const records = r.firstSeq === null ? `${r.records} records` : `${r.records} records, ${seqs}`;
  return `${r.path}: ${what}${where}${why} (${records}, ${valid} of ${r.bytes} bytes valid before it${segs})`;
}

/** Bytes of the log before its first problem: the segments before the damaged one, plus the offset in it. */
async function validBytesOf(r: VerifyResult): Promise<number | null> {
  if (r.firstBadOffset === null) return null;
  if (r.file === null || r.file === r.path) return r.firstBadOffset;
  let before = 0;
  for (const seg of await listSegments(r.path)) {
    if (seg === r.file) break;
    before += (await fs.promises.stat(seg)).size;
  }
  return before + r.firstBadOffset;
}

async function verify(file: string): Promise<number> {
  const result = await verifyLog(file);
  const line = verifySummary(result, await validBytesOf(result));
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
    if (err instanceof UsageError) {
      process.stderr.write(usageLine('msglog', err) + '\n');
      return EXIT_USAGE;
    }
    throw err;
  }
  if (args.help) {
    process.stdout.write(logUsage() + '\n');
    return EXIT_OK;
  }
  if ('version' in args) {
    process.stdout.write(versionLine('msglog') + '\n');
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
    case 'salvage':
      return salvage(args);
  }
}

function reportFailure(err: unknown): never {
  if (err instanceof LogCorruptError) {
    const what = err.tornTail ? 'torn tail (use --allow-torn-tail to ignore it)' : 'corrupt';
    exitWith(EXIT_FAILURE, `${err.path}: ${what} at offset ${err.offset}: ${err.reason}`);
  }
  // Records were printed, but not all of them can be trusted: a failure, as a corrupt one.
  if (err instanceof StreamCorruptError || err instanceof StreamInconsistentError) exitWith(EXIT_FAILURE, err.message);
  // A monitoring check on the exit status must not read "nothing to check" as OK.
  if (err instanceof NoSegmentsError) {
    const logs = err.found.filter((n) => n.endsWith('.log') || n.endsWith('.txt'));
    const hint = logs.length > 0 ? `; to read a single log file, give its path: ${err.path.replace(/\/$/, '')}/${logs[0]}` : '';
    exitWith(EXIT_FAILURE, `${err.message}${hint}`);
  }
  // No such stream, or NATS not reachable: the stream cannot be read at all, like a missing file.
  if (err instanceof StreamNotFoundError || err instanceof NatsConnectError || err instanceof StreamReadError) exitWith(EXIT_UNAVAILABLE, err.message);
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
