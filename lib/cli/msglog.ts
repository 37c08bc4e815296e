#!/usr/bin/env node
// msglog: reads a binary message log. `cat` prints records (JSON lines or the
// original server's text lines), `verify` checks every CRC and the sequence
// order and says where the first damage is.
import { isUtf8 } from 'node:buffer';
import { once } from 'node:events';
import { LogCorruptError, readLog, verifyLog, type VerifyResult } from '../log-reader';
import { encodeTextLine } from '../text-format';
import type { LogRecord } from '../record';
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
  return JSON.stringify(out);
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

async function cat(args: Extract<LogArgs, { command: 'cat' }>): Promise<number> {
  const format = args.format === 'json' ? recordToJson : recordToText;
  for await (const rec of readLog(args.file, { allowTornTail: args.allowTornTail })) await writeOut(format(rec));
  return EXIT_OK;
}

export function verifySummary(r: VerifyResult): string {
  const seqs = r.firstSeq === null ? 'no records' : `seq ${r.firstSeq}..${r.lastSeq}`;
  const counts = `${r.records} records, ${seqs}, ${r.bytes} bytes`;
  if (r.ok && !r.tornTail) return `${r.path}: OK, ${counts}`;
  const where = r.firstBadOffset === null ? '' : ` at offset ${r.firstBadOffset}`;
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
  return args.command === 'cat' ? cat(args) : verify(args.file);
}

function reportFailure(err: unknown): never {
  if (err instanceof LogCorruptError) {
    const what = err.tornTail ? 'torn tail (use --allow-torn-tail to ignore it)' : 'corrupt';
    exitWith(EXIT_FAILURE, `${err.path}: ${what} at offset ${err.offset}: ${err.reason}`);
  }
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
