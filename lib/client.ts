// MessageClient: a pipelining client for wire protocol v1 (docs/protocol.md).
//
// Sends go through two FIFOs: `queued` (accepted by send(), not yet on the
// wire) and `inFlight` (written, waiting for an ACK). At most `window`
// messages are in flight; the server ACKs them in send order, possibly many
// per ACK frame, so the head of `inFlight` is always the next one to settle.
// Frames produced in one tick are written with one corked batch, so thousands
// of send() calls started together cost a handful of syscalls, not thousands.
import * as net from 'node:net';
import {
  ackStatusName,
  AckStatus,
  decodeHelloOk,
  decodeServerFrame,
  encodeHello,
  encodeMsgHeader,
  ErrCode,
  errCodeName,
  HELLO_SIZE,
  MAX_ERR_REASON,
  maxFrameLength,
  MSG_HEADER_SIZE,
  PROTOCOL_VERSION,
  ProtocolError,
  type ServerFrame,
} from './codec';
import { AckError, ConnectionClosedError, ConnectTimeoutError, ServerError } from './errors';

export interface ClientOptions {
  /** Default '127.0.0.1'. */
  host?: string;
  port: number;
  /** u32 sent in HELLO and stored with every message; default random. */
  clientId?: number;
  /** Most messages written but not yet acknowledged; default 1024. */
  window?: number;
  /** Time allowed for TCP connect + HELLO_OK; default 10000 ms. */
  connectTimeoutMs?: number;
  /** After close(): how long to wait for the server to close its side before destroying; default 5000 ms. */
  closeTimeoutMs?: number;
}

export interface AckResult {
  msgId: bigint;
  status: number;
  statusName: string;
}

export interface SendOptions {
  /** Message name, at most 255 bytes (UTF-8 when a string); default empty. */
  name?: string | Uint8Array;
  /** u64 id echoed in the ACK; default: the client's own counter (1, 2, 3, ...). */
  msgId?: bigint | number;
}

const DEFAULT_WINDOW = 1024;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
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

function toMsgId(v: bigint | number): bigint {
  if (typeof v === 'number' && !Number.isSafeInteger(v)) {
    throw new RangeError(`msgId must be a safe integer or a bigint, got ${v}`);
  }
  const id = BigInt(v);
  if (id < 0n || id > MAX_U64) throw new RangeError(`msgId must fit in a u64, got ${id}`);
  return id;
}

export class MessageClient {
  readonly clientId: number;
  /** The server's payload limit from HELLO_OK. */
  readonly maxMessageBytes: number;
  readonly window: number;

  private readonly socket: net.Socket;
  private readonly closeTimeoutMs: number;
  private readonly reader = new FrameReader();
  private readonly queued = new Fifo<Pending>();
  private readonly inFlight = new Fifo<Pending>();
  private outChunks: Buffer[] = [];
  private flushScheduled = false;
  private nextMsgId = 1n;
  /** Set once the connection is unusable; later sends reject with it as cause. */
  private closedReason: Error | null = null;
  private closePromise: Promise<void> | null = null;
  private readonly socketClosed: Promise<void>;

  /** Connects, sends HELLO and resolves once HELLO_OK arrived. */
  static connect(opts: ClientOptions): Promise<MessageClient> {
    return handshake(opts);
  }

  private constructor(socket: net.Socket, clientId: number, maxMessageBytes: number, opts: ClientOptions) {
    this.socket = socket;
    this.clientId = clientId;
    this.maxMessageBytes = maxMessageBytes;
    this.window = opts.window ?? DEFAULT_WINDOW;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.socketClosed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(null));
  }

  /** @internal Used by the handshake to build the client around a ready socket. */
  static fromHandshake(
    socket: net.Socket,
    clientId: number,
    maxMessageBytes: number,
    opts: ClientOptions,
    rest: Buffer,
  ): MessageClient {
    const client = new MessageClient(socket, clientId, maxMessageBytes, opts);
    if (rest.length > 0) client.onData(rest);
    return client;
  }

  /** Messages written and waiting for their ACK. */
  get inFlightCount(): number {
    return this.inFlight.length;
  }

  /** Messages accepted by send() but held back by the window. */
  get queuedCount(): number {
    return this.queued.length;
  }

  /** True once the connection can no longer send (closed, failed or close() called). */
  get closed(): boolean {
    return this.closedReason !== null;
  }

  /**
   * Sends one message. Resolves when the server ACKs it with OK; rejects with
   * AckError (non-OK status), ServerError (ERR frame), ConnectionClosedError
   * or ProtocolError. Beyond `window` unacknowledged sends it waits in a FIFO.
   */
  send(payload: Uint8Array | string, opts: SendOptions = {}): Promise<AckResult> {
    if (this.closedReason !== null) {
      return Promise.reject(new ConnectionClosedError('connection is closed', { cause: this.closedReason }));
    }
    let entry: Omit<Pending, 'resolve' | 'reject'>;
    try {
      entry = this.prepare(payload, opts);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<AckResult>((resolve, reject) => {
      this.queued.push({ ...entry, resolve, reject });
      this.pump();
    });
  }

  /**
   * Ends the connection: frames already handed to the socket are flushed, then
   * the socket is ended. Every send not yet acknowledged rejects with
   * ConnectionClosedError (its message may or may not have been stored).
   */
  close(): Promise<void> {
    if (this.closePromise !== null) return this.closePromise;
    this.flush();
    const reason = new ConnectionClosedError('close() was called');
    this.rejectAll((p) => new ConnectionClosedError(`connection closed by the client before message ${p.msgId} was acknowledged`, { msgId: p.msgId, cause: reason }));
    this.closedReason ??= reason;
    this.socket.end();
    // A server that never closes its side must not keep close() pending forever.
    const timer = setTimeout(() => this.socket.destroy(), this.closeTimeoutMs);
    this.closePromise = this.socketClosed.then(() => clearTimeout(timer));
    return this.closePromise;
  }

  private prepare(payload: Uint8Array | string, opts: SendOptions): Omit<Pending, 'resolve' | 'reject'> {
    const name = opts.name === undefined ? EMPTY : toBuffer(opts.name);
    if (name.length > MAX_NAME_BYTES) {
      throw new RangeError(`message name is ${name.length} bytes; at most ${MAX_NAME_BYTES} allowed`);
    }
    const body = toBuffer(payload);
    // A frame over the server's bound is a framing error: the server would
    // close the whole connection, failing every other send with it. Payloads
    // over maxMessageBytes but within the bound are sent; the server ACKs them
    // TOO_LARGE and the connection survives.
    const frameLength = MSG_HEADER_SIZE + name.length + body.length;
    if (frameLength > maxFrameLength(this.maxMessageBytes)) {
      throw new RangeError(
        `message of ${body.length} bytes is over the server's limit (maxMessageBytes ${this.maxMessageBytes}); not sent`,
      );
    }
    const msgId = opts.msgId === undefined ? this.nextMsgId++ : toMsgId(opts.msgId);
    return { msgId, name, payload: body };
  }

  /** Moves queued sends onto the wire while the window has room. */
  private pump(): void {
    while (this.inFlight.length < this.window && this.queued.length > 0) {
      const p = this.queued.shift() as Pending;
      this.inFlight.push(p);
      this.outChunks.push(encodeMsgHeader(p.msgId, p.name, p.payload.length));
      if (p.payload.length > 0) this.outChunks.push(p.payload);
    }
    if (this.outChunks.length > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  /** Writes everything pumped so far: small frames copied together, one corked batch. */
  private flush(): void {
    this.flushScheduled = false;
    const chunks = this.outChunks;
    if (chunks.length === 0 || this.socket.destroyed) return;
    this.outChunks = [];
    this.socket.cork();
    let small: Buffer[] = [];
    let smallBytes = 0;
    const writeSmall = (): void => {
      if (small.length > 0) this.socket.write(small.length === 1 ? small[0] : Buffer.concat(small, smallBytes));
      small = [];
      smallBytes = 0;
    };
    for (const c of chunks) {
      if (c.length >= COPY_LIMIT) {
        writeSmall();
        this.socket.write(c);
      } else {
        small.push(c);
        smallBytes += c.length;
      }
    }
    writeSmall();
    this.socket.uncork();
  }

  private onData(chunk: Buffer): void {
    if (this.closedReason !== null) return; // after close()/failure nothing is owed to anyone
    try {
      this.reader.push(chunk, (f) => this.onFrame(f));
    } catch (err) {
      this.fail(err as Error);
    }
  }

  /** Returns false when the connection is finished and parsing must stop. */
  private onFrame(f: ServerFrame): boolean {
    if (f.type === 'ack') this.onAck(f.status, f.count, f.lastMsgId);
    else this.fail(new ServerError(f.code, errCodeName(f.code), f.reason));
    return this.closedReason === null;
  }

  private onAck(status: number, count: number, lastMsgId: bigint): void {
    // Validate the whole ACK before settling anything: a bad one poisons the stream.
    if (count < 1 || count > this.inFlight.length) {
      throw protocolError(`ACK covers ${count} messages but ${this.inFlight.length} are unacknowledged`);
    }
    const last = this.inFlight.at(count - 1) as Pending;
    if (last.msgId !== lastMsgId) {
      throw protocolError(`ACK last_msg_id ${lastMsgId} does not match message ${last.msgId}`);
    }
    const statusName = ackStatusName(status);
    for (let i = 0; i < count; i++) {
      const p = this.inFlight.shift() as Pending;
      if (status === AckStatus.OK) p.resolve({ msgId: p.msgId, status, statusName });
      else p.reject(new AckError(p.msgId, status, statusName));
    }
    this.pump();
  }

  /**
   * Ends the connection for good. `err` null means the socket closed on its
   * own: outstanding sends get ConnectionClosedError. A ServerError or
   * ProtocolError is handed to every outstanding send as it is.
   */
  private fail(err: Error | null): void {
    if (this.closedReason === null) {
      this.closedReason = err ?? new ConnectionClosedError('connection closed by the server');
    }
    const cause = this.closedReason;
    this.rejectAll((p) =>
      cause instanceof ServerError || cause instanceof ProtocolError
        ? cause
        : new ConnectionClosedError(`connection closed before message ${p.msgId} was acknowledged`, {
            msgId: p.msgId,
            cause,
          }),
    );
    this.outChunks = [];
    if (err !== null) this.socket.destroy();
  }

  /** Rejects in-flight sends first, then queued ones: the order they were sent in. */
  private rejectAll(makeError: (p: Pending) => Error): void {
    for (const p of this.inFlight.drain()) p.reject(makeError(p));
    for (const p of this.queued.drain()) p.reject(makeError(p));
  }
}

// ---- connect + handshake ----------------------------------------------------

function validateOptions(opts: ClientOptions): void {
  if (opts === null || typeof opts !== 'object') throw new TypeError('MessageClient.connect needs an options object');
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
    throw new RangeError(`port must be an integer 1..65535, got ${String(opts.port)}`);
  }
  if (opts.clientId !== undefined) checkU32('clientId', opts.clientId);
  if (opts.window !== undefined && (!Number.isInteger(opts.window) || opts.window < 1)) {
    throw new RangeError(`window must be a positive integer, got ${String(opts.window)}`);
  }
  for (const key of ['connectTimeoutMs', 'closeTimeoutMs'] as const) {
    const v = opts[key];
    if (v !== undefined && (!Number.isFinite(v) || v <= 0)) throw new RangeError(`${key} must be a positive number, got ${String(v)}`);
  }
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

function handshake(opts: ClientOptions): Promise<MessageClient> {
  try {
    validateOptions(opts);
  } catch (err) {
    return Promise.reject(err);
  }
  const host = opts.host ?? '127.0.0.1';
  const clientId = opts.clientId ?? randomClientId();
  const timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  return new Promise<MessageClient>((resolve, reject) => {
    const socket = net.connect({ host, port: opts.port });
    socket.setNoDelay(true); // ACK latency matters more than packet count; we batch ourselves
    let received = EMPTY;
    const finish = (err: Error | null, client?: MessageClient): void => {
      clearTimeout(timer);
      socket.off('data', onData).off('error', onError).off('close', onClose);
      if (err !== null) {
        socket.destroy();
        reject(err);
      } else {
        resolve(client as MessageClient);
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
      // Bytes after HELLO_OK in the same chunk are already frames: the client parses them.
      const rest = received.subarray(reply.used);
      finish(null, MessageClient.fromHandshake(socket, clientId, reply.maxMessageBytes, opts, rest));
    };
    const onError = (err: Error): void => finish(err);
    const onClose = (): void => finish(new ConnectionClosedError('connection closed during the handshake (no HELLO_OK)'));
    const timer = setTimeout(() => finish(new ConnectTimeoutError(host, opts.port, timeoutMs)), timeoutMs);
    socket.on('data', onData).on('error', onError).on('close', onClose);
    socket.once('connect', () => socket.write(encodeHello(clientId)));
  });
}
