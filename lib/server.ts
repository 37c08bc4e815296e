// MessageServer: the TypeScript face of the native engine. It validates the
// config, starts and stops the engine, turns native events into typed events
// and native counters into a stats object. It is never on the data path.
import { EventEmitter } from 'node:events';

import { AckStatus, ErrCode } from './codec';
import { resolveConfig, type ResolvedConfig, type ServerOptions } from './config';
import { loadAddon, type NativeEngine, type NativeEvent, type NativeOptions, type NativeStats } from './native';

export interface ServerAddress {
  host: string;
  port: number;
}

export interface LogEntry {
  level: 'info' | 'warn' | 'error';
  message: string;
}

export interface RecoveredInfo {
  message: string;
  /** Offset of the first byte that was cut or set aside. */
  offset: number;
  /** Bytes truncated (torn tail); 0 when a damaged file was set aside. */
  bytesCut: number;
  /** Last good sequence number; new records continue after it. */
  lastSeq: number;
}

/** A logger with pino's interface (pino itself fits). */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

/** Runtime collaborators, not configuration: never validated or printed. */
export interface ServerRuntimeOptions {
  /** Where engine log lines go. Default: warnings and errors to stderr (or 'log' listeners). */
  logger?: Logger;
  /** Aborting it closes the server (like close()). */
  signal?: AbortSignal;
}

/** One message as a hook sees it. */
export interface HookMessage {
  seq: bigint;
  /** Receive time, microseconds since the epoch. */
  timeUs: bigint;
  clientId: number;
  msgId: bigint;
  name: string;
  /** A view into the batch's shared buffer (no copy per message). */
  payload: Buffer;
}

export interface HookOptions {
  /**
   * 'drop' (default): never slows ingest; a batch that does not fit the hooks'
   * buffer is skipped and counted in stats().hookDropped. 'block': the writer
   * waits for the hooks instead, slowing ingest (TCP back-pressure), so the
   * hooks see every message.
   */
  policy?: 'drop' | 'block';
  /** Most messages per call (a native batch is split). Default 4096. */
  maxBatch?: number;
  /** Bytes the hooks may have waiting (messages copied for them, not yet handled). Default 64 MiB. */
  maxBufferBytes?: number;
}

export type MessageHook = (messages: HookMessage[]) => void;

export interface ConnectionInfo {
  id: number;
  remoteAddress: string;
  serviceThread: number;
}

export interface DisconnectInfo {
  id: number;
  reason: string;
  messagesReceived: number;
  /** Messages whose ACK the connection did not get (it closed first). */
  unacked: number;
}

export interface CloseOptions {
  /** How long to wait for ACKs to be flushed to slow clients (default 5000). */
  timeoutMs?: number;
}

export interface CloseReport {
  /** Connections closed while the server still owed them ACKs. */
  unackedConnections: number;
  /** Messages those ACKs were for (they were written all the same). */
  unackedMessages: number;
  timedOut: boolean;
}

export interface RotateInfo {
  /** The segment just closed (complete and synced). */
  closed: string;
  /** The new active segment. */
  next: string;
}

export interface ServerEvents {
  listening: [ServerAddress];
  close: [CloseReport];
  error: [Error];
  log: [LogEntry];
  recovered: [RecoveredInfo];
  rotate: [RotateInfo];
  connection: [ConnectionInfo];
  disconnect: [DisconnectInfo];
}

type StatusCounts = Record<keyof typeof AckStatus, number>;

export interface ServerStats {
  connections: number;
  connectionsAccepted: number;
  connectionsRejected: number;
  acceptErrors: number;
  messagesIn: number;
  bytesIn: number;
  /** Messages acknowledged, by ACK status. */
  acks: StatusCounts;
  ackFrames: number;
  /** ERR frames sent, by code name. */
  errors: Record<string, number>;
  batchesPushed: number;
  readCalls: number;
  pausedForQueue: number;
  queueBytes: number;
  queueBatches: number;
  writerBatches: number;
  writes: number;
  recordsWritten: number;
  bytesWritten: number;
  fsyncs: number;
  syncedRecords: number;
  writeErrors: number;
  failedRecords: number;
  lastSeq: number;
  tornBytesCut: number;
  /** Segments closed by rotation. */
  rotations: number;
  /** Connections that waited for their ACKs (maxInflightBytesPerConnection). */
  inflightPauses: number;
  /** Writes (+ fsync when synced per batch) by duration: [i] counts those under 2^i us; the last, the rest. */
  writeLatencyUs: number[];
  /** Messages handed to message hooks, and those the hooks did not see (policy 'drop'). */
  hookDelivered: number;
  hookDropped: number;
  /** Times the writer waited for slow hooks (policy 'block'). */
  hookBlocked: number;
  /** The JetStream sink's counters; null without a jetstream section. */
  jetstream: JetStreamStats | null;
  threads: ThreadStats[];
}

export interface JetStreamStats {
  /** Messages handed to the NATS client. */
  published: number;
  /** Publish acknowledgements with a stream sequence (duplicates included). */
  acked: number;
  /** Acknowledged as duplicates: the stream's duplicate window already held the Nats-Msg-Id. */
  duplicates: number;
  /** Error replies: no stream, no quorum, ... */
  failed: number;
  /** No acknowledgement within jetstream.ackTimeoutMs. */
  timeouts: number;
  /** Messages not published because the cluster was unreachable or the stream missing. */
  unavailable: number;
  reconnects: number;
  connected: boolean;
}

export interface ThreadStats {
  connections: number;
  accepted: number;
  messagesIn: number;
  bytesIn: number;
  batchesPushed: number;
}

export class MessageServer extends EventEmitter<ServerEvents> {
  readonly config: ResolvedConfig;
  private engine: NativeEngine | null = null;
  private bound: ServerAddress | null = null;
  private closing: Promise<CloseReport> | null = null;
  private lastStats: NativeStats | null = null;
  private readonly logger: Logger | undefined;
  private readonly hooks = new Map<MessageHook, Required<HookOptions>>();

  constructor(options: ServerOptions & ServerRuntimeOptions = {}) {
    super();
    const { logger, signal, ...config } = options;
    this.config = resolveConfig(config);
    this.logger = logger;
    if (signal) {
      if (signal.aborted) throw new Error('the AbortSignal is already aborted');
      signal.addEventListener('abort', () => void this.close(), { once: true });
    }
    // Connection events cost the engine a string per connection: only on demand.
    const untyped = this as EventEmitter;
    untyped.on('newListener', (event: string | symbol) => {
      if (event === 'connection' || event === 'disconnect') queueMicrotask(() => this.syncNativeOptions());
    });
    untyped.on('removeListener', (event: string | symbol) => {
      if (event === 'connection' || event === 'disconnect') this.syncNativeOptions();
    });
  }

  /**
   * Adds a message hook: batches of received messages, delivered on the JS
   * thread, off the data path. Returns a function that removes it. Hooks can
   * be added and removed while the server runs. A hook that throws emits
   * 'error' (or is logged) and stays registered.
   */
  onMessages(hook: MessageHook, options: HookOptions = {}): () => void {
    const policy = options.policy ?? 'drop';
    if (policy !== 'drop' && policy !== 'block') throw new TypeError(`policy must be 'drop' or 'block', got ${String(policy)}`);
    const maxBatch = options.maxBatch ?? 4096;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError(`maxBatch must be an integer >= 1, got ${maxBatch}`);
    const maxBufferBytes = options.maxBufferBytes ?? 64 * 1024 * 1024;
    if (!Number.isInteger(maxBufferBytes) || maxBufferBytes < 4096) {
      throw new RangeError(`maxBufferBytes must be an integer >= 4096, got ${maxBufferBytes}`);
    }
    this.hooks.set(hook, { policy, maxBatch, maxBufferBytes });
    this.syncNativeOptions();
    return () => this.offMessages(hook);
  }

  offMessages(hook: MessageHook): void {
    if (this.hooks.delete(hook)) this.syncNativeOptions();
  }

  /** Tells the engine what JS wants delivered: hooks (strictest policy wins) and connection events. */
  private syncNativeOptions(): void {
    if (!this.engine) return;
    const all = [...this.hooks.values()];
    const block = all.some((h) => h.policy === 'block');
    const maxBytes = all.length ? Math.max(...all.map((h) => h.maxBufferBytes)) : 64 * 1024 * 1024;
    this.engine.setHooks(all.length > 0, block, maxBytes);
    this.engine.setConnectionEvents(this.listenerCount('connection') + this.listenerCount('disconnect') > 0);
  }

  private onNativeMessages(data: Buffer, meta: BigUint64Array): void {
    const n = meta.length / 5;
    const messages: HookMessage[] = new Array(n);
    const mask32 = 0xffffffffn;
    for (let i = 0; i < n; i++) {
      const w3 = meta[i * 5 + 3];
      const w4 = meta[i * 5 + 4];
      const nameLen = Number(w3 & mask32);
      const offset = Number(w4 >> 32n);
      const payloadLen = Number(w4 & mask32);
      messages[i] = {
        seq: meta[i * 5],
        timeUs: meta[i * 5 + 1],
        msgId: meta[i * 5 + 2],
        clientId: Number(w3 >> 32n),
        name: data.toString('utf8', offset, offset + nameLen),
        payload: data.subarray(offset + nameLen, offset + nameLen + payloadLen),
      };
    }
    for (const [hook, opts] of this.hooks) {
      for (let from = 0; from < n; from += opts.maxBatch) {
        const part = from === 0 && n <= opts.maxBatch ? messages : messages.slice(from, from + opts.maxBatch);
        try {
          hook(part);
        } catch (err) {
          this.reportError(err instanceof Error ? err : new Error(String(err)));
        }
      }
    }
  }

  private reportError(err: Error): void {
    // An unhandled 'error' event would kill the process: without a listener it is logged.
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.log('error', err.message);
  }

  /** Binds the port, opens (and recovers) the file, starts the native threads. */
  async listen(): Promise<ServerAddress> {
    if (this.closing) await this.closing;
    if (this.bound) return this.bound;
    const { Engine } = loadAddon();
    const engine = new Engine(
      toNative(this.config),
      (ev) => this.onNativeEvent(ev),
      (data, meta) => this.onNativeMessages(data, meta),
    );
    this.engine = engine;
    this.syncNativeOptions(); // before start: the first connection may already want events
    let port: number;
    try {
      port = engine.start(); // throws: listen EADDRINUSE ..., cannot open ...
    } catch (err) {
      this.engine = null;
      throw err;
    }
    this.bound = { host: this.config.host, port };
    this.emit('listening', this.bound);
    return this.bound;
  }

  address(): ServerAddress | null {
    return this.bound;
  }

  get listening(): boolean {
    return this.bound !== null;
  }

  /** Counters and gauges; cheap (reads relaxed native counters). */
  stats(): ServerStats {
    const raw = this.engine ? (this.engine.stats() as NativeStats) : this.lastStats;
    return fromNative(raw);
  }

  /**
   * Stops accepting, lets every parsed message reach its ACK (written to the
   * file in written/durable mode), flushes and fsyncs, closes connections and
   * joins the native threads. Idempotent: concurrent calls share one close.
   */
  close(options: CloseOptions = {}): Promise<CloseReport> {
    if (this.closing) return this.closing;
    const engine = this.engine;
    if (!engine) return Promise.resolve({ unackedConnections: 0, unackedMessages: 0, timedOut: false });
    const timeoutMs = options.timeoutMs ?? 5000;
    this.closing = (async () => {
      const stopped = await engine.stop(timeoutMs);
      this.lastStats = stopped?.stats ?? null;
      this.engine = null;
      this.bound = null;
      const report: CloseReport = {
        unackedConnections: stopped?.unackedConnections ?? 0,
        unackedMessages: stopped?.unackedMessages ?? 0,
        timedOut: stopped?.timedOut ?? false,
      };
      this.emit('close', report);
      return report;
    })().finally(() => {
      this.closing = null;
    });
    return this.closing;
  }

  private onNativeEvent(ev: NativeEvent): void {
    switch (ev.type) {
      case 'log':
        this.log(ev.level as LogEntry['level'], ev.message);
        break;
      case 'connection':
        this.emit('connection', { id: ev.a, remoteAddress: ev.message, serviceThread: ev.b });
        break;
      case 'disconnect':
        this.emit('disconnect', { id: ev.a, reason: ev.message, messagesReceived: ev.b, unacked: ev.c });
        break;
      case 'rotate':
        this.emit('rotate', { closed: ev.message, next: ev.detail });
        break;
      case 'recovered':
        this.emit('recovered', { message: ev.message, offset: ev.a, bytesCut: ev.b, lastSeq: ev.c });
        break;
      case 'error':
        // A disk error is already answered with WRITE_FAILED; this is the report.
        this.reportError(new Error(ev.message));
        break;
    }
  }

  private log(level: LogEntry['level'], message: string): void {
    if (this.logger) this.logger[level]({ component: 'msgserver' }, message);
    if (this.listenerCount('log') > 0) {
      this.emit('log', { level, message });
    } else if (!this.logger && level !== 'info') {
      console.error(`msgserver ${level}: ${message}`);
    }
  }
}

function toNative(c: ResolvedConfig): NativeOptions {
  return {
    host: c.host,
    port: c.port,
    serviceThreads: c.serviceThreads,
    protocol: c.protocol,
    ackMode: c.ackMode,
    fileEnabled: c.file.enabled,
    filePath: c.file.path,
    format: c.file.format,
    rotateBytes: c.file.rotateBytes,
    rotateMs: c.file.rotateMs,
    fsync: c.file.fsync,
    fsyncIntervalMs: c.file.fsyncIntervalMs,
    repair: c.file.repair,
    batchMaxMessages: c.batch.maxMessages,
    batchMaxBytes: c.batch.maxBytes,
    batchMaxDelayMs: c.batch.maxDelayMs,
    maxMessageBytes: c.limits.maxMessageBytes,
    maxConnections: c.limits.maxConnections,
    idleTimeoutMs: c.limits.idleTimeoutMs,
    handshakeTimeoutMs: c.limits.handshakeTimeoutMs,
    frameTimeoutMs: c.limits.frameTimeoutMs,
    maxQueueBytes: c.limits.maxQueueBytes,
    maxInflightBytesPerConnection: c.limits.maxInflightBytesPerConnection,
    jetstream: c.jetstream,
  };
}

const ACK_NAMES = Object.keys(AckStatus) as Array<keyof typeof AckStatus>;
const ERR_NAMES = Object.fromEntries(Object.entries(ErrCode).map(([k, v]) => [v, k])) as Record<number, string>;

function fromNative(raw: NativeStats | null): ServerStats {
  const n = (raw ?? {}) as Partial<NativeStats>;
  const acks = Object.fromEntries(ACK_NAMES.map((k) => [k, n.acks?.[AckStatus[k]] ?? 0])) as StatusCounts;
  const errors: Record<string, number> = {};
  for (const [code, name] of Object.entries(ERR_NAMES)) errors[name] = n.errors?.[Number(code)] ?? 0;
  return {
    connections: n.connections ?? 0,
    connectionsAccepted: n.connectionsAccepted ?? 0,
    connectionsRejected: n.connectionsRejected ?? 0,
    acceptErrors: n.acceptErrors ?? 0,
    messagesIn: n.messagesIn ?? 0,
    bytesIn: n.bytesIn ?? 0,
    acks,
    ackFrames: n.ackFrames ?? 0,
    errors,
    batchesPushed: n.batchesPushed ?? 0,
    readCalls: n.readCalls ?? 0,
    pausedForQueue: n.pausedForQueue ?? 0,
    queueBytes: n.queueBytes ?? 0,
    queueBatches: n.queueBatches ?? 0,
    writerBatches: n.writerBatches ?? 0,
    writes: n.writes ?? 0,
    recordsWritten: n.recordsWritten ?? 0,
    bytesWritten: n.bytesWritten ?? 0,
    fsyncs: n.fsyncs ?? 0,
    syncedRecords: n.syncedRecords ?? 0,
    writeErrors: n.writeErrors ?? 0,
    failedRecords: n.failedRecords ?? 0,
    lastSeq: n.lastSeq ?? 0,
    tornBytesCut: n.tornBytesCut ?? 0,
    rotations: n.rotations ?? 0,
    inflightPauses: n.inflightPauses ?? 0,
    writeLatencyUs: n.writeLatencyUs ?? [],
    hookDelivered: n.hookDelivered ?? 0,
    hookDropped: n.hookDropped ?? 0,
    hookBlocked: n.hookBlocked ?? 0,
    jetstream: n.jetstream ?? null,
    threads: n.threads ?? [],
  };
}
