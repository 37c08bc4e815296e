// Log lines a person can read, for msgserver on a terminal: pino writes its
// JSON line to this destination, which rewrites it as
//   14:03:07.412 INFO  listening host=127.0.0.1 port=9000 ackMode=written
// (time, level, message, then the other fields as key=value; an object field
// such as the effective config on an indented line of its own, its fields
// dotted: file.path=messages.log). A formatter of
// our own rather than pino-pretty: the mapping is a few lines, and it keeps
// the dependency tree and the install small. Off a terminal (or with
// --log-format json) pino's JSON lines are written unchanged.
import * as fs from 'node:fs';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const COLORS: Record<number, string> = { 10: '\x1b[90m', 20: '\x1b[90m', 30: '\x1b[32m', 40: '\x1b[33m', 50: '\x1b[31m', 60: '\x1b[1;31m' };
const RESET = '\x1b[0m';
/** pino's own fields, shown as the time, level and message, or not at all. */
const OWN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'v']);
/** Error objects: their message is already the log line's message. */
const QUIET_OBJECTS = new Set(['err', 'error']);

function pad2(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

function clock(t: unknown): string {
  const d = typeof t === 'number' ? new Date(t) : new Date();
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${pad2(d.getMilliseconds(), 3)}`;
}

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v === null || typeof v !== 'object') return String(v);
  return JSON.stringify(v);
}

function isNested(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0;
}

/** An object's fields as dotted key=value pairs: file.path=messages.log file.fsync=interval ... */
function flatten(prefix: string, o: Record<string, unknown>, out: string[]): void {
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    if (isNested(v)) flatten(`${prefix}${k}.`, v, out);
    else out.push(`${prefix}${k}=${value(v)}`);
  }
}

/**
 * One pino JSON line as readable text (without the final newline): the time,
 * level and message with the plain fields as key=value, then one indented
 * line per object field. A line that is not JSON is returned as it is.
 */
export function prettyLine(json: string, opts: { color?: boolean } = {}): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.replace(/\n$/, '');
  }
  const level = typeof o.level === 'number' ? o.level : 30;
  const name = (LEVELS[level] ?? `L${level}`).padEnd(5);
  const label = opts.color ? `${COLORS[level] ?? ''}${name}${RESET}` : name;
  const parts = [`${clock(o.time)} ${label} ${typeof o.msg === 'string' ? o.msg : ''}`];
  const nested: string[] = [];
  for (const [k, v] of Object.entries(o)) {
    if (OWN.has(k) || v === undefined) continue;
    if (QUIET_OBJECTS.has(k) && v !== null && typeof v === 'object') continue;
    if (isNested(v)) {
      // An object (the effective config, a close report) gets a line of its own, indented.
      const fields: string[] = [];
      flatten('', v, fields);
      nested.push(`    ${k}: ${fields.join(' ')}`);
    } else {
      parts.push(`${k}=${value(v)}`);
    }
  }
  return [parts.join(' ').trimEnd(), ...nested].join('\n');
}

/**
 * --log-format: 'pretty', 'json', or 'auto' = pretty when stderr, where the
 * logs go, is a terminal (a redirected stderr gets JSON even when stdout is
 * a terminal, and the other way round).
 */
export function usePrettyLogs(format: 'auto' | 'pretty' | 'json', stderrIsTTY: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && stderrIsTTY);
}

/** A pino destination that writes prettyLine()s synchronously to `fd` (a line logged before exit is not lost). */
export function prettyDestination(fd: number, opts: { color?: boolean } = {}): { write(chunk: string): boolean } {
  return {
    write(chunk: string): boolean {
      let out = '';
      for (const line of chunk.split('\n')) if (line !== '') out += prettyLine(line, opts) + '\n';
      fs.writeSync(fd, out);
      return true;
    },
  };
}
