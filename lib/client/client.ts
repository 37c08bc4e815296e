// MessageClient: a pipelining client for wire protocol v1 (docs/protocol.md).
//
// A send moves through up to three FIFOs, always in send order:
//   parked   - send() was called while the client already held `window +
//              maxQueued` messages; its promise waits for room (back-pressure)
//   queued   - held by the client, ready to be written (at most `maxQueued`
//              beyond a full window)
//   inFlight - written on the current connection, waiting for its ACK (at
//              most `window`)
// The server ACKs in send order, possibly many per ACK frame, so the head of
// `inFlight` is always the next one to settle. Frames produced in one tick are
// written with one corked batch, so thousands of send() calls started
// together cost a handful of syscalls, not thousands. No timers per message.
//
// With `reconnect`, a dropped connection (socket error/close, an ERR such as
// SHUTTING_DOWN) does not end the client: it reconnects with exponential
// back-off and jitter, redoes HELLO with the same client id and carries on.
// Messages never written are simply written on the new connection. Messages
// written but not acknowledged either reject (default) or, with `resend`, are
// written again first, in order, with their original ids (at-least-once).
//
// With `endpoints` (several servers, e.g. the instances in front of one
// JetStream stream), connect() tries them in order and each reconnection
// attempt moves on to the next one, round-robin: a lost server is failed over
// at once, back-off starts only after a whole round of endpoints failed. The
// client id (and so every resent message's `<clientId>-<msgId>`, the key
// JetStream dedupes on) is the same on every endpoint.
//
// With `tls`, every connection (reconnections too) is a TLS connection made by
// node:tls; HELLO goes out once the handshake is done. With `token`, HELLO
// announces an AUTH frame (flags bit 0) and the AUTH frame is written in the
// same write as HELLO; the server sends HELLO_OK once it accepted the token.
// The token is kept only as the bytes of that frame and never appears in an
// error message.
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as tls from 'node:tls';
import {
  ackStatusName,
  AckStatus,
  decodeHelloOk,
  decodeServerFrame,
  encodeAuth,
  encodeHello,
  encodeMsgHeader,
  HelloFlag,
  ErrCode,
  errCodeName,
  HELLO_SIZE,
  MAX_ERR_REASON,
  MAX_TOKEN_BYTES,
  maxFrameLength,
  MSG_HEADER_SIZE,
  PROTOCOL_VERSION,
  ProtocolError,
  type ServerFrame,
} from '../format/codec';
import {
  AckError,
  ConnectionClosedError,
  ConnectTimeoutError,
  EndpointsFailedError,
  MessageTooLargeError,
  ReconnectFailedError,
  SendManyError,
  ServerError,
  TlsError,
} from '../errors';

export interface ReconnectOptions {
  /** Delay before the first attempt after a drop; doubles per failed attempt. Default 100 ms. */
  initialDelayMs?: number;
  /** Upper bound of the delay. Default 5000 ms. */
  maxDelayMs?: number;
  /** Failed attempts in a row before giving up (reset by every successful reconnect). Default Infinity. */
  maxAttempts?: number;
}

/** One server a client can connect to. */
export interface Endpoint {
  /** Default '127.0.0.1'. */
  host?: string;
  port: number;
}

export interface ClientOptions {
  /** Default '127.0.0.1'. Not with `endpoints`. */
  host?: string;
  /** The server's port. Required unless `endpoints` is given. */
  port?: number;
  /**
   * Several servers instead of host/port: connect() tries them in order, and
   * with `reconnect` each reconnection attempt goes to the next one,
   * round-robin (see docs/api.md, Failover). Not with `host`/`port`.
   */
  endpoints?: readonly Endpoint[];
  /** u32 sent in HELLO and stored with every message; default random. */
  clientId?: number;
  /**
   * The msgId given to the first message sent without one; later ones count
   * up from it. Default: the time in milliseconds x 1,000,000, so a client
   * restarted with the same clientId does not reuse the ids of its last run
   * (JetStream's duplicate window keys on `<clientId>-<msgId>`: a reused id
   * within it would be dropped as a duplicate, see docs/scale-out.md).
   */
  firstMsgId?: bigint | number;
  /** Most messages written but not yet acknowledged (on the wire); default 1024. */
  window?: number;
  /** Most messages held by the client beyond a full window before send() parks; default 10000. */
  maxQueued?: number;
  /** Time allowed for TCP connect + HELLO_OK (each reconnection attempt too); default 10000 ms. */
  connectTimeoutMs?: number;
  /** After close(): how long to wait for the server to close its side before destroying; default 5000 ms. */
  closeTimeoutMs?: number;
  /** Reconnect after the connection drops; default off. `true` uses the default back-off. */
  reconnect?: boolean | ReconnectOptions;
  /**
   * After a reconnect, write again the messages that were written but not
   * acknowledged when the connection dropped (at-least-once; duplicates
   * possible, see docs/api.md). Needs `reconnect`. Default false.
   */
  resend?: boolean;
  /**
   * Connect with TLS: `true` (the system's trusted CAs, the server name
   * checked against `host`), or node:tls connection options such as `ca`,
   * `cert` and `key` (mutual TLS), `servername`, `minVersion`. `servername`
   * defaults to the host unless it is an IP address. `host`/`port` in it are
   * ignored (they come from `host`/`port` or `endpoints`). Default: plaintext.
   */
  tls?: boolean | tls.ConnectionOptions;
  /**
   * A token to authenticate with (1..1024 bytes; a string is sent as UTF-8):
   * HELLO announces it and the AUTH frame carries it. The server answers a
   * wrong one with ERR UNAUTHENTICATED and a client id the token may not use
   * with ERR FORBIDDEN. Over plaintext only to a server that allows it.
   */
  token?: string | Uint8Array;
}

/**
 * What a send resolves with: only an OK ACK resolves (any other status
 * rejects with AckError), so status is always 0 and statusName 'OK'.
 */
export interface AckResult {
  msgId: bigint;
  status: typeof AckStatus.OK;
  statusName: 'OK';
}

export interface SendOptions {
  /** Message name, at most 255 bytes (UTF-8 when a string); default empty. */
  name?: string | Uint8Array;
  /**
   * u64 id echoed in the ACK. Default: the client's own counter, which starts
   * at `firstMsgId` (by default the time in ms x 1,000,000) and counts up;
   * an explicit id does not advance it.
   */
  msgId?: bigint | number;
}

/** One item of sendMany(): a payload, or a payload with its own name and/or id. */
export type SendManyItem = Uint8Array | string | { payload: Uint8Array | string; name?: string | Uint8Array; msgId?: bigint | number };

export interface SendManyOptions {
  /** Name for the items that do not carry their own; default empty. */
  name?: string | Uint8Array;
}

export interface ClientStats {
  /** MSG frames written to a socket (resends included). */
  sent: number;
  /** Messages acknowledged with status OK. */
  acked: number;
  /** Messages written again after a reconnect (`resend`); a message resent after two drops counts twice. */
  resent: number;
  /** Successful reconnections. */
  reconnects: number;
  /** Successful reconnections to a different endpoint than the one whose connection was lost. */
  failovers: number;
  /** Sends that rejected (non-OK ACK, connection closed, ...); argument errors are not counted. */
  failed: number;
  /** Gauges: messages written and waiting for their ACK, held ready to write, parked. */
  inFlight: number;
  queued: number;
  parked: number;
}

export interface ClientEvents {
  /** The connection dropped (not by close()). With reconnect on, attempts follow. */
  disconnect: [{ error: Error }];
  /** A reconnection attempt is scheduled: attempt 1, 2, ... to `endpoint` after `delayMs`. */
  reconnect: [{ attempt: number; delayMs: number; endpoint: ResolvedEndpoint }];
  /** HELLO_OK arrived on a new connection (to `endpoint`) after `attempts` attempts. */
  reconnected: [{ attempts: number; endpoint: ResolvedEndpoint }];
  /** Right after 'reconnected' when the new connection is to another endpoint than the lost one. */
  failover: [{ from: ResolvedEndpoint; to: ResolvedEndpoint }];
  /** After a reconnect: these written-but-unacknowledged messages are being written again, first, in this order. */
  resend: [{ count: number; msgIds: bigint[] }];
  /** The client is closed for good: close() (error null), a fatal error, or reconnecting gave up. */
  close: [{ error: Error | null }];
}

/** An endpoint with its host filled in. */
export interface ResolvedEndpoint {
  host: string;
  port: number;
}

type State = 'open' | 'reconnecting' | 'closed';

const DEFAULT_WINDOW = 1024;
const DEFAULT_MAX_QUEUED = 10_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
const DEFAULT_RECONNECT: Required<ReconnectOptions> = { initialDelayMs: 100, maxDelayMs: 5_000, maxAttempts: Infinity };
const MAX_U64 = (1n << 64n) - 1n;
const MAX_NAME_BYTES = 255;
/** Largest frame a server may send (an ERR with a full reason); more unparsed bytes = broken stream. */
const MAX_SERVER_FRAME = 4 + 2 + MAX_ERR_REASON;
/** Frames smaller than this are copied into one buffer; bigger payloads are written as they are. */
const COPY_LIMIT = 16 * 1024;
const EMPTY: Buffer = Buffer.alloc(0);

interface Pending {
  msgId: bigint;
  name: Buffer;
  payload: Buffer;
  /** Was written on a connection that dropped before its ACK: writing it again is a resend. */
  written: boolean;
  resolve: (r: AckResult) => void;
  reject: (e: Error) => void;
}

/** Array-backed FIFO: shift() is O(1) amortised (Array#shift is O(n) on long arrays). */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** The i-th item from the front (0 = next to shift). */
  at(i: number): T | undefined {
    return this.items[this.head + i];
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined; // let the payload be collected
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Removes and returns everything, front first. */
  drain(): T[] {
    const all = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return all;
  }

  /** Replaces the contents (front first). */
  reset(items: T[]): void {
    this.items = items;
    this.head = 0;
  }
}

/**
 * Splits a byte stream into server frames. Partial frames are kept in a small
 * carry-over buffer (server frames are at most 261 bytes), so each chunk is
 * parsed in place and nothing is re-concatenated quadratically.
 */
class FrameReader {
  private rest: Buffer | null = null;

  /** Calls onFrame for each complete frame; stops early when it returns false. */
  push(chunk: Buffer, onFrame: (f: ServerFrame) => boolean): void {
    const buf = this.rest === null ? chunk : Buffer.concat([this.rest, chunk]);
    this.rest = null;
    let off = 0;
    while (off < buf.length) {
      const frame = decodeServerFrame(buf, off);
      if (frame === null) break;
      off += frame.size;
      if (!onFrame(frame)) return;
    }
    if (off === buf.length) return;
    if (buf.length - off > MAX_SERVER_FRAME) {
      throw protocolError(`server frame larger than ${MAX_SERVER_FRAME} bytes`);
    }
    // Copy the tail so the (possibly 64 KiB) chunk is not kept alive by it.
    this.rest = Buffer.from(buf.subarray(off));
  }
}

/** Client-side protocol violations (bad ACK, oversized frame) are reported as MALFORMED. */
function protocolError(detail: string): ProtocolError {
  return new ProtocolError(ErrCode.MALFORMED, detail);
}

function toBuffer(data: Uint8Array | string): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function checkU32(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`${what} must be an integer 0..4294967295, got ${String(v)}`);
  }
}

let lastFirstMsgId = 0n;

/**
 * Milliseconds x 1,000,000: a client would have to send a billion messages a
 * second to reach the ids of a client started a second later. Within one
 * process each client also starts at least a million past the previous one
 * (two clients created in the same millisecond).
 */
function defaultFirstMsgId(): bigint {
  const now = BigInt(Date.now()) * 1_000_000n;
  lastFirstMsgId = now > lastFirstMsgId + 1_000_000n ? now : lastFirstMsgId + 1_000_000n;
  return lastFirstMsgId;
}

function toMsgId(v: bigint | number): bigint {
  if (typeof v === 'number' && !Number.isSafeInteger(v)) {
    throw new RangeError(`msgId must be a safe integer or a bigint, got ${v}`);
  }
  const id = BigInt(v);
  if (id < 0n || id > MAX_U64) throw new RangeError(`msgId must fit in a u64, got ${id}`);
  return id;
}

function toName(name: string | Uint8Array | undefined): Buffer {
  if (name === undefined) return EMPTY;
  const b = toBuffer(name);
  if (b.length > MAX_NAME_BYTES) {
    throw new RangeError(`message name is ${b.length} bytes; at most ${MAX_NAME_BYTES} allowed`);
  }
  return b;
}

/**
 * Errors after which reconnecting cannot help: the server said our bytes
 * break the protocol (resending them would fail the same way), or the server
 * broke it (we no longer know which messages were acknowledged).
 */
function isFatal(err: Error): boolean {
  if (err instanceof ProtocolError) return true;
  if (!(err instanceof ServerError)) return false;
  // Refused credentials: the same HELLO and AUTH would be refused again.
  if (err.errCode === ErrCode.UNAUTHENTICATED || err.errCode === ErrCode.FORBIDDEN) return true;
  return err.errCode >= ErrCode.BAD_MAGIC && err.errCode <= ErrCode.MALFORMED;
}

/** What a send that lost its connection before its ACK rejects with. */
function lostError(p: Pending, cause: Error): Error {
  if (cause instanceof ServerError || cause instanceof ProtocolError) return cause;
  return new ConnectionClosedError(`connection closed before message ${p.msgId} was acknowledged`, { msgId: p.msgId, cause });
}

interface Prepared {
  name: Buffer;
  payload: Buffer;
  msgId: bigint | undefined;
}

export class MessageClient extends EventEmitter<ClientEvents> {
  readonly clientId: number;
  readonly window: number;
  readonly maxQueued: number;

  private readonly endpoints: readonly ResolvedEndpoint[];
  /** Index in `endpoints` of the current connection (while reconnecting: of the lost one). */
  private current = 0;
  /** Index of the endpoint the next (or running) reconnection attempt goes to. */
  private target = 0;
  private readonly connectTimeoutMs: number;
  private readonly closeTimeoutMs: number;
  private readonly reconnectCfg: Required<ReconnectOptions> | null;
  private readonly resendOn: boolean;
  /**
   * How each connection is made: TLS options, the HELLO + AUTH bytes. A
   * #private field: util.inspect and console.log of a client never show it
   * (it holds the token).
   */
  readonly #link: Link;

  private state: State = 'open';
  private socket: net.Socket | null = null;
  private reader = new FrameReader();
  private maxMsgBytes = 0;
  private maxFrame = 0;
  /** Resolves when the most recent socket has closed. */
  private socketClosed: Promise<void> = Promise.resolve();

  private readonly parked = new Fifo<Pending>();
  private readonly queued = new Fifo<Pending>();
  private readonly inFlight = new Fifo<Pending>();
  /** The last `unflushed` entries of inFlight have frames in outChunks, not yet handed to the socket. */
  private unflushed = 0;
  private outChunks: Buffer[] = [];
  private flushScheduled = false;
  private nextMsgId: bigint;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private cancelHandshake: (() => void) | null = null;

  /** Set once the client is closed for good; later sends reject with it as cause. */
  private closedReason: Error | null = null;
  private closePromise: Promise<void> | null = null;
  private readonly counters = { sent: 0, acked: 0, resent: 0, reconnects: 0, failovers: 0, failed: 0 };

  /**
   * Connects, sends HELLO and resolves once HELLO_OK arrived. With
   * `endpoints`, tries each in order (each bounded by connectTimeoutMs) until
   * one answers; rejects with an AggregateError holding every endpoint's
   * error when none does. The first connect is not retried.
   */
  static async connect(opts: ClientOptions): Promise<MessageClient> {
    validateOptions(opts);
    const endpoints = resolveEndpoints(opts);
    const clientId = opts.clientId ?? randomClientId();
    const timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const link = makeLink(opts, clientId);
    const errors: Error[] = [];
    for (let i = 0; i < endpoints.length; i++) {
      const { host, port } = endpoints[i];
      let conn: OpenConnection;
      try {
        conn = await openConnection(host, port, link, timeoutMs).promise;
      } catch (err) {
        if (endpoints.length === 1) throw err; // the error itself, as without endpoints
        errors.push(err as Error);
        continue;
      }
      const client = new MessageClient(opts, endpoints, i, clientId, link);
      client.attach(conn);
      if (conn.rest.length > 0) client.onData(conn.socket, conn.rest);
      return client;
    }
    const detail = endpoints.map((e, i) => `${e.host}:${e.port} (${errors[i].message})`).join('; ');
    throw new EndpointsFailedError(errors, `could not connect to any of ${endpoints.length} endpoints: ${detail}`);
  }

  private constructor(opts: ClientOptions, endpoints: readonly ResolvedEndpoint[], current: number, clientId: number, link: Link) {
    super();
    this.#link = link;
    this.endpoints = endpoints;
    this.current = current;
    this.target = current;
    this.clientId = clientId;
    this.window = opts.window ?? DEFAULT_WINDOW;
    this.maxQueued = opts.maxQueued ?? DEFAULT_MAX_QUEUED;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    const rc = opts.reconnect;
    this.reconnectCfg = rc === undefined || rc === false ? null : { ...DEFAULT_RECONNECT, ...(rc === true ? {} : stripUndefined(rc)) };
    this.resendOn = opts.resend === true;
    this.nextMsgId = opts.firstMsgId !== undefined ? toMsgId(opts.firstMsgId) : defaultFirstMsgId();
  }

  /**
   * The endpoint of the current connection; while reconnecting, the one whose
   * connection was lost (a copy: changing it changes nothing).
   */
  get endpoint(): ResolvedEndpoint {
    return { ...this.endpoints[this.current] };
  }

  /** The server's payload limit from the latest HELLO_OK. */
  get maxMessageBytes(): number {
    return this.maxMsgBytes;
  }

  /** Messages written and waiting for their ACK. */
  get inFlightCount(): number {
    return this.inFlight.length;
  }

  /** Messages held by the client, not yet written (held back by the window, or waiting for a reconnect). */
  get queuedCount(): number {
    return this.queued.length;
  }

  /** Sends waiting for room because the client already holds `window + maxQueued` messages. */
  get parkedCount(): number {
    return this.parked.length;
  }

  /** True once the client can no longer send (closed, failed for good, or close() called). */
  get closed(): boolean {
    return this.state === 'closed';
  }

  /** True while a connection is up (false while reconnecting and after close). */
  get connected(): boolean {
    return this.state === 'open';
  }

  /** Counters (since connect) and gauges; cheap to call. */
  stats(): ClientStats {
    return {
      ...this.counters,
      inFlight: this.inFlight.length,
      queued: this.queued.length,
      parked: this.parked.length,
    };
  }

  /**
   * Resolves when a send() would be taken in without parking (the client
   * holds fewer than `window + maxQueued` messages and nothing is parked).
   * A producer that awaits ready() before each send keeps memory bounded.
   * Rejects with ConnectionClosedError once the client is closed.
   */
  ready(): Promise<void> {
    if (this.state === 'closed') return Promise.reject(this.closedError());
    if (this.hasRoom()) return Promise.resolve();
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /**
   * Sends one message. Resolves when the server ACKs it with OK; rejects with
   * AckError (non-OK status), ServerError (ERR frame), ConnectionClosedError
   * (ReconnectFailedError when reconnecting gave up) or ProtocolError. Beyond
   * `window` unacknowledged sends it waits in the client; beyond `window +
   * maxQueued` it is parked until there is room.
   */
  send(payload: Uint8Array | string, opts: SendOptions = {}): Promise<AckResult> {
    if (this.state === 'closed') return Promise.reject(this.closedError());
    let prep: Prepared;
    try {
      prep = this.prepare(payload, opts.name === undefined ? EMPTY : toName(opts.name), opts.msgId);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<AckResult>((resolve, reject) => {
      this.enqueue(this.makePending(prep, resolve, reject));
      this.pump();
    });
  }

  /**
   * Sends many messages, pipelined: every frame the window allows is written
   * in the same corked batch. Every item is validated first; an invalid one
   * rejects the call (RangeError naming the item) and nothing is sent.
   * Resolves with one AckResult per item, in item order, once all are
   * acknowledged OK. If any fails, rejects with SendManyError only after every
   * item has settled: `errors` are the failures, `results` the outcome of each item.
   */
  sendMany(items: readonly SendManyItem[], opts: SendManyOptions = {}): Promise<AckResult[]> {
    if (this.state === 'closed') return Promise.reject(this.closedError());
    if (!Array.isArray(items)) return Promise.reject(new TypeError('sendMany needs an array of items'));
    const prepared: Prepared[] = new Array(items.length);
    try {
      const defaultName = opts.name === undefined ? EMPTY : toName(opts.name);
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        try {
          if (typeof item === 'string' || item instanceof Uint8Array) {
            prepared[i] = this.check(item, defaultName, undefined);
          } else if (item !== null && typeof item === 'object' && 'payload' in item) {
            const name = item.name === undefined ? defaultName : toName(item.name);
            prepared[i] = this.check(item.payload, name, item.msgId === undefined ? undefined : toMsgId(item.msgId));
          } else {
            throw new TypeError('expected a string, a Uint8Array or { payload, name?, msgId? }');
          }
        } catch (err) {
          const e = err as Error;
          const Ctor = e instanceof TypeError ? TypeError : RangeError;
          throw new Ctor(`sendMany item ${i}: ${e.message}`);
        }
      }
    } catch (err) {
      return Promise.reject(err);
    }
    if (prepared.length === 0) return Promise.resolve([]);
    return new Promise<AckResult[]>((resolve, reject) => {
      const results: Array<AckResult | Error> = new Array(prepared.length);
      let left = prepared.length;
      let failures = 0;
      const done = (): void => {
        if (--left > 0) return;
        if (failures === 0) {
          resolve(results as AckResult[]);
        } else {
          reject(new SendManyError<AckResult>(results, results.filter((r): r is Error => r instanceof Error)));
        }
      };
      for (let i = 0; i < prepared.length; i++) {
        const prep = prepared[i];
        if (prep.msgId === undefined) prep.msgId = this.nextMsgId++;
        this.enqueue(
          this.makePending(
            prep,
            (r) => {
              results[i] = r;
              done();
            },
            (e) => {
              results[i] = e;
              failures++;
              done();
            },
          ),
        );
      }
      this.pump();
    });
  }

  /**
   * Ends the client: frames already handed to the socket are flushed, then
   * the socket is ended (a pending reconnection is cancelled). Every send not
   * yet acknowledged rejects with ConnectionClosedError (its message may or
   * may not have been stored).
   */
  close(): Promise<void> {
    if (this.closePromise !== null) return this.closePromise;
    if (this.state === 'open') this.flush();
    const reason = new ConnectionClosedError('close() was called');
    const wasClosed = this.state === 'closed';
    this.state = 'closed';
    this.closedReason ??= reason;
    this.stopReconnecting();
    this.rejectAll((p) => new ConnectionClosedError(`connection closed by the client before message ${p.msgId} was acknowledged`, { msgId: p.msgId, cause: reason }));
    const sock = this.socket;
    this.socket = null;
    if (sock !== null) {
      sock.end();
      // A server that never closes its side must not keep close() pending forever.
      const timer = setTimeout(() => sock.destroy(), this.closeTimeoutMs);
      this.closePromise = this.socketClosed.then(() => clearTimeout(timer));
    } else {
      this.closePromise = this.socketClosed;
    }
    if (!wasClosed) this.emit('close', { error: null });
    return this.closePromise;
  }

  // ---- sending ----------------------------------------------------------------

  private closedError(): ConnectionClosedError {
    return new ConnectionClosedError('connection is closed', { cause: this.closedReason ?? undefined });
  }

  private check(payload: Uint8Array | string, name: Buffer, msgId: bigint | undefined): Prepared {
    const body = toBuffer(payload);
    // A frame over the server's bound is a framing error: the server would
    // close the whole connection, failing every other send with it. Payloads
    // over maxMessageBytes but within the bound are sent; the server ACKs them
    // TOO_LARGE and the connection survives.
    if (MSG_HEADER_SIZE + name.length + body.length > this.maxFrame) {
      throw new MessageTooLargeError(
        `message of ${body.length} bytes is over the server's limit (maxMessageBytes ${this.maxMsgBytes}); not sent`,
        body.length,
        this.maxMsgBytes,
      );
    }
    return { name, payload: body, msgId };
  }

  private prepare(payload: Uint8Array | string, name: Buffer, msgId: bigint | number | undefined): Prepared {
    const id = msgId === undefined ? undefined : toMsgId(msgId);
    const prep = this.check(payload, name, id);
    if (prep.msgId === undefined) prep.msgId = this.nextMsgId++;
    return prep;
  }

  private makePending(prep: Prepared, resolve: (r: AckResult) => void, reject: (e: Error) => void): Pending {
    return { msgId: prep.msgId as bigint, name: prep.name, payload: prep.payload, written: false, resolve, reject };
  }

  private hasRoom(): boolean {
    return this.parked.length === 0 && this.inFlight.length + this.queued.length < this.window + this.maxQueued;
  }

  /** Takes a send in: held (queued) when there is room, else parked. */
  private enqueue(p: Pending): void {
    if (this.hasRoom()) this.queued.push(p);
    else this.parked.push(p);
  }

  /** Moves parked sends in while there is room; wakes ready() waiters. */
  private admit(): void {
    const cap = this.window + this.maxQueued;
    while (this.parked.length > 0 && this.inFlight.length + this.queued.length < cap) {
      this.queued.push(this.parked.shift() as Pending);
    }
    if (this.readyWaiters.length > 0 && this.hasRoom()) {
      for (const w of this.readyWaiters.splice(0)) w.resolve();
    }
  }

  /** Admits parked sends and moves queued ones onto the wire while the window has room. */
  private pump(): void {
    this.admit();
    if (this.state !== 'open') return;
    while (this.inFlight.length < this.window && this.queued.length > 0) {
      const p = this.queued.shift() as Pending;
      // The limit can shrink when a reconnect reaches a differently configured server.
      if (MSG_HEADER_SIZE + p.name.length + p.payload.length > this.maxFrame) {
        const why = `message ${p.msgId} of ${p.payload.length} bytes is over the server's limit (maxMessageBytes ${this.maxMsgBytes}); not sent`;
        this.failOne(p, new MessageTooLargeError(why, p.payload.length, this.maxMsgBytes));
        continue;
      }
      this.inFlight.push(p);
      this.unflushed++;
      this.outChunks.push(encodeMsgHeader(p.msgId, p.name, p.payload.length));
      if (p.payload.length > 0) this.outChunks.push(p.payload);
    }
    if (this.outChunks.length > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => this.flush());
    }
    this.admit(); // failOne above may have made room
  }

  /** Writes everything pumped so far: small frames copied together, one corked batch. */
  private flush(): void {
    this.flushScheduled = false;
    const chunks = this.outChunks;
    const socket = this.socket;
    if (chunks.length === 0 || socket === null || socket.destroyed) return;
    this.outChunks = [];
    this.counters.sent += this.unflushed;
    this.unflushed = 0;
    socket.cork();
    let small: Buffer[] = [];
    let smallBytes = 0;
    const writeSmall = (): void => {
      if (small.length > 0) socket.write(small.length === 1 ? small[0] : Buffer.concat(small, smallBytes));
      small = [];
      smallBytes = 0;
    };
    for (const c of chunks) {
      if (c.length >= COPY_LIMIT) {
        writeSmall();
        socket.write(c);
      } else {
        small.push(c);
        smallBytes += c.length;
      }
    }
    writeSmall();
    socket.uncork();
  }

  private failOne(p: Pending, err: Error): void {
    this.counters.failed++;
    p.reject(err);
  }

  /** Rejects in-flight sends first, then queued, then parked: the order they were sent in. */
  private rejectAll(makeError: (p: Pending) => Error): void {
    this.unflushed = 0;
    this.outChunks = [];
    for (const p of this.inFlight.drain()) this.failOne(p, makeError(p));
    for (const p of this.queued.drain()) this.failOne(p, makeError(p));
    for (const p of this.parked.drain()) this.failOne(p, makeError(p));
    const err = this.closedError();
    for (const w of this.readyWaiters.splice(0)) w.reject(err);
  }

  // ---- receiving --------------------------------------------------------------

  /** Makes `conn` the current connection. */
  private attach(conn: OpenConnection): void {
    const { socket } = conn;
    this.socket = socket;
    this.reader = new FrameReader();
    this.maxMsgBytes = conn.maxMessageBytes;
    this.maxFrame = maxFrameLength(conn.maxMessageBytes);
    this.socketClosed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('error', (err) => this.lost(socket, err));
    socket.on('close', () => this.lost(socket, new ConnectionClosedError('connection closed by the server')));
  }

  private onData(socket: net.Socket, chunk: Buffer): void {
    if (socket !== this.socket) return; // an old connection, or after close()/failure: nothing is owed
    try {
      this.reader.push(chunk, (f) => this.onFrame(socket, f));
    } catch (err) {
      this.lost(socket, err as Error);
    }
  }

  /** Returns false when this connection is finished and parsing must stop. */
  private onFrame(socket: net.Socket, f: ServerFrame): boolean {
    if (f.type === 'ack') this.onAck(socket, f.status, f.count, f.lastMsgId);
    else this.lost(socket, new ServerError(f.code, errCodeName(f.code), f.reason));
    return socket === this.socket;
  }

  private onAck(socket: net.Socket, status: number, count: number, lastMsgId: bigint): void {
    // Validate the whole ACK before settling anything: a bad one poisons the stream.
    if (count < 1 || count > this.inFlight.length) {
      throw protocolError(`ACK covers ${count} messages but ${this.inFlight.length} are unacknowledged`);
    }
    const last = this.inFlight.at(count - 1) as Pending;
    if (last.msgId !== lastMsgId) {
      throw protocolError(`ACK last_msg_id ${lastMsgId} does not match message ${last.msgId}`);
    }
    // Every other non-OK status (TOO_LARGE, WRITE_FAILED, and REPLICATION_FAILED
    // = 4, from a server whose JetStream sink could not replicate the message)
    // rejects just those sends with AckError below: the connection is fine.
    if (status === AckStatus.SHUTTING_DOWN && this.resendOn) {
      // Not stored, and the server is going away: with resend these are
      // written again after the reconnect instead of failing.
      this.lost(socket, new ConnectionClosedError('server is shutting down (ACK status SHUTTING_DOWN)'));
      return;
    }
    const statusName = ackStatusName(status);
    for (let i = 0; i < count; i++) {
      const p = this.inFlight.shift() as Pending;
      if (status === AckStatus.OK) {
        this.counters.acked++;
        p.resolve({ msgId: p.msgId, status: AckStatus.OK, statusName: 'OK' });
      } else {
        this.failOne(p, new AckError(p.msgId, status, statusName as Exclude<typeof statusName, 'OK'>));
      }
    }
    this.pump();
  }

  // ---- connection loss and reconnection ----------------------------------------

  /**
   * The current connection ended with `err`. Without reconnect (or for a
   * fatal error) the client is closed and every pending send rejects. With
   * reconnect: messages never written stay queued; written-but-unacknowledged
   * ones are kept for resending (resend) or rejected; back-off starts.
   */
  private lost(socket: net.Socket, err: Error): void {
    if (socket !== this.socket) return; // already handled (error then close), or an old socket
    this.socket = null;
    socket.destroy();
    this.outChunks = [];
    if (this.reconnectCfg === null || isFatal(err)) {
      this.state = 'closed';
      this.closedReason ??= err;
      this.rejectAll((p) => lostError(p, err));
      this.emit('disconnect', { error: err });
      this.emit('close', { error: err });
      return;
    }
    // The tail of inFlight whose frames were never handed to the socket was not written.
    const inFlight = this.inFlight.drain();
    const cut = inFlight.length - this.unflushed;
    this.unflushed = 0;
    const keep: Pending[] = [];
    for (let i = 0; i < cut; i++) {
      const p = inFlight[i];
      if (this.resendOn) {
        p.written = true;
        keep.push(p);
      } else {
        this.failOne(p, lostError(p, err));
      }
    }
    for (let i = cut; i < inFlight.length; i++) keep.push(inFlight[i]);
    const queued = this.queued.drain();
    for (const p of queued) keep.push(p);
    this.queued.reset(keep);
    this.state = 'reconnecting';
    this.attempt = 0;
    this.admit();
    this.emit('disconnect', { error: err });
    if (this.state === 'reconnecting' && this.attempt === 0 && this.reconnectTimer === null) this.scheduleReconnect(err);
  }

  /**
   * Schedules attempt n (1, 2, ...) since the drop. Attempt n goes to the
   * endpoint n places after the lost one, round-robin. With one endpoint,
   * attempt n waits back-off step n. With N > 1 endpoints, attempts run in
   * rounds of N: the attempts of a round follow each other at once (the
   * first one, to the next endpoint, right after the drop: failover), and
   * round r (r = 1, 2, ...) starts after back-off step r, i.e. the back-off
   * is paid once per whole round of failed endpoints.
   */
  private scheduleReconnect(lastError: Error): void {
    const cfg = this.reconnectCfg as Required<ReconnectOptions>;
    if (this.attempt >= cfg.maxAttempts) {
      this.giveUp(lastError);
      return;
    }
    const n = ++this.attempt;
    const count = this.endpoints.length;
    this.target = (this.current + n) % count;
    let delayMs = 0;
    if (count === 1 || (n - 1) % count === 0) {
      const step = count === 1 ? n : (n - 1) / count; // 0 for the first round of several endpoints
      if (step > 0) {
        const base = Math.min(cfg.maxDelayMs, cfg.initialDelayMs * 2 ** (step - 1));
        // "Equal jitter": half fixed, half random, so many clients do not retry in lockstep.
        delayMs = Math.round(base / 2 + (Math.random() * base) / 2);
      }
    }
    this.reconnectTimer = setTimeout(() => this.tryReconnect(), delayMs);
    this.emit('reconnect', { attempt: n, delayMs, endpoint: { ...this.endpoints[this.target] } });
  }

  private tryReconnect(): void {
    this.reconnectTimer = null;
    if (this.state !== 'reconnecting') return;
    const { host, port } = this.endpoints[this.target];
    const { promise, cancel } = openConnection(host, port, this.#link, this.connectTimeoutMs);
    this.cancelHandshake = cancel;
    promise.then(
      (conn) => {
        this.cancelHandshake = null;
        if (this.state !== 'reconnecting') {
          conn.socket.destroy();
          return;
        }
        this.onReconnected(conn);
      },
      (err: Error) => {
        this.cancelHandshake = null;
        if (this.state !== 'reconnecting') return;
        // Refused credentials: every further attempt would be refused the same way.
        if (isFatal(err)) this.giveUp(err);
        else this.scheduleReconnect(err);
      },
    );
  }

  private onReconnected(conn: OpenConnection): void {
    const attempts = this.attempt;
    this.attempt = 0;
    this.state = 'open';
    this.counters.reconnects++;
    const from = this.endpoints[this.current];
    const to = this.endpoints[this.target];
    this.current = this.target;
    // The same address listed twice is the same server: not a failover.
    const failedOver = from.host !== to.host || from.port !== to.port;
    if (failedOver) this.counters.failovers++;
    // Messages written on a dropped connection are at the front, in order.
    const msgIds: bigint[] = [];
    for (let i = 0; i < this.queued.length; i++) {
      const p = this.queued.at(i) as Pending;
      if (!p.written) break;
      msgIds.push(p.msgId);
    }
    this.counters.resent += msgIds.length;
    this.attach(conn);
    this.pump();
    this.emit('reconnected', { attempts, endpoint: { ...to } });
    if (failedOver) this.emit('failover', { from: { ...from }, to: { ...to } });
    if (msgIds.length > 0) this.emit('resend', { count: msgIds.length, msgIds });
    // Frames that came with HELLO_OK (an ERR, say) are handled after the events, in order.
    if (conn.rest.length > 0) this.onData(conn.socket, conn.rest);
  }

  private giveUp(lastError: Error): void {
    const attempts = this.attempt;
    this.state = 'closed';
    this.closedReason ??= new ReconnectFailedError(attempts, lastError);
    this.rejectAll((p) => new ReconnectFailedError(attempts, lastError, p.msgId));
    this.emit('close', { error: this.closedReason });
  }

  private stopReconnecting(): void {
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const cancel = this.cancelHandshake;
    this.cancelHandshake = null;
    if (cancel !== null) cancel();
  }
}

// ---- connect + handshake ----------------------------------------------------

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function checkPort(what: string, port: unknown): void {
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) {
    throw new RangeError(`${what} must be an integer 1..65535, got ${String(port)}`);
  }
}

function checkHost(what: string, host: unknown): void {
  if (host !== undefined && (typeof host !== 'string' || host === '')) {
    throw new TypeError(`${what} must be a non-empty string, got ${typeof host === 'string' ? "''" : String(host)}`);
  }
}

function validateEndpoints(opts: ClientOptions): void {
  const eps = opts.endpoints;
  if (eps === undefined) {
    if (opts.port === undefined) throw new TypeError('MessageClient.connect needs port (or endpoints: [{ host?, port }, ...])');
    checkPort('port', opts.port);
    return;
  }
  if (opts.port !== undefined || opts.host !== undefined) {
    throw new TypeError('give either host/port or endpoints, not both (put that server in endpoints)');
  }
  if (!Array.isArray(eps) || eps.length === 0) {
    throw new TypeError('endpoints must be a non-empty array of { host?, port }');
  }
  eps.forEach((e: unknown, i) => {
    if (e === null || typeof e !== 'object') throw new TypeError(`endpoints[${i}] must be an object { host?, port }, got ${String(e)}`);
    const ep = e as Endpoint;
    checkPort(`endpoints[${i}].port`, ep.port);
    checkHost(`endpoints[${i}].host`, ep.host);
  });
}

function resolveEndpoints(opts: ClientOptions): ResolvedEndpoint[] {
  const list = opts.endpoints ?? [{ host: opts.host, port: opts.port as number }];
  return list.map((e) => ({ host: e.host ?? '127.0.0.1', port: e.port }));
}

function validateOptions(opts: ClientOptions): void {
  if (opts === null || typeof opts !== 'object') throw new TypeError('MessageClient.connect needs an options object');
  validateEndpoints(opts);
  if (opts.clientId !== undefined) checkU32('clientId', opts.clientId);
  if (opts.firstMsgId !== undefined) {
    try {
      toMsgId(opts.firstMsgId);
    } catch (err) {
      throw new RangeError(`firstMsgId: ${(err as Error).message}`);
    }
  }
  if (opts.window !== undefined && (!Number.isInteger(opts.window) || opts.window < 1)) {
    throw new RangeError(`window must be a positive integer, got ${String(opts.window)}`);
  }
  if (opts.maxQueued !== undefined && (!Number.isInteger(opts.maxQueued) || opts.maxQueued < 0)) {
    throw new RangeError(`maxQueued must be an integer >= 0, got ${String(opts.maxQueued)}`);
  }
  for (const key of ['connectTimeoutMs', 'closeTimeoutMs'] as const) {
    const v = opts[key];
    if (v !== undefined && (!Number.isFinite(v) || v <= 0)) throw new RangeError(`${key} must be a positive number, got ${String(v)}`);
  }
  const rc = opts.reconnect;
  if (rc !== undefined && typeof rc !== 'boolean') {
    if (rc === null || typeof rc !== 'object') throw new TypeError('reconnect must be a boolean or { initialDelayMs?, maxDelayMs?, maxAttempts? }');
    for (const key of ['initialDelayMs', 'maxDelayMs'] as const) {
      const v = rc[key];
      if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw new RangeError(`reconnect.${key} must be a number >= 0, got ${String(v)}`);
    }
    const m = rc.maxAttempts;
    if (m !== undefined && m !== Infinity && (!Number.isInteger(m) || m < 1)) {
      throw new RangeError(`reconnect.maxAttempts must be a positive integer or Infinity, got ${String(m)}`);
    }
  }
  if (opts.resend !== undefined && typeof opts.resend !== 'boolean') throw new TypeError('resend must be a boolean');
  validateSecurity(opts);
  if (opts.resend === true && (rc === undefined || rc === false)) {
    throw new RangeError('resend needs reconnect: set reconnect: true (or reconnect options) too');
  }
}

function validateSecurity(opts: ClientOptions): void {
  const t = opts.tls;
  if (t !== undefined && typeof t !== 'boolean' && (t === null || typeof t !== 'object')) {
    throw new TypeError('tls must be a boolean or a node:tls ConnectionOptions object ({ ca?, cert?, key?, servername?, ... })');
  }
  const tok = opts.token;
  if (tok === undefined) return;
  if (typeof tok !== 'string' && !(tok instanceof Uint8Array)) throw new TypeError('token must be a string or a Uint8Array');
  // The size only, never the token itself.
  const bytes = typeof tok === 'string' ? Buffer.byteLength(tok, 'utf8') : tok.length;
  if (bytes < 1 || bytes > MAX_TOKEN_BYTES) throw new RangeError(`token must be 1..${MAX_TOKEN_BYTES} bytes, got ${bytes}`);
}

/** How every connection of a client is made, computed once in connect(). */
interface Link {
  /** node:tls options, or null for plaintext. */
  tls: tls.ConnectionOptions | null;
  /** HELLO, followed by the AUTH frame when there is a token: written in one go. */
  hello: Buffer;
}

function makeLink(opts: ClientOptions, clientId: number): Link {
  const t = opts.tls;
  const tlsOpts = t === undefined || t === false ? null : t === true ? {} : { ...t };
  if (opts.token === undefined) return { tls: tlsOpts, hello: encodeHello(clientId) };
  return { tls: tlsOpts, hello: Buffer.concat([encodeHello(clientId, { flags: HelloFlag.AUTH }), encodeAuth(opts.token)]) };
}

/** Errors of the TLS layer (certificate checks, alerts, a handshake cut short), by code. */
const CERT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE', 'CERT_REVOKED', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'INVALID_CA', 'INVALID_PURPOSE',
  'HOSTNAME_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * The error a TLS connection attempt rejects with. Before the handshake is
 * done, everything but a failed TCP connect is the TLS layer's; after it,
 * only OpenSSL's own errors (an alert: e.g. the server refused our certificate).
 */
// Why a TLS handshake may end before it completes, said the same way wherever it does.
const NOT_TLS_HINT = 'does that port speak TLS, or did the server refuse the connection (maxConnections, or not ready)?';

function tlsFailure(host: string, port: number, err: Error, secure: boolean): Error {
  const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN';
  if (CERT_CODES.has(code)) {
    const hint = code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH'
      ? 'the name does not match (set tls.servername to a name in it)'
      : 'is it signed by a CA you trust? Give that CA as tls.ca';
    return new TlsError(host, port, code, `the server's certificate was refused (${code}: ${err.message}); ${hint}`, err);
  }
  if (code.startsWith('ERR_SSL_')) {
    return new TlsError(host, port, code, `${err.message} (${code})${secure ? '; the server may have refused our certificate' : ''}`, err);
  }
  if (secure) return err;
  return new TlsError(host, port, code, `the handshake did not complete (${code}: ${err.message}); ${NOT_TLS_HINT}`, err);
}

function randomClientId(): number {
  return Math.floor(Math.random() * 0x1_0000_0000);
}

/** What the first bytes from the server turned out to be. */
type HelloReply = { kind: 'need-more' } | { kind: 'ok'; maxMessageBytes: number; used: number };

/**
 * Reads the server's first reply: HELLO_OK (starts with "MSGS") or an ERR
 * frame (starts with a u32 length, so byte 0 is 0). Throws ServerError for an
 * ERR and ProtocolError for anything else.
 */
function parseHelloReply(buf: Buffer): HelloReply {
  if (buf.length === 0) return { kind: 'need-more' };
  if (buf[0] === 0x4d /* 'M' */) {
    if (buf.length < HELLO_SIZE) return { kind: 'need-more' };
    const ok = decodeHelloOk(buf.subarray(0, HELLO_SIZE));
    if (ok.version !== PROTOCOL_VERSION || ok.status !== 0) {
      throw protocolError(`unexpected HELLO_OK (version ${ok.version}, status ${ok.status})`);
    }
    return { kind: 'ok', maxMessageBytes: ok.maxMessageBytes, used: HELLO_SIZE };
  }
  const frame = decodeServerFrame(buf, 0);
  if (frame === null) {
    if (buf.length > MAX_SERVER_FRAME) throw protocolError('server reply is neither HELLO_OK nor ERR');
    return { kind: 'need-more' };
  }
  if (frame.type === 'err') throw new ServerError(frame.code, errCodeName(frame.code), frame.reason);
  throw protocolError('server sent an ACK before HELLO_OK');
}

interface OpenConnection {
  socket: net.Socket;
  maxMessageBytes: number;
  /** Bytes that came after HELLO_OK in the same chunk: already frames. */
  rest: Buffer;
}

/** Starts a TCP or TLS connection; `ready` is the event after which HELLO may be written. */
function dial(host: string, port: number, link: Link): { socket: net.Socket; ready: 'connect' | 'secureConnect' } {
  if (link.tls === null) return { socket: net.connect({ host, port }), ready: 'connect' };
  const opts: tls.ConnectionOptions = { ...link.tls, host, port };
  // SNI takes a name, never an address; the certificate is still checked against the IP.
  if (opts.servername === undefined && net.isIP(host) === 0) opts.servername = host;
  return { socket: tls.connect(opts), ready: 'secureConnect' };
}

/** TCP (+ TLS) connect + HELLO (+ AUTH) + HELLO_OK, bounded by timeoutMs; cancel() aborts it (the promise rejects). */
function openConnection(
  host: string,
  port: number,
  link: Link,
  timeoutMs: number,
): { promise: Promise<OpenConnection>; cancel: () => void } {
  let cancel: () => void = () => {};
  const promise = new Promise<OpenConnection>((resolve, reject) => {
    const { socket, ready } = dial(host, port, link);
    socket.setNoDelay(true); // ACK latency matters more than packet count; we batch ourselves
    let received = EMPTY;
    let done = false;
    const finish = (err: Error | null, conn?: OpenConnection): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData).off('error', onError).off('close', onClose);
      if (err !== null) {
        socket.destroy();
        reject(err);
      } else {
        resolve(conn as OpenConnection);
      }
    };
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      let reply: HelloReply;
      try {
        reply = parseHelloReply(received);
      } catch (err) {
        finish(err as Error);
        return;
      }
      if (reply.kind === 'need-more') return;
      finish(null, { socket, maxMessageBytes: reply.maxMessageBytes, rest: received.subarray(reply.used) });
    };
    let connected = false;
    let secure = false;
    const onError = (err: Error): void => finish(link.tls !== null && connected ? tlsFailure(host, port, err, secure) : err);
    const onClose = (): void => {
      if (link.tls !== null && connected && !secure) {
        finish(new TlsError(host, port, 'ECONNRESET', `the connection closed during the handshake; ${NOT_TLS_HINT}`));
      } else if (secure && received.length === 0) {
        // TLS 1.3 ends the client's handshake before the server has judged its certificate.
        finish(new ConnectionClosedError('connection closed after the TLS handshake, before HELLO_OK: the server may have refused our certificate (or has none it trusts)'));
      } else {
        finish(new ConnectionClosedError('connection closed during the handshake (no HELLO_OK)'));
      }
    };
    const timer = setTimeout(() => finish(new ConnectTimeoutError(host, port, timeoutMs, connected)), timeoutMs);
    socket.on('data', onData).on('error', onError).on('close', onClose);
    socket.once('connect', () => {
      connected = true;
    });
    socket.once(ready, () => {
      connected = true;
      secure = link.tls !== null;
      socket.write(link.hello);
    });
    cancel = () => finish(new ConnectionClosedError('connection attempt cancelled by close()'));
  });
  return { promise, cancel };
}
