// Reading a NATS JetStream stream written by the JetStream sink.
//
// Each stream message is exactly one record in the on-disk record format
// (docs/file-format.md, no file header): u32 body_len | u32 crc32c | body.
// Its subject is `<subjectPrefix>.<clientId>` and its `Nats-Msg-Id` header
// `<clientId>-<msgId>` (JetStream dedupes on it). readStream decodes and
// checks every message the way readLog checks a file's records.
//
// It reads through an ordered consumer: ephemeral, in memory on the server,
// no acks, recreated by the client library if a message is missed. It is
// deleted when the iteration ends (and would expire by itself otherwise), so
// reading leaves no state behind.
import { connect, type ConnectionOptions, type Consumer, type ConsumerMessages, type JsMsg, type NatsConnection } from 'nats';
import { decodeRecord, type LogRecord } from '../format/record';

export interface ReadStreamOptions {
  /** NATS server URL(s), e.g. 'nats://127.0.0.1:4222' or 'host:4222'; several = one cluster. */
  servers: string | string[];
  /** The JetStream stream's name. */
  stream: string;
  /** First stream sequence to read (JetStream's, not the record's own seq); default 1. */
  fromSeq?: number | bigint;
  /** Keep reading new messages as they arrive (until the loop breaks); default false: stop at the stream's end as of the start. */
  follow?: boolean;
  /** Bounds connecting and each JetStream API request (ms); default 10000. */
  timeoutMs?: number;
}

/** One stream message: the record it holds, plus where it is in the stream. */
export interface StreamRecord extends LogRecord {
  /** The JetStream stream sequence of the message. (`seq` is the record's own: the publishing instance's sequence number.) */
  streamSeq: bigint;
  /** The message's subject, `<subjectPrefix>.<clientId>`. */
  subject: string;
  // `offset` (from LogRecord) is always 0: the record is the whole message.
}

/** A stream message that is not exactly one valid record. */
export class StreamCorruptError extends Error {
  readonly code = 'ERR_MSGS_STREAM_CORRUPT';
  readonly stream: string;
  readonly streamSeq: bigint;
  readonly reason: string;
  constructor(stream: string, streamSeq: bigint, reason: string) {
    super(`stream ${stream}: message at stream sequence ${streamSeq} is not one valid record: ${reason}`);
    this.name = 'StreamCorruptError';
    this.stream = stream;
    this.streamSeq = streamSeq;
    this.reason = reason;
  }
}

/** The stream does not exist on the server(s). */
export class StreamNotFoundError extends Error {
  readonly code = 'ERR_MSGS_STREAM_NOT_FOUND';
  readonly stream: string;
  constructor(stream: string, servers: string[]) {
    super(`stream '${stream}' not found on ${servers.join(',')}`);
    this.name = 'StreamNotFoundError';
    this.stream = stream;
  }
}

/** None of the NATS servers could be reached (`cause` is the client library's error). */
export class NatsConnectError extends Error {
  readonly code = 'ERR_MSGS_NATS_CONNECT';
  readonly servers: string[];
  constructor(servers: string[], cause: unknown) {
    super(`cannot connect to NATS at ${servers.join(',')}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'NatsConnectError';
    this.servers = servers;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_U53 = BigInt(Number.MAX_SAFE_INTEGER);

interface Checked {
  servers: string[];
  stream: string;
  fromSeq: number;
  follow: boolean;
  timeoutMs: number;
}

function check(opts: ReadStreamOptions): Checked {
  if (opts === null || typeof opts !== 'object') throw new TypeError('readStream needs an options object { servers, stream, ... }');
  const raw = typeof opts.servers === 'string' ? opts.servers.split(',') : opts.servers;
  if (!Array.isArray(raw)) throw new TypeError('servers must be a URL string or an array of them');
  const servers = raw.map((s) => (typeof s === 'string' ? s.trim() : s));
  if (servers.length === 0 || servers.some((s) => typeof s !== 'string' || s === '')) {
    throw new TypeError(`servers must be one or more non-empty URLs, got ${JSON.stringify(opts.servers)}`);
  }
  if (typeof opts.stream !== 'string' || opts.stream === '') throw new TypeError('stream must be a non-empty stream name');
  let fromSeq = 1;
  if (opts.fromSeq !== undefined) {
    const v = opts.fromSeq;
    const ok = typeof v === 'bigint' ? v >= 1n && v <= MAX_U53 : Number.isSafeInteger(v) && v >= 1;
    if (!ok) throw new RangeError(`fromSeq must be a stream sequence >= 1, got ${String(v)}`);
    fromSeq = Number(v);
  }
  if (opts.follow !== undefined && typeof opts.follow !== 'boolean') throw new TypeError('follow must be a boolean');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError(`timeoutMs must be a positive number, got ${String(opts.timeoutMs)}`);
  return { servers: servers as string[], stream: opts.stream, fromSeq, follow: opts.follow === true, timeoutMs };
}

function isStreamNotFound(err: unknown): boolean {
  const e = err as { message?: unknown; api_error?: { err_code?: number } } | null;
  return e?.api_error?.err_code === 10059 || (typeof e?.message === 'string' && /stream not found/i.test(e.message));
}

/** Decodes one stream message; throws StreamCorruptError unless it is exactly one valid record. */
export function decodeStreamMessage(stream: string, streamSeq: bigint, subject: string, data: Uint8Array): StreamRecord {
  // A copy: yielded records are views into it, and the client library may reuse its buffers.
  const buf = Buffer.from(data);
  const res = decodeRecord(buf, 0);
  if (res.status === 'truncated') throw new StreamCorruptError(stream, streamSeq, `truncated record (${buf.length} bytes)`);
  if (res.status === 'bad') throw new StreamCorruptError(stream, streamSeq, res.reason);
  if (res.size !== buf.length) {
    throw new StreamCorruptError(stream, streamSeq, `${buf.length - res.size} bytes after the record (message of ${buf.length} bytes)`);
  }
  return { ...res.record, offset: 0, streamSeq, subject };
}

/**
 * Reads a JetStream stream's records in stream order, from `fromSeq` (default
 * the start) to the stream's last sequence as it was when reading began, or,
 * with `follow`, on and on as messages arrive. Throws StreamNotFoundError when
 * there is no such stream, StreamCorruptError at a message that is not exactly
 * one valid record (after yielding every record before it), NatsConnectError
 * when no server answers. The NATS
 * connection is closed when the iteration ends, also by `break` or an error.
 */
export async function* readStream(opts: ReadStreamOptions): AsyncIterableIterator<StreamRecord> {
  const o = check(opts);
  const connectOpts: ConnectionOptions = { servers: o.servers, timeout: o.timeoutMs, name: 'msgserver readStream' };
  let nc: NatsConnection;
  try {
    nc = await connect(connectOpts);
  } catch (err) {
    throw new NatsConnectError(o.servers, err);
  }
  let consumer: Consumer | null = null;
  let msgs: ConsumerMessages | null = null;
  try {
    const jsm = await nc.jetstreamManager({ timeout: o.timeoutMs });
    let lastSeq: number;
    let messages: number;
    try {
      const info = await jsm.streams.info(o.stream);
      lastSeq = info.state.last_seq;
      messages = info.state.messages;
    } catch (err) {
      if (isStreamNotFound(err)) throw new StreamNotFoundError(o.stream, o.servers);
      throw err;
    }
    if (!o.follow && (messages === 0 || o.fromSeq > lastSeq)) return;

    consumer = await nc.jetstream({ timeout: o.timeoutMs }).consumers.get(o.stream, { opt_start_seq: o.fromSeq });
    msgs = await consumer.consume({ max_messages: 256 });
    // Nothing at or after fromSeq (the rest was deleted): done, without waiting for a message that will not come.
    if (!o.follow && (await consumer.info(true)).num_pending === 0) return;

    let lastRead = 0;
    for await (const m of msgs as AsyncIterable<JsMsg>) {
      if (!o.follow && m.seq > lastSeq) return; // appended after we started
      lastRead = m.seq;
      yield decodeStreamMessage(o.stream, BigInt(m.seq), m.subject, m.data);
      // pending = messages after this one now: 0 means the end (deleted messages never arrive).
      if (!o.follow && (m.seq >= lastSeq || m.info.pending === 0)) return;
    }
    // The messages iterator ends only when the connection or the consumer is gone.
    const why = nc.isClosed() ? await nc.closed() : null;
    throw new Error(
      `stream ${o.stream}: reading stopped after stream sequence ${lastRead}${o.follow ? '' : ` of ${lastSeq}`}: ` +
        (why instanceof Error ? why.message : nc.isClosed() ? 'the NATS connection closed' : 'the consumer went away'),
    );
  } finally {
    msgs?.stop();
    if (consumer !== null && !nc.isClosed()) await consumer.delete().catch(() => false);
    if (!nc.isClosed()) await nc.close();
  }
}
