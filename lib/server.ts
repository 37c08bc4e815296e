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

export interface CloseOptions {
  /** How long to wait for ACKs to be flushed to slow clients (default 5000). */
  timeoutMs?: number;
}

export interface CloseReport {
  /** Connections closed while the server still owed them ACKs. */
  unackedConnections: number;
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
  threads: NativeStats['threads'];
}

const NOT_BUILT_YET: Array<[(c: ResolvedConfig) => boolean, string]> = [
];

export class MessageServer extends EventEmitter<ServerEvents> {
  readonly config: ResolvedConfig;
  private engine: NativeEngine | null = null;
  private bound: ServerAddress | null = null;
  private closing: Promise<CloseReport> | null = null;
  private lastStats: NativeStats | null = null;

  constructor(options: ServerOptions = {}) {
    super();
    this.config = resolveConfig(options);
    for (const [unsupported, why] of NOT_BUILT_YET) {
      if (unsupported(this.config)) throw new Error(`invalid config: ${why}`);
    }
  }

  /** Binds the port, opens (and recovers) the file, starts the native threads. */
  async listen(): Promise<ServerAddress> {
    if (this.closing) await this.closing;
    if (this.bound) return this.bound;
    const { Engine } = loadAddon();
    const engine = new Engine(toNative(this.config), (ev) => this.onNativeEvent(ev));
    const port = engine.start(); // throws: listen EADDRINUSE ..., cannot open ...
    this.engine = engine;
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
    if (!engine) return Promise.resolve({ unackedConnections: 0, timedOut: false });
    const timeoutMs = options.timeoutMs ?? 5000;
    this.closing = (async () => {
      const stopped = await engine.stop(timeoutMs);
      this.lastStats = stopped?.stats ?? null;
      this.engine = null;
      this.bound = null;
      const report: CloseReport = { unackedConnections: stopped?.unackedConnections ?? 0, timedOut: stopped?.timedOut ?? false };
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
      case 'rotate':
        this.emit('rotate', { closed: ev.message, next: ev.detail });
        break;
      case 'recovered':
        this.emit('recovered', { message: ev.message, offset: ev.a, bytesCut: ev.b, lastSeq: ev.c });
        break;
      case 'error':
        // An unhandled 'error' event would kill the process; a disk error is
        // already answered with WRITE_FAILED, so without a listener it is logged.
        if (this.listenerCount('error') > 0) this.emit('error', new Error(ev.message));
        break;
    }
  }

  private log(level: LogEntry['level'], message: string): void {
    if (this.listenerCount('log') > 0) {
      this.emit('log', { level, message });
    } else if (level !== 'info') {
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
    threads: n.threads ?? [],
  };
}
