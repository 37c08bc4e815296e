// Server configuration: the option types, their defaults, and resolveConfig(),
// which turns user options into a complete, validated config. Validation
// collects every problem before throwing, so a user with three typos fixes
// them in one go instead of three restarts.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { inspect } from 'node:util';

export type Protocol = 'v1' | 'legacy';
export type AckMode = 'received' | 'written' | 'durable' | 'replicated';
export type FileFormat = 'binary' | 'text';
export type FsyncPolicy = 'never' | 'interval' | 'batch';

/**
 * Retention of a rotated log's closed segments (only with file.rotateBytes
 * or file.rotateMs). The oldest closed segments beyond any bound are
 * deleted, oldest first; the active segment never is. 0 = that bound off.
 */
export interface RetentionOptions {
  /** Bytes of all segments, the active one included. */
  maxBytes?: number;
  /** Age of a closed segment: the time since it was closed (its file's mtime for segments found at start). */
  maxAgeMs?: number;
  /** Segment files, the active one included. */
  maxSegments?: number;
  /**
   * Delete a segment only after every onSegmentClosed hook resolved for it
   * (a segment whose hook failed, and every segment after it, are kept
   * until the next start). Default false.
   */
  afterArchive?: boolean;
}

export interface FileOptions {
  /** false: no file; JetStream (the `jetstream` section) is the only sink. Default true. */
  enabled?: boolean;
  path?: string;
  format?: FileFormat;
  /**
   * Rotate the active segment before it passes this many bytes; 0 = never.
   * With rotation on (rotateBytes or rotateMs), `path` is a directory of
   * segments named by their first sequence number.
   */
  rotateBytes?: number;
  /** Also rotate a segment this old (ms) that holds records; 0 = never. */
  rotateMs?: number;
  fsync?: FsyncPolicy;
  fsyncIntervalMs?: number;
  /** Start even if the log has corruption before its tail (truncate it there). */
  repair?: boolean;
  /** Deletion of old closed segments (rotation only). Default: keep everything. */
  retention?: RetentionOptions;
  /**
   * The disk-space guard: below this many free bytes on the log's file
   * system the server stops reading new messages (TCP back-pressure) until
   * space is back above it (plus an eighth). 0 = off. Default 64 MiB.
   */
  minFreeBytes?: number;
  /**
   * Written records leave the page cache behind the writer: every 4 MiB
   * written, writeback of them starts and the 4 MiB before are dropped
   * (sync_file_range, POSIX_FADV_DONTNEED, on the msgs-fsync thread); after
   * each good interval fsync every page it made clean is dropped, and a
   * closed segment is dropped whole. The log then neither evicts the
   * machine's useful cache nor piles up dirty pages until the kernel
   * throttles writing; readers of the log read it from disk. It promises
   * nothing about durability (that is `fsync`). false: the kernel caches the
   * log like any file. Default true.
   */
  dropCache?: boolean;
}

export interface BatchOptions {
  maxMessages?: number;
  maxBytes?: number;
  maxDelayMs?: number;
}

export interface LimitOptions {
  maxMessageBytes?: number;
  maxConnections?: number;
  /** 0 = off for all three timeouts. */
  idleTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  frameTimeoutMs?: number;
  maxQueueBytes?: number;
  /**
   * Bytes one connection may have parsed but not yet ACKed; past it, the
   * server stops reading that connection until its ACKs are out, so one
   * client cannot fill the shared queue.
   */
  maxInflightBytesPerConnection?: number;
  /**
   * Bytes all connections together may hold in frames they have started and
   * not finished (docs/limits.md). A connection that would pass it is not
   * read (TCP back-pressure) until there is room, and gets SLOW_FRAME after
   * frameTimeoutMs. At least one largest frame (maxMessageBytes + 269).
   * Default 64 MiB.
   */
  maxPartialFrameBytes?: number;
}

export type ClientAuth = 'none' | 'request' | 'require';
export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

/**
 * TLS on the v1 port (docs/security.md): with it set, the port speaks only
 * TLS. The files are read at listen() and again by server.reload().
 */
export interface TlsOptions {
  /** PEM file: the server certificate (and its chain). */
  cert: string;
  /** PEM file: the certificate's private key. */
  key: string;
  /** PEM file: the CAs client certificates must chain to (needed for clientAuth 'request' and 'require'). */
  ca?: string;
  /**
   * 'none' (default): no client certificate asked for; 'request': asked for
   * and verified when sent; 'require': a certificate signed by `ca` is needed
   * to connect. A verified certificate's subject CN is its principal.
   */
  clientAuth?: ClientAuth;
  /** Oldest protocol version accepted. Default 'TLSv1.2'. */
  minVersion?: TlsVersion;
  /** TLS 1.2 cipher list (OpenSSL syntax). Default: OpenSSL's. */
  ciphers?: string;
  /** TLS 1.3 cipher suites (OpenSSL syntax, ':'-separated). Default: OpenSSL's. */
  ciphersuites?: string;
}

/** client-id ranges, inclusive: [[from, to], ...]. */
export type ClientIdRanges = Array<[number, number]>;

/**
 * Authentication and authorization (docs/security.md). Principals are token
 * holders (tokensFile) and client-certificate names (principals); each may
 * use only its own client ids.
 */
export interface AuthOptions {
  /**
   * JSON file: [{ "name": "...", "sha256": "<hex of the token>", "clientIds": [[from, to], ...] }].
   * Read at listen() and again by server.reload().
   */
  tokensFile?: string;
  /**
   * Client-certificate principals (subject CN) and their client ids. When
   * given, a certificate whose CN is not listed gets FORBIDDEN; when absent,
   * a verified certificate may use any client id.
   */
  principals?: Record<string, ClientIdRanges>;
  /**
   * true: a connection without accepted credentials gets UNAUTHENTICATED.
   * false (default): it is served, but only for client ids no principal owns.
   */
  required?: boolean;
  /** Accept tokens without tls (they cross the network in clear text; a warning at start). Default false. */
  allowPlaintext?: boolean;
}

/**
 * The JetStream sink (docs/scale-out.md): every record is also published to
 * `<subjectPrefix>.<clientId>` on a NATS JetStream stream, with the header
 * `Nats-Msg-Id: <clientId>-<msgId>` so the stream's duplicate window drops
 * resends. Needs libnats at run time (apt-get install libnats3.4).
 */
export interface JetStreamOptions {
  /** NATS servers of the cluster: 'nats://host:port' (an array, or one comma-separated string). */
  servers: string | string[];
  /** Stream name. Default 'msgs'. */
  stream?: string;
  /** Records go to `<subjectPrefix>.<clientId>`. Default 'msgs'. */
  subjectPrefix?: string;
  /** Replicas of a stream this server creates (1..5). Default 1; use 3 on a 3-node cluster. */
  replicas?: number;
  /** Create the stream (subjects `<subjectPrefix>.>`) when it does not exist. Default true. */
  createStream?: boolean;
  /** A publish not acknowledged within this many ms failed (REPLICATION_FAILED in ackMode 'replicated'). Default 5000. */
  ackTimeoutMs?: number;
  /** Publishes awaiting their acknowledgement before the writer waits. Default 65536. */
  maxPending?: number;
  /**
   * ackMode 'replicated': how long a message may be retried, from its first
   * publish, when the publish fails for a reason that can pass (no
   * responders, a 503 reply during an election, no acknowledgement within
   * ackTimeoutMs, not connected). Each resend carries the same Nats-Msg-Id,
   * so the stream's duplicate window keeps one copy; only once the budget is
   * spent is the message answered REPLICATION_FAILED. Messages waiting for a
   * resend count against maxPending (the writer waits when it is full). Must
   * stay shorter than the stream's duplicate window (a stream this server
   * creates gets one of at least 2 × (retryMs + ackTimeoutMs); for an
   * existing one a shorter window is logged). 0 turns retries off. Default 15000.
   */
  retryMs?: number;
  /**
   * ackMode 'replicated', until the stream exists and answers a publish:
   * 'hold' takes connections and their messages wait (within retryMs);
   * 'refuse' answers new connections ERR BUSY ("not ready: ..."). Default 'hold'.
   */
  whileNotReady?: 'hold' | 'refuse';
  /**
   * TLS toward NATS (on as well with 'tls://' servers): PEM files of the CAs
   * to trust (default: the system's), and of a client certificate and its key
   * for servers that verify clients.
   */
  tls?: { ca?: string; cert?: string; key?: string } | null;
  /** Credentials toward NATS, at most one kind: user (+ password), token, nkey, or credsFile. Never logged. */
  user?: string;
  password?: string;
  token?: string;
  /** An NKey user: its public key ('U...') and the file holding its seed ('SU...'). */
  nkey?: { publicKey: string; seedFile: string } | null;
  /** A decentralised-auth .creds file (user JWT and NKey seed). */
  credsFile?: string;
}

/** The TLS and NKey settings resolved: '' is none. */
export interface ResolvedNatsTls {
  ca: string;
  cert: string;
  key: string;
}
export interface ResolvedNkey {
  publicKey: string;
  seedFile: string;
}

export interface ServerOptions {
  host?: string;
  port?: number;
  serviceThreads?: number;
  protocol?: Protocol;
  ackMode?: AckMode;
  file?: FileOptions;
  batch?: BatchOptions;
  limits?: LimitOptions;
  /** Publish to a NATS JetStream stream too (or only, with file.enabled false). Default: off. */
  jetstream?: JetStreamOptions | null;
  /** TLS on the port (protocol 'v1'). Default: off (plaintext). */
  tls?: TlsOptions | null;
  /** Token and certificate authentication, per-client-id authorization. Default: off. */
  auth?: AuthOptions | null;
}

export type ResolvedJetStream = Required<Omit<JetStreamOptions, 'servers' | 'tls' | 'nkey'>> & {
  servers: string[];
  tls: ResolvedNatsTls;
  nkey: ResolvedNkey;
};
/** ca, ciphers and ciphersuites are '' when not given. */
export type ResolvedTls = Required<TlsOptions>;
/** tokensFile is '' when not given; principals null when not given. */
export type ResolvedAuth = Required<Omit<AuthOptions, 'principals'>> & { principals: Record<string, ClientIdRanges> | null };

export interface ResolvedConfig {
  host: string;
  port: number;
  serviceThreads: number;
  protocol: Protocol;
  ackMode: AckMode;
  file: Required<Omit<FileOptions, 'retention'>> & { retention: Required<RetentionOptions> };
  batch: Required<BatchOptions>;
  limits: Required<LimitOptions>;
  jetstream: ResolvedJetStream | null;
  tls: ResolvedTls | null;
  auth: ResolvedAuth | null;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const MAX_TIMEOUT_MS = 86_400_000; // one day; longer looks like a unit mistake
const MAX_ROTATE_BYTES = 2 ** 50;
const MIN_ROTATE_BYTES = 4096;
/**
 * NATS's default max_payload (1 MiB) must hold a record, its name (<= 255 B)
 * and its Nats-Msg-Id header: the largest payload with a JetStream sink.
 */
export const JETSTREAM_MAX_MESSAGE_BYTES = 1 * MiB - 1 * KiB;
/** maxQueueBytes must hold one largest message plus batch overhead. */
const QUEUE_HEADROOM = KiB;

// The default thread count follows the machine but must itself pass validation
// (a 512-core box would otherwise fail with no options at all).
function defaultServiceThreads(): number {
  return Math.min(256, Math.max(1, os.availableParallelism()));
}

export const DEFAULTS: Readonly<ResolvedConfig> = deepFreeze({
  host: '127.0.0.1',
  port: 9000,
  serviceThreads: defaultServiceThreads(),
  protocol: 'v1',
  ackMode: 'written',
  file: {
    enabled: true,
    path: 'messages.log',
    format: 'binary',
    rotateBytes: 0,
    rotateMs: 0,
    fsync: 'interval',
    fsyncIntervalMs: 1000,
    repair: false,
    retention: { maxBytes: 0, maxAgeMs: 0, maxSegments: 0, afterArchive: false },
    minFreeBytes: 64 * MiB,
    dropCache: true,
  },
  batch: { maxMessages: 4096, maxBytes: 1 * MiB, maxDelayMs: 0 },
  limits: {
    maxMessageBytes: 1 * MiB,
    maxConnections: 10_000,
    idleTimeoutMs: 0,
    handshakeTimeoutMs: 10_000,
    frameTimeoutMs: 30_000,
    maxQueueBytes: 64 * MiB,
    maxInflightBytesPerConnection: 8 * MiB,
    maxPartialFrameBytes: 64 * MiB,
  },
  jetstream: null,
  tls: null,
  auth: null,
});

/** Defaults of the tls section's optional fields (the section itself is off by default). */
export const TLS_DEFAULTS: Readonly<Omit<ResolvedTls, 'cert' | 'key'>> = Object.freeze({
  ca: '',
  clientAuth: 'none',
  minVersion: 'TLSv1.2',
  ciphers: '',
  ciphersuites: '',
});

/** Defaults of the auth section's fields (the section itself is off by default). */
export const AUTH_DEFAULTS: Readonly<ResolvedAuth> = Object.freeze({
  tokensFile: '',
  principals: null,
  required: false,
  allowPlaintext: false,
});

/** The largest frame on the wire for a payload limit: length field, MSG header, a 255-byte name. */
const maxFrameBytes = (maxMessageBytes: number): number => maxMessageBytes + 4 + 10 + 255;

/** Defaults of the jetstream section's fields (the section itself is off by default). */
export const JETSTREAM_DEFAULTS: Readonly<Omit<ResolvedJetStream, 'servers'>> = Object.freeze({
  stream: 'msgs',
  subjectPrefix: 'msgs',
  replicas: 1,
  createStream: true,
  ackTimeoutMs: 5000,
  maxPending: 65536,
  retryMs: 15_000,
  whileNotReady: 'hold',
  tls: Object.freeze({ ca: '', cert: '', key: '' }),
  user: '',
  password: '',
  token: '',
  nkey: Object.freeze({ publicKey: '', seedFile: '' }),
  credsFile: '',
});

/** Secret option values are never echoed in a config issue (nor logged). */
const REDACTED = '[redacted]';

function deepFreeze<T extends object>(o: T): T {
  for (const v of Object.values(o)) {
    if (v !== null && typeof v === 'object') deepFreeze(v as object);
  }
  return Object.freeze(o);
}

export interface ConfigIssue {
  /** Dotted option path, e.g. "limits.maxMessageBytes". */
  field: string;
  value: unknown;
  /** What would have been accepted, for the message. */
  allowed: string;
}

export class ConfigError extends Error {
  readonly code = 'ERR_MSGS_CONFIG';
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[], message?: string) {
    super(message ?? `invalid config: ${issues.map(formatIssue).join('; ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

function formatValue(value: unknown): string {
  // inspect quotes strings ('x') and shows undefined/null/objects legibly.
  return inspect(value, { breakLength: Infinity, depth: 2, maxStringLength: 80 });
}

function formatIssue(i: ConfigIssue): string {
  return `${i.field} = ${formatValue(i.value)} (allowed: ${i.allowed})`;
}

// ---- field rules ----------------------------------------------------------

type Rule =
  | { kind: 'int'; min: number; max: number; allowed?: string; accept?: (n: number) => boolean }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'bool' }
  | { kind: 'string' }
  | { kind: 'pattern'; re: RegExp; allowed: string };

const int = (min: number, max: number): Rule => ({ kind: 'int', min, max });
const oneOf = (...values: string[]): Rule => ({ kind: 'enum', values });
const timeout = int(0, MAX_TIMEOUT_MS);

const TOP_RULES: Record<string, Rule> = {
  host: { kind: 'string' },
  port: int(0, 65535),
  serviceThreads: int(1, 256),
  protocol: oneOf('v1', 'legacy'),
  ackMode: oneOf('received', 'written', 'durable', 'replicated'),
};

const RETENTION_RULES: Record<string, Rule> = {
  maxBytes: int(0, MAX_ROTATE_BYTES),
  maxAgeMs: int(0, 100 * 365 * 86_400_000),
  maxSegments: int(0, 1_000_000_000),
  afterArchive: { kind: 'bool' },
};

function resolveRetention(given: unknown, issues: ConfigIssue[]): Required<RetentionOptions> {
  const defaults = DEFAULTS.file.retention as unknown as Record<string, unknown>;
  if (given === undefined) return { ...DEFAULTS.file.retention };
  if (!isPlainObject(given)) {
    issues.push({ field: 'file.retention', value: given, allowed: `object with keys ${Object.keys(RETENTION_RULES).join(', ')}` });
    return { ...DEFAULTS.file.retention };
  }
  const out = resolveFields('file.retention.', given, RETENTION_RULES, defaults, issues);
  reportUnknownKeys('file.retention.', given, Object.keys(RETENTION_RULES), issues);
  return out as unknown as Required<RetentionOptions>;
}

const SECTION_RULES: Record<'file' | 'batch' | 'limits', Record<string, Rule>> = {
  file: {
    enabled: { kind: 'bool' },
    path: { kind: 'string' },
    format: oneOf('binary', 'text'),
    rotateBytes: {
      kind: 'int',
      min: 0,
      max: MAX_ROTATE_BYTES,
      allowed: `0 (off) or integer ${MIN_ROTATE_BYTES}..${MAX_ROTATE_BYTES}`,
      // A rotation size below one page would rotate after nearly every batch.
      accept: (n) => n === 0 || n >= MIN_ROTATE_BYTES,
    },
    rotateMs: int(0, 30 * 86_400_000),
    fsync: oneOf('never', 'interval', 'batch'),
    fsyncIntervalMs: int(1, 3_600_000),
    repair: { kind: 'bool' },
    minFreeBytes: int(0, MAX_ROTATE_BYTES),
    dropCache: { kind: 'bool' },
  },
  batch: {
    maxMessages: int(1, 1_000_000),
    maxBytes: int(4096, 256 * MiB),
    maxDelayMs: int(0, 10_000),
  },
  limits: {
    maxMessageBytes: int(0, 64 * MiB),
    maxConnections: int(1, 1_000_000),
    idleTimeoutMs: timeout,
    handshakeTimeoutMs: timeout,
    frameTimeoutMs: timeout,
    maxQueueBytes: int(1 * MiB, 16 * GiB),
    maxInflightBytesPerConnection: int(1 * KiB, 16 * GiB),
    maxPartialFrameBytes: int(1 * MiB, 64 * GiB),
  },
};

const TLS_RULES: Record<string, Rule> = {
  cert: { kind: 'string' },
  key: { kind: 'string' },
  ca: { kind: 'string' },
  clientAuth: oneOf('none', 'request', 'require'),
  minVersion: oneOf('TLSv1.2', 'TLSv1.3'),
  ciphers: { kind: 'string' },
  ciphersuites: { kind: 'string' },
};

const AUTH_RULES: Record<string, Rule> = {
  tokensFile: { kind: 'string' },
  required: { kind: 'bool' },
  allowPlaintext: { kind: 'bool' },
};

/** A PEM or tokens file the server will read: the issue when it cannot. */
function checkReadable(field: string, file: string, what: string, issues: ConfigIssue[]): void {
  try {
    fs.accessSync(file, fs.constants.R_OK);
    if (!fs.statSync(file).isFile()) throw new Error('not a file');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    issues.push({ field, value: file, allowed: `a readable ${what} file (${why})` });
  }
}

function resolveTls(given: unknown, issues: ConfigIssue[]): ResolvedTls | null {
  if (given === undefined || given === null) return null;
  if (!isPlainObject(given)) {
    issues.push({ field: 'tls', value: given, allowed: `null or an object with keys ${Object.keys(TLS_RULES).join(', ')}` });
    return null;
  }
  const defaults = { ...TLS_DEFAULTS, cert: '', key: '' } as unknown as Record<string, unknown>;
  const before = issues.length;
  const out = resolveFields('tls.', given, TLS_RULES, defaults, issues) as unknown as ResolvedTls;
  reportUnknownKeys('tls.', given, Object.keys(TLS_RULES), issues);
  for (const key of ['cert', 'key'] as const) {
    if (given[key] === undefined) issues.push({ field: `tls.${key}`, value: undefined, allowed: 'a PEM file path (required with tls)' });
  }
  const failed = new Set(issues.slice(before).map((i) => i.field));
  if (out.cert && !failed.has('tls.cert')) checkReadable('tls.cert', out.cert, 'PEM certificate', issues);
  if (out.key && !failed.has('tls.key')) checkReadable('tls.key', out.key, 'PEM private key', issues);
  if (out.ca && !failed.has('tls.ca')) checkReadable('tls.ca', out.ca, 'PEM CA certificate', issues);
  if (out.clientAuth !== 'none' && !out.ca && !failed.has('tls.clientAuth')) {
    issues.push({ field: 'tls.clientAuth', value: out.clientAuth, allowed: "'none' unless tls.ca is set (client certificates are verified against it)" });
  }
  return out;
}

const MAX_CLIENT_ID = 0xffffffff;

/** [[from, to], ...] with 0 <= from <= to <= 2^32-1; null when not. */
function clientIdRanges(v: unknown): ClientIdRanges | null {
  if (!Array.isArray(v)) return null;
  const ok = v.every(
    (r) => Array.isArray(r) && r.length === 2 && r.every((n) => Number.isInteger(n) && n >= 0 && n <= MAX_CLIENT_ID) && r[0] <= r[1],
  );
  return ok ? (v.map((r: number[]) => [r[0], r[1]]) as ClientIdRanges) : null;
}

export const CLIENT_ID_RANGES_ALLOWED = 'an array of [from, to] client-id ranges (integers, 0 <= from <= to <= 4294967295)';

function resolveAuth(given: unknown, issues: ConfigIssue[]): ResolvedAuth | null {
  if (given === undefined || given === null) return null;
  const keys = [...Object.keys(AUTH_RULES), 'principals'];
  if (!isPlainObject(given)) {
    issues.push({ field: 'auth', value: given, allowed: `null or an object with keys ${keys.join(', ')}` });
    return null;
  }
  const before = issues.length;
  const out = resolveFields('auth.', given, AUTH_RULES, AUTH_DEFAULTS as unknown as Record<string, unknown>, issues) as unknown as ResolvedAuth;
  reportUnknownKeys('auth.', given, keys, issues);
  out.principals = null;
  if (given.principals !== undefined) {
    if (!isPlainObject(given.principals)) {
      issues.push({ field: 'auth.principals', value: given.principals, allowed: 'an object: certificate name (subject CN) -> [[from, to], ...]' });
    } else {
      const map: Record<string, ClientIdRanges> = {};
      for (const [name, ranges] of Object.entries(given.principals)) {
        const r = clientIdRanges(ranges);
        if (r === null) issues.push({ field: `auth.principals.${name}`, value: ranges, allowed: CLIENT_ID_RANGES_ALLOWED });
        else map[name] = r;
      }
      out.principals = map;
    }
  }
  const failed = new Set(issues.slice(before).map((i) => i.field));
  if (out.tokensFile && !failed.has('auth.tokensFile')) checkReadable('auth.tokensFile', out.tokensFile, 'JSON tokens', issues);
  return out;
}

// NATS names: a stream name has no '.', '*', '>', whitespace or path separators;
// a subject prefix is dot-separated tokens of the same characters (no wildcards).
const NAME_TOKEN = '[A-Za-z0-9_-]+';
const JETSTREAM_RULES: Record<string, Rule> = {
  stream: { kind: 'pattern', re: new RegExp(`^${NAME_TOKEN}$`), allowed: 'a stream name of letters, digits, _ and -' },
  subjectPrefix: {
    kind: 'pattern',
    re: new RegExp(`^(?![$])(?!_INBOX)${NAME_TOKEN}(\\.${NAME_TOKEN})*$`),
    allowed: "dot-separated tokens of letters, digits, _ and - (no wildcards, not starting with '$' or '_INBOX')",
  },
  replicas: int(1, 5),
  createStream: { kind: 'bool' },
  ackTimeoutMs: int(100, 600_000),
  maxPending: int(1, 1_000_000),
  retryMs: int(0, 300_000),
  whileNotReady: oneOf('hold', 'refuse'),
  user: { kind: 'string' },
  credsFile: { kind: 'string' },
};
// Resolved by hand: nested (tls, nkey) or secret (password, token).
const JETSTREAM_OWN_KEYS = ['servers', 'tls', 'password', 'token', 'nkey'];

function resolveNatsSecurity(given: Record<string, unknown>, out: ResolvedJetStream, issues: ConfigIssue[]): void {
  for (const key of ['password', 'token'] as const) {
    const v = given[key];
    if (v === undefined) continue;
    if (typeof v === 'string') out[key] = v;
    else issues.push({ field: `jetstream.${key}`, value: REDACTED, allowed: 'a string' });
  }
  const files = (field: string, v: unknown, keys: string[], required: string[]): Record<string, string> | null => {
    if (v === undefined || v === null) return null;
    const ok =
      isPlainObject(v) &&
      Object.keys(v).every((k) => keys.includes(k)) &&
      Object.values(v).every((x) => typeof x === 'string') &&
      required.every((k) => typeof v[k] === 'string' && v[k] !== '');
    if (!ok) {
      issues.push({ field, value: v, allowed: `null or an object { ${keys.join(', ')} } of strings (${required.join(', ') || 'none'} required)` });
      return null;
    }
    return v as Record<string, string>;
  };
  const tls = files('jetstream.tls', given.tls, ['ca', 'cert', 'key'], []);
  if (tls) {
    out.tls = { ca: tls.ca ?? '', cert: tls.cert ?? '', key: tls.key ?? '' };
    if ((out.tls.cert === '') !== (out.tls.key === '')) {
      issues.push({ field: 'jetstream.tls', value: given.tls, allowed: 'cert and key together (a client certificate needs its key), or neither' });
    }
  }
  const nkey = files('jetstream.nkey', given.nkey, ['publicKey', 'seedFile'], ['publicKey', 'seedFile']);
  if (nkey) out.nkey = { publicKey: nkey.publicKey, seedFile: nkey.seedFile };
  if (out.password !== '' && out.user === '') {
    issues.push({ field: 'jetstream.password', value: REDACTED, allowed: 'only with jetstream.user' });
  }
  const kinds = [out.user !== '' && 'user', out.token !== '' && 'token', out.nkey.seedFile !== '' && 'nkey', out.credsFile !== '' && 'credsFile'].filter(Boolean);
  if (kinds.length > 1) {
    issues.push({ field: 'jetstream', value: kinds.join(', '), allowed: 'at most one kind of credentials: user (+ password), token, nkey or credsFile' });
  }
}

/** 'nats://host:port' (or 'host:port'); returns the normalised URL or null. */
function natsUrl(raw: string): string | null {
  const t = raw.trim();
  if (t === '') return null;
  let u: URL;
  try {
    u = new URL(t.includes('://') ? t : `nats://${t}`);
  } catch {
    return null;
  }
  if ((u.protocol !== 'nats:' && u.protocol !== 'tls:') || u.hostname === '' || u.pathname.replace(/^\/$/, '') !== '' || u.search || u.hash) return null;
  return `${u.protocol}//${u.username ? `${u.username}${u.password ? `:${u.password}` : ''}@` : ''}${u.host}`;
}

function resolveJetStream(given: unknown, issues: ConfigIssue[]): ResolvedJetStream | null {
  if (given === undefined || given === null) return null;
  const rules = ['servers', ...Object.keys(JETSTREAM_RULES), ...JETSTREAM_OWN_KEYS.slice(1)];
  if (!isPlainObject(given)) {
    issues.push({ field: 'jetstream', value: given, allowed: `null or an object with keys ${rules.join(', ')}` });
    return null;
  }
  const defaults = JETSTREAM_DEFAULTS as unknown as Record<string, unknown>;
  const out = {
    ...resolveFields('jetstream.', given, JETSTREAM_RULES, defaults, issues),
    tls: { ...JETSTREAM_DEFAULTS.tls },
    password: '',
    token: '',
    nkey: { ...JETSTREAM_DEFAULTS.nkey },
    servers: [],
  } as unknown as ResolvedJetStream;
  resolveNatsSecurity(given, out, issues);
  reportUnknownKeys('jetstream.', given, rules, issues);
  const raw = given.servers;
  const list = typeof raw === 'string' ? raw.split(',') : Array.isArray(raw) ? raw : null;
  const servers = list?.map((s) => (typeof s === 'string' ? natsUrl(s) : null)) ?? [];
  if (list === null || list.length === 0 || servers.some((s) => s === null)) {
    issues.push({
      field: 'jetstream.servers',
      value: raw,
      allowed: "one or more NATS URLs 'nats://host:port' or 'tls://host:port' (an array or a comma-separated string)",
    });
  }
  return { ...out, servers: servers.filter((s): s is string => s !== null) };
}

function describeRule(rule: Rule): string {
  switch (rule.kind) {
    case 'int':
      return rule.allowed ?? `integer ${rule.min}..${rule.max}`;
    case 'enum':
      return `one of ${rule.values.map((v) => `'${v}'`).join(', ')}`;
    case 'bool':
      return 'true or false';
    case 'string':
      return 'non-empty string';
    case 'pattern':
      return rule.allowed;
  }
}

function satisfies(rule: Rule, v: unknown): boolean {
  switch (rule.kind) {
    case 'int':
      return (
        typeof v === 'number' &&
        Number.isInteger(v) &&
        v >= rule.min &&
        v <= rule.max &&
        (rule.accept === undefined || rule.accept(v))
      );
    case 'enum':
      return typeof v === 'string' && rule.values.includes(v);
    case 'bool':
      return typeof v === 'boolean';
    case 'string':
      return typeof v === 'string' && v.length > 0;
    case 'pattern':
      return typeof v === 'string' && rule.re.test(v);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Fills `out` from `given` (falling back to `defaults`) for every field of
 * `rules`; a field explicitly set to undefined counts as not given.
 */
function resolveFields(
  prefix: string,
  given: Record<string, unknown>,
  rules: Record<string, Rule>,
  defaults: Record<string, unknown>,
  issues: ConfigIssue[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, rule] of Object.entries(rules)) {
    const v = given[key];
    if (v === undefined) {
      out[key] = defaults[key];
    } else if (satisfies(rule, v)) {
      out[key] = v;
    } else {
      issues.push({ field: prefix + key, value: v, allowed: describeRule(rule) });
      out[key] = defaults[key];
    }
  }
  return out;
}

function reportUnknownKeys(
  prefix: string,
  given: Record<string, unknown>,
  known: string[],
  issues: ConfigIssue[],
): void {
  for (const key of Object.keys(given)) {
    if (!known.includes(key)) {
      issues.push({ field: prefix + key, value: given[key], allowed: `no such option (known: ${known.join(', ')})` });
    }
  }
}

function resolveSection(
  name: keyof typeof SECTION_RULES,
  given: unknown,
  issues: ConfigIssue[],
): Record<string, unknown> {
  const rules = SECTION_RULES[name];
  const defaults = DEFAULTS[name] as unknown as Record<string, unknown>;
  if (given === undefined) return { ...defaults };
  if (!isPlainObject(given)) {
    issues.push({ field: name, value: given, allowed: `object with keys ${Object.keys(rules).join(', ')}` });
    return { ...defaults };
  }
  const out = resolveFields(`${name}.`, given, rules, defaults, issues);
  reportUnknownKeys(`${name}.`, given, [...Object.keys(rules), ...(name === 'file' ? ['retention'] : [])], issues);
  return out;
}

/**
 * Checks that need two fields; only run when both fields are valid alone.
 * maxQueueBytes must fit one largest message: when the user left it unset we
 * raise the default instead of failing (asking for 64 MiB messages should not
 * also require a queue flag); when they set it too small, that is an issue.
 */
function crossCheck(cfg: ResolvedConfig, queueGiven: boolean, issues: ConfigIssue[]): void {
  const failed = new Set(issues.map((i) => i.field));
  const rotating = cfg.file.rotateBytes > 0 || cfg.file.rotateMs > 0;
  const retention = cfg.file.retention;
  if (!rotating && !failed.has('file.rotateBytes') && !failed.has('file.rotateMs')) {
    // Retention deletes closed segments: a single log file has none.
    for (const key of ['maxBytes', 'maxAgeMs', 'maxSegments', 'afterArchive'] as const) {
      if (retention[key] && !failed.has(`file.retention.${key}`)) {
        issues.push({
          field: `file.retention.${key}`,
          value: retention[key],
          allowed: `${key === 'afterArchive' ? 'false' : '0 (off)'} unless file.rotateBytes or file.rotateMs is set (retention deletes rotated segments)`,
        });
      }
    }
  }
  if (rotating && cfg.file.format === 'text' && !failed.has('file.format')) {
    // Text lines carry no sequence number to name or order segments by.
    issues.push({ field: 'file.format', value: 'text', allowed: "'binary' when file.rotateBytes or file.rotateMs is set" });
  }
  checkSinks(cfg, failed, issues);
  if (failed.has('limits.maxQueueBytes') || failed.has('limits.maxMessageBytes')) return;
  const min = cfg.limits.maxMessageBytes + QUEUE_HEADROOM;
  if (cfg.limits.maxQueueBytes >= min) return;
  if (!queueGiven) {
    cfg.limits.maxQueueBytes = min;
    return;
  }
  issues.push({
    field: 'limits.maxQueueBytes',
    value: cfg.limits.maxQueueBytes,
    allowed: `integer >= limits.maxMessageBytes + 1024 = ${min}`,
  });
}

/** Which sinks an ACK mode needs, and what a JetStream sink can carry. */
function checkSinks(cfg: ResolvedConfig, failed: Set<string>, issues: ConfigIssue[]): void {
  const js = cfg.jetstream !== null || failed.has('jetstream') || failed.has('jetstream.servers');
  if (cfg.ackMode === 'replicated' && !js) {
    issues.push({ field: 'ackMode', value: 'replicated', allowed: "'replicated' only with a jetstream section (jetstream.servers)" });
  }
  if (!cfg.file.enabled && !js) {
    issues.push({ field: 'file.enabled', value: false, allowed: 'false only with a jetstream section (some sink must store the messages)' });
  }
  if (!cfg.file.enabled && cfg.ackMode === 'durable') {
    issues.push({ field: 'ackMode', value: 'durable', allowed: "'durable' only with file.enabled (it promises an fsynced file)" });
  }
}

/**
 * The partial-frame budget must hold one largest frame (raised when not
 * given); tokens need TLS unless plaintext is allowed on purpose; the legacy
 * protocol has neither TLS nor AUTH.
 */
function checkSecurity(cfg: ResolvedConfig, partialGiven: boolean, issues: ConfigIssue[]): void {
  const failed = new Set(issues.map((i) => i.field));
  if (!failed.has('limits.maxMessageBytes') && !failed.has('limits.maxPartialFrameBytes')) {
    const min = maxFrameBytes(cfg.limits.maxMessageBytes);
    if (cfg.limits.maxPartialFrameBytes < min) {
      if (!partialGiven) cfg.limits.maxPartialFrameBytes = min;
      else issues.push({ field: 'limits.maxPartialFrameBytes', value: cfg.limits.maxPartialFrameBytes, allowed: `integer >= limits.maxMessageBytes + 269 = ${min} (one largest frame)` });
    }
  }
  if (cfg.protocol === 'legacy' && !failed.has('protocol')) {
    if (cfg.tls) issues.push({ field: 'tls', value: '(set)', allowed: "null with protocol 'legacy' (its clients cannot speak TLS: put a TLS terminator in front, see docs/security.md)" });
    if (cfg.auth) issues.push({ field: 'auth', value: '(set)', allowed: "null with protocol 'legacy' (its frames carry no credentials)" });
  }
  if (cfg.auth && cfg.auth.tokensFile && !cfg.tls && !cfg.auth.allowPlaintext && !failed.has('auth.tokensFile')) {
    issues.push({
      field: 'auth.tokensFile',
      value: cfg.auth.tokensFile,
      allowed: 'a tokens file only with tls set, or with auth.allowPlaintext: true (tokens would cross the network in clear text)',
    });
  }
}

/**
 * With a JetStream sink, a record must fit NATS's max_payload: the largest
 * message defaults to JETSTREAM_MAX_MESSAGE_BYTES, and a larger one set by
 * the user is an issue (it could never be published).
 */
function checkJetStreamSize(cfg: ResolvedConfig, given: boolean, issues: ConfigIssue[]): void {
  if (cfg.jetstream === null || cfg.limits.maxMessageBytes <= JETSTREAM_MAX_MESSAGE_BYTES) return;
  if (!given) {
    cfg.limits.maxMessageBytes = JETSTREAM_MAX_MESSAGE_BYTES;
    return;
  }
  issues.push({
    field: 'limits.maxMessageBytes',
    value: cfg.limits.maxMessageBytes,
    allowed: `integer 0..${JETSTREAM_MAX_MESSAGE_BYTES} with jetstream (a record must fit NATS's 1 MiB max_payload)`,
  });
}

/**
 * Validates `opts` and fills in defaults. Throws one ConfigError listing every
 * problem (bad type, non-integer, out of range, unknown enum value, unknown key).
 */
export function resolveConfig(opts: ServerOptions = {}): ResolvedConfig {
  const issues: ConfigIssue[] = [];
  if (!isPlainObject(opts)) {
    throw new ConfigError([{ field: '(options)', value: opts, allowed: 'an object' }]);
  }
  const given = opts as Record<string, unknown>;
  const defaults = DEFAULTS as unknown as Record<string, unknown>;
  const top = resolveFields('', given, TOP_RULES, defaults, issues);
  reportUnknownKeys('', given, [...Object.keys(TOP_RULES), ...Object.keys(SECTION_RULES), 'jetstream', 'tls', 'auth'], issues);

  const cfg = {
    ...top,
    file: {
      ...resolveSection('file', given.file, issues),
      retention: resolveRetention(isPlainObject(given.file) ? given.file.retention : undefined, issues),
    },
    batch: resolveSection('batch', given.batch, issues),
    limits: resolveSection('limits', given.limits, issues),
    jetstream: resolveJetStream(given.jetstream, issues),
    tls: resolveTls(given.tls, issues),
    auth: resolveAuth(given.auth, issues),
  } as unknown as ResolvedConfig;
  const queueGiven = isPlainObject(given.limits) && given.limits.maxQueueBytes !== undefined;
  const sizeGiven = isPlainObject(given.limits) && given.limits.maxMessageBytes !== undefined;
  const partialGiven = isPlainObject(given.limits) && given.limits.maxPartialFrameBytes !== undefined;
  if (!issues.some((i) => i.field === 'limits.maxMessageBytes')) checkJetStreamSize(cfg, sizeGiven, issues);
  crossCheck(cfg, queueGiven, issues);
  checkSecurity(cfg, partialGiven, issues);
  if (issues.length > 0) throw new ConfigError(issues);
  return cfg;
}

/**
 * Parses the text of a JSON config file into ServerOptions (not yet validated:
 * pass the result, maybe merged with flags, to resolveConfig). Errors name
 * `source`, the file the text came from.
 */
export function configFromJson(text: string, source: string): ServerOptions {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new ConfigError(
      [{ field: '(file)', value: source, allowed: 'valid JSON' }],
      `invalid config file ${source}: ${why}`,
    );
  }
  if (!isPlainObject(parsed)) {
    const got = Array.isArray(parsed) ? 'an array' : formatValue(parsed);
    throw new ConfigError(
      [{ field: '(file)', value: parsed, allowed: 'a JSON object' }],
      `invalid config file ${source}: expected a JSON object of options, got ${got}`,
    );
  }
  return parsed as ServerOptions;
}

/** What an original-server `app.conf` holds, mapped onto our options. */
export interface AppConf {
  options: ServerOptions;
  /** TIME_INTERVAL_BTN_MSG: the original client's pause between messages, in seconds (its sleep()). */
  timeIntervalSeconds: number | undefined;
}

const APP_CONF_KEYS = ['IP', 'PORT', 'FILE_NAME', 'MSG_PER_WRITE', 'TIME_INTERVAL_BTN_MSG'] as const;

/**
 * Parses the original server's `app.conf` (KEY=VALUE lines). It means what it
 * meant to the original: the legacy protocol and the text file format, on
 * IP:PORT, writing FILE_NAME, MSG_PER_WRITE messages per write. Unknown keys
 * and bad values are reported with their line, all at once.
 */
export function parseAppConf(text: string, source: string): AppConf {
  const issues: ConfigIssue[] = [];
  const options: ServerOptions = { protocol: 'legacy', file: { format: 'text' } };
  let timeIntervalSeconds: number | undefined;
  const integer = (key: string, line: number, raw: string, min: number, max: number): number | undefined => {
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (Number.isSafeInteger(n) && n >= min && n <= max) return n;
    issues.push({ field: `${key} (${source} line ${line})`, value: raw, allowed: `integer ${min}..${max}` });
    return undefined;
  };
  text.split(/\r?\n/).forEach((rawLine, i) => {
    const line = i + 1;
    const trimmed = rawLine.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const eq = trimmed.indexOf('=');
    if (eq < 0) {
      issues.push({ field: `(${source} line ${line})`, value: trimmed, allowed: 'KEY=VALUE' });
      return;
    }
    const key = trimmed.slice(0, eq).trim();
    const value = trimmed.slice(eq + 1).trim();
    switch (key) {
      case 'IP':
        if (value === '') issues.push({ field: `IP (${source} line ${line})`, value, allowed: 'a host name or address' });
        else options.host = value;
        break;
      case 'PORT':
        options.port = integer(key, line, value, 0, 65535) ?? options.port;
        break;
      case 'FILE_NAME':
        if (value === '') issues.push({ field: `FILE_NAME (${source} line ${line})`, value, allowed: 'a file path' });
        else options.file!.path = value;
        break;
      case 'MSG_PER_WRITE': {
        const n = integer(key, line, value, 1, 1_000_000);
        if (n !== undefined) options.batch = { maxMessages: n };
        break;
      }
      case 'TIME_INTERVAL_BTN_MSG':
        timeIntervalSeconds = integer(key, line, value, 0, MAX_TIMEOUT_MS / 1000) ?? timeIntervalSeconds;
        break;
      default:
        issues.push({ field: `${key} (${source} line ${line})`, value, allowed: `one of the keys ${APP_CONF_KEYS.join(', ')}` });
    }
  });
  if (issues.length > 0) throw new ConfigError(issues, `invalid ${source}: ${issues.map(formatIssue).join('; ')}`);
  return { options, timeIntervalSeconds };
}

/** True when a config file's text is an `app.conf` rather than JSON. */
export function isAppConf(text: string, source: string): boolean {
  return source.endsWith('.conf') || !/^\s*[{[]/.test(text);
}

/** Reads a config file of either kind: JSON options or an original `app.conf`. */
export function configFromFile(text: string, source: string): ServerOptions {
  return isAppConf(text, source) ? parseAppConf(text, source).options : configFromJson(text, source);
}

// ---- environment overrides ----------------------------------------------------

/** One environment variable that sets one option (the CLI builds the list from its flags). */
export interface EnvVar {
  /** Variable name, e.g. "MSGSERVER_PORT". */
  name: string;
  /** Option path: a top-level key, or the keys down to it ([section, key], ['file', 'retention', 'maxBytes']), as in ServerOptions. */
  path: string | readonly string[];
  kind: 'string' | 'number' | 'boolean';
}

export interface EnvOptions {
  /** The options the environment sets (not yet validated). */
  options: ServerOptions;
  /** Dotted option path -> the variable that set it, e.g. {"port": "MSGSERVER_PORT"}. */
  sources: Record<string, string>;
}

/**
 * Reads the variables of `vars` that are set (and not empty) in `env` into
 * ServerOptions. Values are only coerced, not validated: a number that looks
 * like one becomes a number, "true"/"1"/"false"/"0" a boolean, and anything
 * else is kept as the string so resolveConfig reports it by field like a bad
 * flag or file value. Pass `sources` to withEnvSources() to name the variable
 * in that report.
 */
export function serverOptionsFromEnv(env: NodeJS.ProcessEnv, vars: readonly EnvVar[]): EnvOptions {
  const options: Record<string, unknown> = {};
  const sources: Record<string, string> = {};
  for (const v of vars) {
    const raw = env[v.name];
    if (raw === undefined || raw === '') continue;
    let value: unknown = raw;
    if (v.kind === 'number') {
      const t = raw.trim();
      const n = Number(t);
      value = t !== '' && Number.isFinite(n) ? n : raw;
    } else if (v.kind === 'boolean') {
      const t = raw.trim().toLowerCase();
      value = t === 'true' || t === '1' ? true : t === 'false' || t === '0' ? false : raw;
    }
    const keys = typeof v.path === 'string' ? [v.path] : v.path;
    setPath(options, keys, value);
    sources[keys.join('.')] = v.name;
  }
  return { options: options as ServerOptions, sources };
}

/** Sets target[keys[0]][keys[1]]... = value, making the objects on the way. */
export function setPath(target: Record<string, unknown>, keys: readonly string[], value: unknown): void {
  let at = target;
  for (const k of keys.slice(0, -1)) at = (at[k] ??= {}) as Record<string, unknown>;
  at[keys[keys.length - 1]] = value;
}

/**
 * Returns `err` with every issue whose field came from an environment variable
 * renamed "field (env VAR)", so the message names both; other errors are
 * returned unchanged. `sources` maps dotted option paths to variable names.
 */
export function withEnvSources(err: unknown, sources: Record<string, string>): unknown {
  if (!(err instanceof ConfigError)) return err;
  let renamed = false;
  const issues = err.issues.map((i) => {
    const name = sources[i.field];
    if (name === undefined) return i;
    renamed = true;
    return { ...i, field: `${i.field} (env ${name})` };
  });
  return renamed ? new ConfigError(issues) : err;
}
