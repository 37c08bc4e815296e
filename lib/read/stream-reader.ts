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
//
// A cluster losing a node or electing a leader makes requests time out, the
// connection move to another server and the consumer vanish for a while.
// Those failures are retried with back-off for up to `retryMs` since the last
// progress: the reader reconnects (the client library does) and starts a new
// consumer right after the last sequence it delivered, so nothing is skipped
// or repeated. Only a failure that outlasts the budget raises, as a
// StreamReadError naming the last cause.
//
// The consumer lives on one of the stream's servers and sees that server's
// copy, which may lag behind the stream leader for a while after a partition
// or a restart. So the consumer's "nothing pending" never ends a read by
// itself: the stream leader is asked whether any message follows (the
// stream's message-get API). If one does, the message last read is compared
// with the leader's at the same sequence: the same, the copy was behind and
// reading goes on from a new consumer after a back-off (within the same
// budget); different, the copy was renumbered (out of sync) and
// StreamInconsistentError is raised.
import * as fs from 'node:fs';
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  type ConnectionOptions,
  type Consumer,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
  type MsgRequest,
  type NatsConnection,
  type StoredMsg,
} from 'nats';
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
  /**
   * How long transient failures (a timeout, no responders, a lost connection,
   * a consumer gone during an election) are retried, in ms since the last
   * record read; default 30000. 0: the first failure raises.
   */
  retryMs?: number;
  /** TLS toward NATS (as jetstream.tls): PEM files of the CAs to trust, and of a client certificate and key. */
  tls?: { ca?: string; cert?: string; key?: string };
  /** Credentials, as the server's jetstream section takes them: user (+ password), token, nkey (its seed file) or credsFile. */
  user?: string;
  password?: string;
  token?: string;
  nkey?: { seedFile: string; publicKey?: string };
  credsFile?: string;
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

/** Reading failed for longer than retryMs (`cause` is the last failure; `lastSeq` the last stream sequence delivered, 0 for none). */
export class StreamReadError extends Error {
  readonly code = 'ERR_MSGS_STREAM_READ';
  readonly stream: string;
  readonly lastSeq: bigint;
  constructor(stream: string, lastSeq: bigint, retryMs: number, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`stream ${stream}: reading failed after stream sequence ${lastSeq} and did not recover within ${retryMs} ms: ${why}`, { cause });
    this.name = 'StreamReadError';
    this.stream = stream;
    this.lastSeq = lastSeq;
  }
}

/**
 * The server a read came from holds a copy of the stream that is not the
 * stream leader's: its message at `streamSeq` differs (a replica out of
 * sync after a partition). Records already yielded came from that copy and
 * may miss some; a new read may be placed on another server.
 */
export class StreamInconsistentError extends Error {
  readonly code = 'ERR_MSGS_STREAM_INCONSISTENT';
  readonly stream: string;
  readonly streamSeq: bigint;
  constructor(stream: string, streamSeq: bigint) {
    super(
      `stream ${stream}: the server read from holds a different message at stream sequence ${streamSeq} than the ` +
        `stream leader (a replica out of sync); the records read so far may be incomplete`,
    );
    this.name = 'StreamInconsistentError';
    this.stream = stream;
    this.streamSeq = streamSeq;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_RETRY_MS = 30_000;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 2000;
const MAX_U53 = BigInt(Number.MAX_SAFE_INTEGER);

interface Checked {
  servers: string[];
  stream: string;
  fromSeq: number;
  follow: boolean;
  timeoutMs: number;
  retryMs: number;
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
  const retryMs = opts.retryMs ?? DEFAULT_RETRY_MS;
  if (!Number.isFinite(retryMs) || retryMs < 0) throw new RangeError(`retryMs must be a number >= 0, got ${String(opts.retryMs)}`);
  return { servers: servers as string[], stream: opts.stream, fromSeq, follow: opts.follow === true, timeoutMs, retryMs };
}

/** A JetStream API error by its err_code, or by its description where the client library gives only that. */
function isApiError(err: unknown, errCode: number, description: RegExp): boolean {
  const e = err as { message?: unknown; api_error?: { err_code?: number } } | null;
  return e?.api_error?.err_code === errCode || (typeof e?.message === 'string' && description.test(e.message));
}

const isStreamNotFound = (err: unknown): boolean => isApiError(err, 10059, /stream not found/i);
const isNoMessage = (err: unknown): boolean => isApiError(err, 10037, /no message found/i);

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

/** The TLS and credential options of the nats client (files read here; nothing is logged). */
function security(opts: ReadStreamOptions): Partial<ConnectionOptions> {
  const out: Partial<ConnectionOptions> = {};
  if (opts.tls) {
    out.tls = {
      ...(opts.tls.ca ? { caFile: opts.tls.ca } : {}),
      ...(opts.tls.cert ? { certFile: opts.tls.cert } : {}),
      ...(opts.tls.key ? { keyFile: opts.tls.key } : {}),
    };
  }
  if (opts.user) {
    out.user = opts.user;
    out.pass = opts.password ?? '';
  }
  if (opts.token) out.token = opts.token;
  if (opts.nkey) out.authenticator = nkeyAuthenticator(new TextEncoder().encode(fs.readFileSync(opts.nkey.seedFile, 'utf8').trim()));
  if (opts.credsFile) out.authenticator = credsAuthenticator(fs.readFileSync(opts.credsFile));
  return out;
}

/**
 * The stream leader's answer to a message-get request, or null when it has
 * no such message; a stream gone meanwhile is StreamNotFoundError.
 */
async function leaderGet(jsm: JetStreamManager, o: Checked, query: object): Promise<StoredMsg | null> {
  try {
    return await jsm.streams.getMessage(o.stream, query as MsgRequest);
  } catch (err) {
    if (isNoMessage(err)) return null;
    if (isStreamNotFound(err)) throw new StreamNotFoundError(o.stream, o.servers);
    throw err;
  }
}

/**
 * Whether the stream leader holds a message after `seq`, up to `lastSeq`
 * (the consumer's server may not have it yet): `next_by_subj` makes the
 * answer the first message at or after a sequence, whichever its subject
 * (the client library's type lacks the field the server takes).
 */
async function leaderHasMore(jsm: JetStreamManager, o: Checked, seq: number, lastSeq: number): Promise<boolean> {
  const next = await leaderGet(jsm, o, { seq: seq + 1, next_by_subj: '>' });
  return next !== null && next.seq <= lastSeq;
}

/** The consumer's server has no more messages, but the stream leader has: that copy is behind. */
class ReplicaBehindError extends Error {
  constructor(stream: string, seq: number) {
    super(`stream ${stream}: the consumer's server has nothing after sequence ${seq}, but the stream leader has (its copy is behind)`);
    this.name = 'ReplicaBehindError';
  }
}

/** A failure that cannot pass by waiting: raised at once. */
function permanent(err: unknown): boolean {
  return err instanceof StreamCorruptError || err instanceof StreamNotFoundError || err instanceof StreamInconsistentError;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Reads a JetStream stream's records in stream order, from `fromSeq` (default
 * the start) to the stream's last sequence as it was when reading began, or,
 * with `follow`, on and on as messages arrive. Throws StreamNotFoundError when
 * there is no such stream, StreamCorruptError at a message that is not exactly
 * one valid record (after yielding every record before it),
 * StreamInconsistentError when the copy read is not the leader's, NatsConnectError
 * when no server answers at the start, StreamReadError when reading fails
 * for longer than `retryMs` (node loss and elections are ridden out: see the
 * top of this file). The NATS connection is closed when the iteration ends,
 * also by `break` or an error.
 */
export async function* readStream(opts: ReadStreamOptions): AsyncIterableIterator<StreamRecord> {
  const o = check(opts);
  const connectOpts: ConnectionOptions = {
    ...security(opts),
    servers: o.servers,
    timeout: o.timeoutMs,
    name: 'msgserver readStream',
    // Ride out node loss: move to another server of the cluster, without end
    // (the retry budget below bounds how long reading may stall).
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  };
  // The first connection tries every server once: none answering is an
  // error at once (a wrong address should not wait out a budget).
  let nc: NatsConnection;
  try {
    nc = await connect(connectOpts);
  } catch (err) {
    throw new NatsConnectError(o.servers, err);
  }
  let failingSince: number | null = null; // the first failure since the last progress
  let backoff = BACKOFF_FIRST_MS;
  // A consumer's iterator waits quietly while the connection is down: a
  // watchdog ends it once the connection has been down for the whole budget.
  let current: ConsumerMessages | null = null;
  let lost: Error | null = null;
  let watchdog: NodeJS.Timeout | null = null;
  void (async () => {
    for await (const st of nc.status()) {
      if (st.type === 'disconnect' && watchdog === null) {
        watchdog = setTimeout(() => {
          lost = new Error(`disconnected from NATS (last server ${String(st.data)}) and not reconnected`);
          current?.stop();
        }, o.retryMs);
      } else if (st.type === 'reconnect' && watchdog !== null) {
        clearTimeout(watchdog);
        watchdog = null;
      }
    }
  })().catch(() => {});
  let lastSeq = -1; // the stream's last sequence when reading began (not following)
  let lastRead = o.fromSeq - 1;
  let lastData: Buffer | null = null; // the message at lastRead, as read
  let jsm: JetStreamManager | null = null;
  // The consumer's server has nothing after `seq`: the end, unless the stream
  // leader has more. Then the last message read is compared with the
  // leader's: the same, that copy is behind (a new consumer reads on);
  // different, it was renumbered.
  const endsAt = async (seq: number): Promise<boolean> => {
    if (!(await leaderHasMore(jsm!, o, seq, lastSeq))) return true;
    if (lastData !== null) {
      const theirs = await leaderGet(jsm!, o, { seq });
      if (theirs !== null && Buffer.compare(Buffer.from(theirs.data), lastData) !== 0) {
        throw new StreamInconsistentError(o.stream, BigInt(seq));
      }
    }
    throw new ReplicaBehindError(o.stream, seq);
  };
  try {
    for (;;) {
      let msgs: ConsumerMessages | null = null;
      let consumer: Consumer | null = null;
      try {
        jsm ??= await nc.jetstreamManager({ timeout: o.timeoutMs });
        if (lastSeq < 0) {
          try {
            const info = await jsm.streams.info(o.stream);
            lastSeq = info.state.messages === 0 ? 0 : info.state.last_seq;
          } catch (err) {
            if (isStreamNotFound(err)) throw new StreamNotFoundError(o.stream, o.servers);
            throw err;
          }
        }
        if (!o.follow && (lastSeq === 0 || lastRead >= lastSeq)) return;
        consumer = await nc.jetstream({ timeout: o.timeoutMs }).consumers.get(o.stream, { opt_start_seq: lastRead + 1 });
        // Short pulls with heartbeats: a pull lost with a node is noticed (two
        // missed heartbeats) and re-issued within seconds, not 30 s.
        const expires = Math.min(5000, Math.max(1000, Math.round(o.timeoutMs / 2)));
        msgs = await consumer.consume({ max_messages: 256, expires, idle_heartbeat: expires / 2 });
        current = msgs;
        // Nothing at or after the start (the rest was deleted): done, without waiting for a message that will not come.
        if (!o.follow && (await consumer.info(true)).num_pending === 0 && (await endsAt(lastRead))) return;
        failingSince = null; // a consumer is in place: a new failure gets the whole budget
        backoff = BACKOFF_FIRST_MS;
        for await (const m of msgs as AsyncIterable<JsMsg>) {
          if (m.seq <= lastRead) continue; // already delivered before a restart
          if (!o.follow && m.seq > lastSeq) return; // appended after we started
          lastRead = m.seq;
          // A copy: kept past this message, and the client library may reuse its buffers.
          lastData = Buffer.from(m.data);
          failingSince = null;
          yield decodeStreamMessage(o.stream, BigInt(m.seq), m.subject, m.data);
          // pending = messages after this one on the consumer's server: 0 is the end (deleted
          // messages never arrive) once the stream leader agrees.
          if (!o.follow && (m.seq >= lastSeq || (m.info.pending === 0 && (await endsAt(m.seq))))) return;
        }
        // The messages iterator ends only when the connection or the consumer is gone.
        if (lost) throw lost;
        const why = nc.isClosed() ? await nc.closed() : null;
        throw why instanceof Error ? why : new Error(nc.isClosed() ? 'the NATS connection closed' : 'the consumer went away');
      } catch (err) {
        if (permanent(err)) throw err;
        const now = Date.now();
        failingSince ??= now;
        if (lost || nc.isClosed() || now - failingSince + backoff > o.retryMs) {
          throw new StreamReadError(o.stream, BigInt(lastRead < o.fromSeq ? 0 : lastRead), o.retryMs, err);
        }
        await sleep(backoff);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      } finally {
        current = null;
        msgs?.stop();
        if (consumer !== null && !nc.isClosed()) await consumer.delete().catch(() => false);
      }
    }
  } finally {
    if (watchdog !== null) clearTimeout(watchdog);
    if (!nc.isClosed()) await nc.close();
  }
}
