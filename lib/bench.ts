// Typed wrapper around the native load generator (native/loadgen.{h,cc}),
// used by the msgbench CLI and the benchmarks. The load runs on native
// threads (epoll, one writev per connection per round, per-message latency
// from send to ACK); the JS thread only starts it and receives progress.
import { loadAddon } from './native';

export type BenchProtocol = 'v1' | 'legacy';

export interface LoadOptions {
  host?: string;
  port: number;
  protocol?: BenchProtocol;
  /** Connections to open (default 1). */
  connections?: number;
  /** Messages per connection. Give this or durationMs. */
  messages?: number;
  /** Run this long (then wait for the ACKs still owed). */
  durationMs?: number;
  /** Payload bytes: a fixed size or an inclusive [min, max] range (default 100). Legacy: text length, at most 1023. */
  payload?: number | [number, number];
  /** Messages in flight per connection; 1 = synchronous (default 1). */
  window?: number;
  /** Load-generator threads (default 1). */
  threads?: number;
  /** Spread connection starts over this many ms (default 0: all at once). */
  rampMs?: number;
  /** Message name (v1: up to 255 bytes; legacy: up to 127). Default "bench". */
  name?: string;
  /** Connection i uses client id clientIdBase + i (default 1). */
  clientIdBase?: number;
  /** A connection waiting this long without ACK progress fails (default 15000). */
  stallTimeoutMs?: number;
  seed?: number;
  progressIntervalMs?: number;
  onProgress?: (p: LoadProgress) => void;
}

export interface LoadProgress {
  elapsedMs: number;
  sent: number;
  acked: number;
  errors: number;
  connectionsOpen: number;
}

export interface LatencySummary {
  count: number;
  minUs: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
}

export interface LoadResult {
  /** First connect to the last connection finished (all its ACKs in). */
  elapsedMs: number;
  /** Messages fully written to the sockets. */
  messagesSent: number;
  /** Messages ACKed with status OK (each ACK checked against the ids). */
  messagesAcked: number;
  /** Bytes written: v1 frames and HELLOs; legacy 1160 per message. */
  wireBytesSent: number;
  payloadBytesAcked: number;
  /** v1: ACK frames received (one may cover many messages); legacy: ACKs. */
  ackFrames: number;
  msgsPerSec: number;
  /** MB = 10^6 bytes. */
  wireMBPerSec: number;
  payloadMBPerSec: number;
  /** Per message: from its send (the writev that carried it) to the read that brought its ACK. */
  latency: LatencySummary;
  connectionsOk: number;
  connectionsFailed: number;
  /** Sum of errorsByKind. */
  errors: number;
  errorsByKind: {
    connect: number;
    /** ACK count past the messages in flight, wrong last_msg_id, bytes other than "ack". */
    ackMismatch: number;
    /** Messages ACKed with a non-OK status. */
    badStatus: number;
    /** ERR frames (or a bad HELLO_OK) from the server. */
    serverError: number;
    closedEarly: number;
    timeout: number;
  };
  /** Messages written whose ACK never came (their connection failed). */
  messagesUnacked: number;
  /** The first few error messages. */
  errorSamples: string[];
}

interface NativeLoadOptions {
  host: string;
  port: number;
  protocol: BenchProtocol;
  connections: number;
  messages: number;
  durationMs: number;
  payloadMin: number;
  payloadMax: number;
  window: number;
  threads: number;
  rampMs: number;
  name: string;
  clientIdBase: number;
  stallTimeoutMs: number;
  seed: number;
  progressIntervalMs: number;
  onProgress?: (p: LoadProgress) => void;
}

type RunLoadFn = (opts: NativeLoadOptions) => Promise<LoadResult>;

function check(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${field} must be an integer ${min}..${max}, got ${String(v)}`);
  }
  return v;
}

/** Validates and fills in defaults; throws RangeError naming the field. */
export function resolveLoadOptions(o: LoadOptions): NativeLoadOptions {
  const protocol = o.protocol ?? 'v1';
  if (protocol !== 'v1' && protocol !== 'legacy') throw new RangeError(`protocol must be 'v1' or 'legacy', got ${String(protocol)}`);
  const maxPayload = protocol === 'legacy' ? 1023 : 64 * 1024 * 1024;
  const payload = o.payload ?? 100;
  const [pmin, pmax] = Array.isArray(payload) ? payload : [payload, payload];
  check('payload', pmin, 0, maxPayload);
  check('payload', pmax, 0, maxPayload);
  if (pmin > pmax) throw new RangeError(`payload range ${pmin}-${pmax}: min is larger than max`);
  const messages = o.messages ?? 0;
  const durationMs = o.durationMs ?? 0;
  check('messages', messages, 0, protocol === 'legacy' ? 0xffffffff : Number.MAX_SAFE_INTEGER);
  check('durationMs', durationMs, 0, 86_400_000);
  if ((messages === 0) === (durationMs === 0)) throw new RangeError('give exactly one of messages (per connection) and durationMs');
  const name = o.name ?? 'bench';
  const nameMax = protocol === 'legacy' ? 127 : 255;
  if (Buffer.byteLength(name) > nameMax) throw new RangeError(`name: at most ${nameMax} bytes`);
  const connections = check('connections', o.connections ?? 1, 1, 1_000_000);
  return {
    host: o.host ?? '127.0.0.1',
    port: check('port', o.port, 1, 65535),
    protocol,
    connections,
    messages,
    durationMs,
    payloadMin: pmin,
    payloadMax: pmax,
    window: check('window', o.window ?? 1, 1, 1_000_000),
    threads: Math.min(check('threads', o.threads ?? 1, 1, 256), connections),
    rampMs: check('rampMs', o.rampMs ?? 0, 0, 3_600_000),
    name,
    clientIdBase: check('clientIdBase', o.clientIdBase ?? 1, 0, 0xffffffff),
    stallTimeoutMs: check('stallTimeoutMs', o.stallTimeoutMs ?? 15_000, 1, 3_600_000),
    seed: check('seed', o.seed ?? 1, 0, Number.MAX_SAFE_INTEGER),
    progressIntervalMs: check('progressIntervalMs', o.progressIntervalMs ?? 500, 10, 3_600_000),
    onProgress: o.onProgress,
  };
}

/** Runs a load against a server and resolves with the figures when every connection has finished. */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const opts = resolveLoadOptions(options);
  const native = (loadAddon() as unknown as { runLoad?: RunLoadFn }).runLoad;
  if (typeof native !== 'function') {
    return Promise.reject(new Error('msgserver: this build of the native addon has no load generator (runLoad); rebuild it'));
  }
  return native(opts);
}

/** Whether the run was clean: every message ACKed OK, no error of any kind. */
export function loadSucceeded(r: LoadResult): boolean {
  return r.errors === 0 && r.messagesUnacked === 0 && r.messagesAcked === r.messagesSent && r.connectionsFailed === 0;
}
