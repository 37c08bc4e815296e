// Typed wrapper around the native load generator (bench/loadgen/), used by
// the msgbench CLI and the benchmarks. The load runs on native threads (epoll,
// one writev per connection per round, per-message latency from send to ACK);
// the JS thread only starts it and receives progress.
//
// The load generator is its own Node-API module, msgbench.node, not part of
// the server addon (msgserver.node): see loadBenchAddon() for where it is
// looked for.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type BenchProtocol = 'v1' | 'legacy';

/** TLS for the load's connections: PEM file paths (read by the load engine itself). */
export interface LoadTlsOptions {
  /** The CA to trust for the server's certificate; default: the system's. */
  ca?: string;
  /** Client certificate and its key (mutual TLS); both or neither. */
  cert?: string;
  key?: string;
  /** The name the server's certificate must carry; default: host (checked as an IP address when it is one). */
  servername?: string;
}

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
  /** v1 only: every connection speaks TLS (`true`: the system's CAs). The engine's own TLS layer, not a proxy. */
  tls?: boolean | LoadTlsOptions;
  /** v1 only: every connection authenticates with this token (1..1024 bytes; HELLO flag + AUTH frame). */
  token?: string | Uint8Array;
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
  /** Bytes written: v1 frames, HELLOs and AUTH frames (under TLS: before encryption); legacy 1160 per message. */
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
  tls: boolean;
  tlsCa: string;
  tlsCert: string;
  tlsKey: string;
  tlsServername: string;
  token: Buffer | undefined;
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
  const sec = resolveSecurity(o, protocol);
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
    ...sec,
  };
}

function resolveSecurity(o: LoadOptions, protocol: BenchProtocol): Pick<NativeLoadOptions, 'tls' | 'tlsCa' | 'tlsCert' | 'tlsKey' | 'tlsServername' | 'token'> {
  const t = o.tls ?? false;
  if (typeof t !== 'boolean' && (t === null || typeof t !== 'object')) throw new RangeError('tls must be a boolean or { ca?, cert?, key?, servername? }');
  const files = typeof t === 'object' ? t : {};
  for (const k of ['ca', 'cert', 'key', 'servername'] as const) {
    const v = files[k];
    if (v !== undefined && (typeof v !== 'string' || v === '')) throw new RangeError(`tls.${k} must be a non-empty string`);
  }
  if ((files.cert === undefined) !== (files.key === undefined)) throw new RangeError('tls.cert and tls.key go together');
  let token: Buffer | undefined;
  if (o.token !== undefined) {
    token = typeof o.token === 'string' ? Buffer.from(o.token, 'utf8') : Buffer.from(o.token);
    // The size only, never the token.
    if (token.length < 1 || token.length > 1024) throw new RangeError(`token must be 1..1024 bytes, got ${token.length}`);
  }
  if (protocol === 'legacy' && (t !== false || token !== undefined)) {
    throw new RangeError('the legacy protocol has neither TLS nor tokens: use protocol v1');
  }
  return {
    tls: t !== false,
    tlsCa: files.ca ?? '',
    tlsCert: files.cert ?? '',
    tlsKey: files.key ?? '',
    tlsServername: files.servername ?? '',
    token,
  };
}

/** msgbench.node, the load engine. */
export interface BenchAddon {
  runLoad: RunLoadFn;
  /** MSGS_BENCH_SOURCE_HASH (CMakeLists.txt): the bench/loadgen/ and msgs_format sources it was built from. */
  sourceHash: string;
}

// The package root (this file is dist/bench/bench.js).
const PACKAGE_ROOT = path.join(__dirname, '..', '..');

/**
 * Where msgbench.node is looked for, in order:
 *   1. $MSGBENCH_ADDON, when set (another build; nothing else is tried);
 *   2. build/Release/msgbench/msgbench.node in the package root (a clone or a source build);
 *   3. prebuilds/<platform>-<arch>/msgbench/msgbench.node (the npm package's prebuilt engine).
 * Not node-gyp-build: it would take any .node file of prebuilds/<platform>-<arch>/.
 */
export function benchAddonCandidates(): string[] {
  const override = process.env.MSGBENCH_ADDON;
  if (override) return [path.resolve(override)];
  return [
    path.join(PACKAGE_ROOT, 'build', 'Release', 'msgbench', 'msgbench.node'),
    path.join(PACKAGE_ROOT, 'prebuilds', `${process.platform}-${process.arch}`, 'msgbench', 'msgbench.node'),
  ];
}

let benchAddon: BenchAddon | undefined;

/** Loads msgbench.node (see benchAddonCandidates); throws an Error that says how to get one when there is none. */
export function loadBenchAddon(): BenchAddon {
  if (benchAddon) return benchAddon;
  const override = process.env.MSGBENCH_ADDON;
  const candidates = benchAddonCandidates();
  const file = candidates.find((f) => fs.existsSync(f));
  if (!file) {
    throw new Error(
      override
        ? `MSGBENCH_ADDON points at ${candidates[0]}, which does not exist. ` +
            'Point it at a built msgbench.node, or unset it to use the packaged load engine.'
        : `the load engine (msgbench.node) is missing: neither ${candidates[0]} nor ${candidates[1]} exists. ` +
            'Build it in a clone of msgserver with `npm run build` (needs cmake, g++ and libevent-dev), ' +
            'or set MSGBENCH_ADDON to a built msgbench.node.',
    );
  }
  if (path.extname(file) !== '.node') {
    throw new Error(`MSGBENCH_ADDON must name a .node file (Node loads anything else as JavaScript): ${file}`);
  }
  let mod: Partial<BenchAddon>;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(file) as Partial<BenchAddon>;
  } catch (err) {
    const first = ((err as Error).message || String(err)).split('\n')[0];
    throw new Error(
      `cannot load the load engine ${file}: ${first}. ` +
        'It was built for another platform or Node-API version, or is damaged; rebuild it (`npm run build` in a clone)' +
        (override ? ', or unset MSGBENCH_ADDON.' : '.'),
      { cause: err },
    );
  }
  if (typeof mod.runLoad !== 'function') {
    throw new Error(`${file} is not the load engine (it has no runLoad): point MSGBENCH_ADDON at msgbench.node`);
  }
  benchAddon = mod as BenchAddon;
  return benchAddon;
}

/** Runs a load against a server and resolves with the figures when every connection has finished. */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const opts = resolveLoadOptions(options);
  let addon: BenchAddon;
  try {
    addon = loadBenchAddon();
  } catch (err) {
    return Promise.reject(err);
  }
  return addon.runLoad(opts);
}

/** Whether the run was clean: every message ACKed OK, no error of any kind. */
export function loadSucceeded(r: LoadResult): boolean {
  return r.errors === 0 && r.messagesUnacked === 0 && r.messagesAcked === r.messagesSent && r.connectionsFailed === 0;
}
