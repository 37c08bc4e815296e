// MessageServer: the TypeScript face of the native engine. It validates the
// config, starts and stops the engine, turns native events into typed events
// and native counters into a stats object. It is never on the data path.
import { EventEmitter } from 'node:events';

import { getSystemErrorName } from 'node:util';

import { IoError } from '../errors';
import { AckStatus, ErrCode } from '../format/codec';
import { resolveConfig, type ResolvedConfig, type ServerOptions } from './config';
import { CredentialsError, loadPrincipals, sharedClientIds, type NativePrincipal } from './credentials';
import { loadAddon, type NativeEngine, type NativeEvent, type NativeHookMeta } from './native';
import type { IoOp, ServerStats } from './stats';

export type { ServerStats, JetStreamStats, ThreadStats, IoOp } from './stats';
export { CredentialsError } from './credentials';

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

/** A closed segment of a rotating log, for onSegmentClosed hooks. */
export interface SegmentInfo {
  /** The segment file (complete, synced, never written again). */
  path: string;
  firstSeq: number;
  lastSeq: number;
  bytes: number;
}

/** An archive hook: copy, upload or compress the segment; resolve when done. */
export type SegmentHook = (segment: SegmentInfo) => void | Promise<void>;

export interface SegmentDeletedInfo {
  path: string;
  firstSeq: number;
  bytes: number;
  /** The retention bound the segment was beyond. */
  reason: 'maxBytes' | 'maxAgeMs' | 'maxSegments';
}

export interface HookDropInfo {
  /** Messages the onMessages hooks missed since the last hookDrop event. */
  messages: number;
}

/** What server.reconfigure() did: dotted option paths. */
export interface ReconfigureResult {
  /** Changed and applied to the running server. */
  applied: string[];
  /** Changed, but take effect only at the next start (not applied; server.config keeps the running value). */
  needsRestart: string[];
}

/** The options server.reconfigure() applies while the server runs. */
export const LIVE_OPTIONS: readonly string[] = [
  'limits.maxConnections',
  'limits.idleTimeoutMs',
  'limits.handshakeTimeoutMs',
  'limits.frameTimeoutMs',
  'limits.maxInflightBytesPerConnection',
  'file.retention.maxBytes',
  'file.retention.maxAgeMs',
  'file.retention.maxSegments',
  'file.retention.afterArchive',
  'file.minFreeBytes',
  'file.fsyncIntervalMs',
];

/** What 'ready' reports: the sinks take messages (with JetStream: the stream answered a publish). */
export interface ReadyInfo {
  /** The JetStream stream that answered, or null without a jetstream section. */
  stream: string | null;
}

export interface ListenOptions {
  /**
   * Resolve only once the sinks are ready (the 'ready' event): with a
   * jetstream section, once the stream exists and answered a publish. A
   * close() before that rejects. Default false: resolve once bound.
   */
  waitForSink?: boolean;
}

export interface ServerEvents {
  listening: [ServerAddress];
  ready: [ReadyInfo];
  close: [CloseReport];
  error: [Error];
  log: [LogEntry];
  recovered: [RecoveredInfo];
  rotate: [RotateInfo];
  segmentDeleted: [SegmentDeletedInfo];
  hookDrop: [HookDropInfo];
  connection: [ConnectionInfo];
  disconnect: [DisconnectInfo];
}

export class MessageServer extends EventEmitter<ServerEvents> {
  readonly config: ResolvedConfig;
  private engine: NativeEngine | null = null;
  private bound: ServerAddress | null = null;
  private closing: Promise<CloseReport> | null = null;
  private lastStats: ServerStats | null = null;
  private readonly logger: Logger | undefined;
  private readonly hooks = new Map<MessageHook, Required<HookOptions>>();
  private readonly segmentHooks = new Set<SegmentHook>();
  private sinkReady = false;

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

  /**
   * Adds an archive hook, called once for each segment the log closes
   * (after a rotation) and, at start, for each closed segment already in the
   * directory: archiving is at-least-once across restarts. With
   * file.retention.afterArchive a segment is deleted only after every hook
   * resolved for it; a hook that rejects (or throws) keeps the segment,
   * emits 'error' and is logged and counted (stats().archiveFailures); it is
   * not called again for that segment before the next start. Register hooks
   * before listen(): segments closed while none is registered are not
   * offered again in this process. Returns a function that removes it.
   */
  onSegmentClosed(hook: SegmentHook): () => void {
    if (typeof hook !== 'function') throw new TypeError('onSegmentClosed needs a function');
    this.segmentHooks.add(hook);
    return () => {
      this.segmentHooks.delete(hook);
    };
  }

  private archiveSegment(segment: SegmentInfo): void {
    const engine = this.engine;
    const hooks = [...this.segmentHooks];
    if (hooks.length === 0 || !engine) return;
    void Promise.allSettled(hooks.map(async (h) => h({ ...segment }))).then((results) => {
      const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (this.engine !== engine) return; // closed (or restarted) meanwhile
      engine.segmentArchived(segment.path, failures.length === 0);
      for (const f of failures) {
        const why = f.reason instanceof Error ? f.reason.message : String(f.reason);
        const err = new Error(`archive hook failed for ${segment.path}: ${why}; the segment is kept`, { cause: f.reason });
        this.log('error', err.message);
        if (this.listenerCount('error') > 0) this.emit('error', err);
      }
    });
  }

  /**
   * Applies a new configuration to the running server, as far as it can
   * change live (LIVE_OPTIONS: the connection limits and timeouts,
   * file.retention, file.minFreeBytes, file.fsyncIntervalMs). `options` is
   * validated whole first: a ConfigError changes nothing. Every other field
   * that differs is listed in needsRestart and not applied. Open
   * connections are kept. Before listen() every change applies.
   */
  reconfigure(options: ServerOptions): ReconfigureResult {
    const next = resolveConfig(options); // throws ConfigError: nothing changed
    const before = flatten(this.config);
    const after = flatten(next);
    const changed = [...new Set([...before.keys(), ...after.keys()])].filter(
      (k) => JSON.stringify(before.get(k)) !== JSON.stringify(after.get(k)),
    );
    const running = this.engine !== null;
    const applied = running ? changed.filter((k) => LIVE_OPTIONS.includes(k)) : changed;
    const needsRestart = running ? changed.filter((k) => !LIVE_OPTIONS.includes(k)) : [];
    const target = this.config as unknown as Record<string, unknown>;
    if (!running) {
      for (const [k, v] of Object.entries(next)) target[k] = v;
    } else {
      for (const path of applied) setPath(target, path, after.get(path));
      this.engine!.reconfigure(this.config);
      if (applied.length > 0) this.log('info', `reconfigured: ${applied.join(', ')}`);
      if (needsRestart.length > 0) this.log('warn', `changed but needs a restart (not applied): ${needsRestart.join(', ')}`);
    }
    return { applied, needsRestart };
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

  private onNativeMessages(data: Buffer, meta: NativeHookMeta): void {
    const n = meta.seq.length;
    const messages: HookMessage[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const offset = meta.offset[i];
      const nameEnd = offset + meta.nameLen[i];
      messages[i] = {
        seq: meta.seq[i],
        timeUs: meta.timeUs[i],
        msgId: meta.msgId[i],
        clientId: meta.clientId[i],
        name: data.toString('utf8', offset, nameEnd),
        payload: data.subarray(nameEnd, nameEnd + meta.payloadLen[i]),
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
  async listen(options: ListenOptions = {}): Promise<ServerAddress> {
    const address = await this.bind();
    if (options.waitForSink && !this.sinkReady) await this.untilReady();
    return address;
  }

  /** True once the sinks take messages ('ready' was emitted); false again after close(). */
  get ready(): boolean {
    return this.sinkReady;
  }

  private untilReady(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onReady = (): void => {
        this.off('close', onClose);
        resolve();
      };
      const onClose = (): void => {
        this.off('ready', onReady);
        reject(new Error('the server closed before its JetStream sink was ready (listen({ waitForSink: true }))'));
      };
      this.once('ready', onReady);
      this.once('close', onClose);
    });
  }

  private async bind(): Promise<ServerAddress> {
    if (this.closing) await this.closing;
    if (this.bound) return this.bound;
    const principals = this.principals(); // throws CredentialsError (ERR_MSGS_TOKENS_FILE)
    const { Engine } = loadAddon();
    const engine = new Engine(
      this.config,
      (ev) => this.onNativeEvent(ev),
      (data, meta) => this.onNativeMessages(data, meta),
    );
    this.engine = engine;
    this.syncNativeOptions(); // before start: the first connection may already want events
    let port: number;
    try {
      port = engine.start(principals); // throws: listen EADDRINUSE ..., cannot open ..., ERR_MSGS_TLS_FILES
    } catch (err) {
      this.engine = null;
      throw startError(err);
    }
    this.bound = { host: this.config.host, port };
    this.warnUnsafe();
    const { rotateBytes, rotateMs, retention } = this.config.file;
    if (retention.afterArchive && (rotateBytes > 0 || rotateMs > 0) && this.segmentHooks.size === 0) {
      this.log(
        'warn',
        'file.retention.afterArchive is true but no onSegmentClosed hook is registered: no segment is archived, ' +
          'so retention deletes none and every segment is kept',
      );
    }
    const bound = this.bound;
    this.emit('listening', bound);
    // Without JetStream the file is ready once bound; with it, the engine
    // says so when the stream first answers (onNativeEvent).
    if (this.config.jetstream === null) this.markReady(null);
    return bound;
  }

  private markReady(stream: string | null): void {
    if (this.sinkReady || !this.bound) return;
    this.sinkReady = true;
    this.emit('ready', { stream });
  }

  /**
   * Reads the TLS certificate, key and CA and the tokens file again; new
   * connections (handshakes) use them, open connections carry on with what
   * they started with. A failure keeps the previous credentials in use: it is
   * logged, counted (stats().reloadFailures), emitted as 'error' when there
   * is a listener, and the promise rejects with a CredentialsError
   * (code 'ERR_MSGS_TLS_FILES' or 'ERR_MSGS_TOKENS_FILE').
   */
  /** The auth section's principals, read now; client ids that several may use are warned about. */
  private principals(): NativePrincipal[] {
    const principals = loadPrincipals(this.config);
    for (const line of sharedClientIds(principals)) {
      this.log('warn', `auth: ${line}: each can write as those clients (fine while a token is being rotated, otherwise give each principal ids of its own)`);
    }
    return principals;
  }

  async reload(): Promise<void> {
    const engine = this.engine;
    if (!engine) throw Object.assign(new Error('reload(): the server is not listening'), { code: 'ERR_MSGS_NOT_LISTENING' });
    let err: CredentialsError | null = null;
    try {
      const why = engine.reload(this.principals());
      if (why !== '') err = new CredentialsError(`reload failed, the previous credentials stay in use: ${why}`, 'ERR_MSGS_TLS_FILES');
    } catch (e) {
      if (!(e instanceof CredentialsError)) throw e;
      engine.reload(e.message);
      err = new CredentialsError(`reload failed, the previous credentials stay in use: ${e.message}`, e.code, e.path);
    }
    if (err) {
      this.log('error', err.message);
      if (this.listenerCount('error') > 0) this.emit('error', err);
      throw err;
    }
    this.log('info', 'credentials reloaded: new connections use them');
  }

  /** Start-time warnings about exposure (docs/security.md). */
  private warnUnsafe(): void {
    const { host, tls, auth } = this.config;
    const loopback = host === 'localhost' || host === '::1' || /^127\./.test(host);
    if (!loopback && !tls && !auth?.required) {
      this.log(
        'warn',
        `listening on ${host} beyond loopback with neither tls nor auth.required: anyone who can reach the port ` +
          'can write under any client id, in clear text (docs/security.md)',
      );
    }
    if (auth?.tokensFile && !tls && auth.allowPlaintext) {
      this.log('warn', 'auth.allowPlaintext: tokens cross the network in clear text (no tls); anyone on the path can read and reuse them');
    }
  }

  address(): ServerAddress | null {
    return this.bound;
  }

  get listening(): boolean {
    return this.bound !== null;
  }

  /** Counters and gauges; cheap (reads relaxed native counters). */
  stats(): ServerStats {
    const s = this.engine ? (this.engine.stats() as ServerStats) : (this.lastStats ?? zeroStats());
    // The engine reports it as a number: a bigint like every other seq.
    if (typeof s.lastSeq !== 'bigint') s.lastSeq = BigInt((s.lastSeq as unknown as number) ?? 0);
    return s;
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
      this.sinkReady = false;
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
        this.log(ev.level, ev.message);
        break;
      case 'connection':
        this.emit('connection', { id: ev.id, remoteAddress: ev.remoteAddress, serviceThread: ev.serviceThread });
        break;
      case 'disconnect':
        this.emit('disconnect', { id: ev.id, reason: ev.reason, messagesReceived: ev.messagesReceived, unacked: ev.unacked });
        break;
      case 'rotate':
        this.emit('rotate', { closed: ev.closed, next: ev.next });
        break;
      case 'segmentClosed':
        this.archiveSegment({ path: ev.path, firstSeq: ev.firstSeq, lastSeq: ev.lastSeq, bytes: ev.bytes });
        break;
      case 'segmentDeleted':
        this.emit('segmentDeleted', { path: ev.path, firstSeq: ev.firstSeq, bytes: ev.bytes, reason: ev.reason });
        break;
      case 'hookDrop':
        this.emit('hookDrop', { messages: ev.messages });
        break;
      case 'jetstreamReady':
        this.markReady(ev.stream);
        break;
      case 'recovered':
        this.emit('recovered', { message: ev.message, offset: ev.offset, bytesCut: ev.bytesCut, lastSeq: ev.lastSeq });
        break;
      case 'ioError':
        // Already counted, logged (at most once per interval and kind) and,
        // for a write, answered WRITE_FAILED by the engine; this is the
        // report for programs. Without a listener it is not logged again.
        if (this.listenerCount('error') > 0) {
          const fields = { op: ev.op, path: ev.path, errno: ev.errno, systemCode: systemCode(ev.errno), records: ev.records };
          this.emit('error', new IoError(ev.message, fields));
        }
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

/** Leaf values by dotted path ('file.retention.maxBytes'); arrays are leaves. */
function flatten(o: object, prefix = '', out = new Map<string, unknown>()): Map<string, unknown> {
  for (const [k, v] of Object.entries(o)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) flatten(v as object, `${prefix}${k}.`, out);
    else out.set(prefix + k, v);
  }
  return out;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = target;
  for (const k of keys.slice(0, -1)) o = o[k] as Record<string, unknown>;
  o[keys[keys.length - 1]] = value;
}

/**
 * listen()'s rejection, shaped like Node's system errors: the engine sets
 * errno (negative), syscall and address/port or path; the errno's name
 * becomes `code` ('EADDRINUSE', 'ENOENT', ...). A log refused without a
 * failed call has its own code ('ERR_MSGS_LOG_CORRUPT', 'ERR_MSGS_NOT_A_LOG');
 * any other start failure is 'ERR_MSGS_START'.
 */
function startError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const e = err as NodeJS.ErrnoException;
  if (e.code === undefined) e.code = typeof e.errno === 'number' ? systemCode(e.errno) : 'ERR_MSGS_START';
  return e;
}

function systemCode(errno: number): string {
  try {
    return getSystemErrorName(-Math.abs(errno));
  } catch {
    return 'UNKNOWN';
  }
}

const IO_OPS: readonly IoOp[] = ['write', 'fsync', 'truncate', 'rename', 'dirSync', 'open', 'close', 'delete', 'writeback'];

/** stats() of a server that never ran: every counter of the engine's stats table at 0. */
function zeroStats(): ServerStats {
  const s: Record<string, unknown> = {};
  for (const d of loadAddon().statsSchema) {
    if (!d.name.includes('.')) s[d.name] = 0;
  }
  s.acks = Object.fromEntries(Object.keys(AckStatus).map((k) => [k, 0]));
  s.errors = Object.fromEntries(Object.keys(ErrCode).map((k) => [k, 0]));
  s.ioErrors = Object.fromEntries(IO_OPS.map((k) => [k, 0]));
  s.writeLatencyUs = [];
  s.jetstream = null;
  s.threads = [];
  return s as unknown as ServerStats;
}
