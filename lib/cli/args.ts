// Command-line parsing for the CLIs, kept free of I/O so tests can check the
// flag -> option mapping without spawning processes: the flags of msgserver,
// msgclient and msglog, and the exit codes all four CLIs share (msgbench
// parses its own flags in msgbench.ts). The parser itself (flags.ts) is ours,
// so its messages are too: an unknown flag suggests the closest one, a
// negative number is a value to check, not an "ambiguous" argument.
import { AUTH_DEFAULTS, DEFAULTS, JETSTREAM_DEFAULTS, setPath, TLS_DEFAULTS, type EnvVar, type ServerOptions } from '../server/config';
import { closestFlag, COMMON_FLAGS, parseFlags, parseIntFlag, UsageError, type FlagSpec } from './flags';

export { UsageError } from './flags';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNAVAILABLE = 3;

type Section = 'file' | 'batch' | 'limits' | 'jetstream' | 'tls' | 'auth';
/** 'switch': a boolean that takes a value (--file-enabled false), for options that default to true. */
type FlagKind = 'string' | 'number' | 'boolean' | 'switch';

interface ServerFlag {
  flag: string;
  /** Option path: a top-level key, [section, key], or [section, subsection, key] (file.retention). */
  path: string | [Section, string] | [Section, string, string];
  kind: FlagKind;
  help: string;
}

/** Every server option has exactly one flag; the option path is the contract with server/config.ts. */
export const SERVER_FLAGS: readonly ServerFlag[] = [
  { flag: 'host', path: 'host', kind: 'string', help: 'address to listen on' },
  { flag: 'port', path: 'port', kind: 'number', help: 'TCP port (0 = any free port)' },
  { flag: 'service-threads', path: 'serviceThreads', kind: 'number', help: 'connection threads (1..256)' },
  { flag: 'protocol', path: 'protocol', kind: 'string', help: 'v1 | legacy' },
  { flag: 'ack-mode', path: 'ackMode', kind: 'string', help: 'received | written | durable | replicated' },
  { flag: 'file-enabled', path: ['file', 'enabled'], kind: 'switch', help: 'true | false (false: JetStream is the only sink)' },
  { flag: 'file', path: ['file', 'path'], kind: 'string', help: 'log file path' },
  { flag: 'format', path: ['file', 'format'], kind: 'string', help: 'binary | text' },
  { flag: 'rotate-bytes', path: ['file', 'rotateBytes'], kind: 'number', help: 'rotate at this size (0 = never)' },
  { flag: 'rotate-ms', path: ['file', 'rotateMs'], kind: 'number', help: 'rotate a segment this old (0 = never)' },
  { flag: 'fsync', path: ['file', 'fsync'], kind: 'string', help: 'never | interval | batch' },
  { flag: 'fsync-interval-ms', path: ['file', 'fsyncIntervalMs'], kind: 'number', help: 'fsync period for --fsync interval' },
  { flag: 'repair', path: ['file', 'repair'], kind: 'boolean', help: 'start despite corruption before the tail' },
  { flag: 'min-free-bytes', path: ['file', 'minFreeBytes'], kind: 'number', help: 'stop reading below this much free disk (0 = off)' },
  { flag: 'drop-cache', path: ['file', 'dropCache'], kind: 'switch', help: 'true | false (false: the kernel caches the log like any file)' },
  { flag: 'retention-max-bytes', path: ['file', 'retention', 'maxBytes'], kind: 'number', help: 'delete the oldest segments beyond this many bytes (0 = off)' },
  { flag: 'retention-max-age-ms', path: ['file', 'retention', 'maxAgeMs'], kind: 'number', help: 'delete segments closed longer ago than this (0 = off)' },
  { flag: 'retention-max-segments', path: ['file', 'retention', 'maxSegments'], kind: 'number', help: 'keep at most this many segments (0 = off)' },
  { flag: 'retention-after-archive', path: ['file', 'retention', 'afterArchive'], kind: 'boolean', help: 'delete a segment only after its onSegmentClosed hooks resolved' },
  { flag: 'batch-max-messages', path: ['batch', 'maxMessages'], kind: 'number', help: 'messages per write' },
  { flag: 'batch-max-bytes', path: ['batch', 'maxBytes'], kind: 'number', help: 'bytes per write' },
  { flag: 'batch-max-delay-ms', path: ['batch', 'maxDelayMs'], kind: 'number', help: 'wait this long to fill a batch' },
  { flag: 'max-message-bytes', path: ['limits', 'maxMessageBytes'], kind: 'number', help: 'largest payload' },
  { flag: 'max-connections', path: ['limits', 'maxConnections'], kind: 'number', help: 'more get ERR BUSY' },
  { flag: 'idle-timeout-ms', path: ['limits', 'idleTimeoutMs'], kind: 'number', help: 'close silent connections (0 = off)' },
  { flag: 'handshake-timeout-ms', path: ['limits', 'handshakeTimeoutMs'], kind: 'number', help: 'time for HELLO (0 = off)' },
  { flag: 'frame-timeout-ms', path: ['limits', 'frameTimeoutMs'], kind: 'number', help: 'time to finish a frame (0 = off)' },
  { flag: 'max-queue-bytes', path: ['limits', 'maxQueueBytes'], kind: 'number', help: 'bytes queued for the writer' },
  { flag: 'max-inflight-bytes-per-connection', path: ['limits', 'maxInflightBytesPerConnection'], kind: 'number', help: 'unACKed bytes a connection may have before it waits' },
  { flag: 'max-partial-frame-bytes', path: ['limits', 'maxPartialFrameBytes'], kind: 'number', help: 'bytes all connections may hold in unfinished frames' },
  { flag: 'tls-cert', path: ['tls', 'cert'], kind: 'string', help: 'TLS: server certificate (PEM file); the port then speaks only TLS' },
  { flag: 'tls-key', path: ['tls', 'key'], kind: 'string', help: 'TLS: its private key (PEM file)' },
  { flag: 'tls-ca', path: ['tls', 'ca'], kind: 'string', help: 'TLS: CA certificates for client certificates (PEM file)' },
  { flag: 'tls-client-auth', path: ['tls', 'clientAuth'], kind: 'string', help: 'TLS client certificates: none | request | require' },
  { flag: 'tls-min-version', path: ['tls', 'minVersion'], kind: 'string', help: 'TLS: TLSv1.2 | TLSv1.3' },
  { flag: 'tls-ciphers', path: ['tls', 'ciphers'], kind: 'string', help: 'TLS 1.2 cipher list (OpenSSL syntax)' },
  { flag: 'tls-ciphersuites', path: ['tls', 'ciphersuites'], kind: 'string', help: 'TLS 1.3 cipher suites (OpenSSL syntax)' },
  { flag: 'auth-tokens-file', path: ['auth', 'tokensFile'], kind: 'string', help: 'tokens file: JSON [{name, sha256, clientIds}] (docs/security.md)' },
  { flag: 'auth-required', path: ['auth', 'required'], kind: 'boolean', help: 'refuse connections without accepted credentials (UNAUTHENTICATED)' },
  { flag: 'auth-allow-plaintext', path: ['auth', 'allowPlaintext'], kind: 'boolean', help: 'accept tokens without TLS (clear text; warned at start)' },
  { flag: 'jetstream', path: ['jetstream', 'servers'], kind: 'string', help: 'publish to JetStream too: nats://host:port[,...]' },
  { flag: 'jetstream-stream', path: ['jetstream', 'stream'], kind: 'string', help: 'JetStream stream name' },
  { flag: 'jetstream-subject-prefix', path: ['jetstream', 'subjectPrefix'], kind: 'string', help: 'subjects are <prefix>.<clientId>' },
  { flag: 'jetstream-replicas', path: ['jetstream', 'replicas'], kind: 'number', help: 'replicas of a stream created here (1..5)' },
  { flag: 'jetstream-create-stream', path: ['jetstream', 'createStream'], kind: 'switch', help: 'create the stream when missing: true | false' },
  { flag: 'jetstream-ack-timeout-ms', path: ['jetstream', 'ackTimeoutMs'], kind: 'number', help: 'a publish unacknowledged this long failed' },
  { flag: 'jetstream-max-pending', path: ['jetstream', 'maxPending'], kind: 'number', help: 'publishes awaiting acknowledgement' },
  { flag: 'jetstream-retry-ms', path: ['jetstream', 'retryMs'], kind: 'number', help: 'replicated: retry a failed publish this long (same Nats-Msg-Id)' },
  { flag: 'jetstream-while-not-ready', path: ['jetstream', 'whileNotReady'], kind: 'string', help: 'until the stream answers: hold | refuse' },
  { flag: 'jetstream-tls-ca', path: ['jetstream', 'tls', 'ca'], kind: 'string', help: 'TLS toward NATS: CA certificates (PEM file)' },
  { flag: 'jetstream-tls-cert', path: ['jetstream', 'tls', 'cert'], kind: 'string', help: 'TLS toward NATS: client certificate (PEM file)' },
  { flag: 'jetstream-tls-key', path: ['jetstream', 'tls', 'key'], kind: 'string', help: 'TLS toward NATS: its key (PEM file)' },
  { flag: 'jetstream-user', path: ['jetstream', 'user'], kind: 'string', help: 'NATS user' },
  { flag: 'jetstream-password', path: ['jetstream', 'password'], kind: 'string', help: 'NATS password (prefer the environment variable)' },
  { flag: 'jetstream-token', path: ['jetstream', 'token'], kind: 'string', help: 'NATS token (prefer the environment variable)' },
  { flag: 'jetstream-nkey-public', path: ['jetstream', 'nkey', 'publicKey'], kind: 'string', help: 'NKey user: its public key' },
  { flag: 'jetstream-nkey-seed-file', path: ['jetstream', 'nkey', 'seedFile'], kind: 'string', help: 'NKey user: the file with its seed' },
  { flag: 'jetstream-creds', path: ['jetstream', 'credsFile'], kind: 'string', help: 'NATS .creds file' },
];

/** 'true'/'1' and 'false'/'0' become booleans; anything else is left for resolveConfig to report. */
function switchOrRaw(raw: string): boolean | string {
  const t = raw.trim().toLowerCase();
  return t === 'true' || t === '1' ? true : t === 'false' || t === '0' ? false : raw;
}

/**
 * Numeric flags become numbers when they look like one; anything else is kept
 * as the string so resolveConfig reports it with the field name and the
 * allowed range (one error format for flags and config files alike).
 */
function numberOrRaw(raw: string): number | string {
  const t = raw.trim();
  if (t === '') return raw;
  const n = Number(t);
  return Number.isFinite(n) ? n : raw;
}

function setOption(opts: ServerOptions, path: ServerFlag['path'], value: unknown): void {
  setPath(opts as Record<string, unknown>, typeof path === 'string' ? [path] : path, value);
}

export interface ServerArgs {
  help: boolean;
  version: boolean;
  /** --config file.json, when given. */
  configPath: string | undefined;
  /** Options from the flags only (not yet merged with the config file or the environment). */
  flags: ServerOptions;
  /** --metrics-port, when given (validated). Absent when not given. */
  metricsPort?: number;
  /** --metrics-host, when given. */
  metricsHost?: string;
  /** --log-level, when given (validated). */
  logLevel?: LogLevel;
  /** --log-format, when given (validated). */
  logFormat?: LogFormat;
}

/** pino's levels; 'silent' logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** 'auto': readable lines when stderr (where the logs go) is a terminal, JSON lines otherwise. */
export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Flags of the msgserver CLI itself (not server options). Each also has an environment variable. */
const CLI_FLAGS = [
  { flag: 'metrics-port', help: 'serve Prometheus metrics on GET /metrics, and /healthz and /readyz, at this port (0 = any free port)', def: 'off' },
  { flag: 'metrics-host', help: 'address for --metrics-port', def: '127.0.0.1' },
  { flag: 'log-level', help: LOG_LEVELS.join(' | '), def: 'info' },
  { flag: 'log-format', help: 'auto | pretty | json (auto: pretty on a terminal, else JSON lines)', def: 'auto' },
] as const;

/** The environment variable for a flag: --fsync-interval-ms -> MSGSERVER_FSYNC_INTERVAL_MS. */
export function envVarFor(flag: string): string {
  return `MSGSERVER_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/** One variable per server flag, generated from SERVER_FLAGS so the two cannot drift. */
export const SERVER_ENV_VARS: readonly EnvVar[] = SERVER_FLAGS.map((f) => ({
  name: envVarFor(f.flag),
  path: f.path,
  kind: f.kind === 'switch' ? 'boolean' : f.kind,
}));

function parseMetricsPort(raw: string, source: string): number {
  const t = raw.trim();
  const n = Number(t);
  if (t === '' || !Number.isInteger(n) || n < 0 || n > 65535) {
    throw new UsageError(`${source} must be an integer 0..65535, got '${raw}'`);
  }
  return n;
}

function parseLogLevel(raw: string, source: string): LogLevel {
  const t = raw.trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(t)) {
    throw new UsageError(`${source} must be one of ${LOG_LEVELS.join(', ')}, got '${raw}'`);
  }
  return t as LogLevel;
}

function parseLogFormat(raw: string, source: string): LogFormat {
  const t = raw.trim().toLowerCase();
  if (!(LOG_FORMATS as readonly string[]).includes(t)) {
    throw new UsageError(`${source} must be one of ${LOG_FORMATS.join(', ')}, got '${raw}'`);
  }
  return t as LogFormat;
}

/** The flags msgserver accepts, for the parser (and its suggestions). */
const SERVER_SPECS: readonly FlagSpec[] = [
  ...COMMON_FLAGS,
  { name: 'config', type: 'string' },
  ...SERVER_FLAGS.map((f): FlagSpec => ({ name: f.flag, type: f.kind === 'boolean' ? 'boolean' : 'string' })),
  ...CLI_FLAGS.map((f): FlagSpec => ({ name: f.flag, type: 'string' })),
];

export function parseServerArgs(argv: readonly string[]): ServerArgs {
  const { values } = parseFlags(argv, SERVER_SPECS, { positionals: false });
  const flags: ServerOptions = {};
  for (const f of SERVER_FLAGS) {
    const v = values[f.flag];
    if (v === undefined) continue;
    setOption(flags, f.path, f.kind === 'number' ? numberOrRaw(v as string) : f.kind === 'switch' ? switchOrRaw(v as string) : v);
  }
  const out: ServerArgs = { help: values.help === true, version: values.version === true, configPath: values.config as string | undefined, flags };
  // Set only when given, so callers can tell "not given" (then the environment applies).
  const metricsPort = values['metrics-port'] as string | undefined;
  if (metricsPort !== undefined) out.metricsPort = parseMetricsPort(metricsPort, '--metrics-port');
  const metricsHost = values['metrics-host'] as string | undefined;
  if (metricsHost !== undefined) {
    if (metricsHost === '') throw new UsageError('--metrics-host must not be empty');
    out.metricsHost = metricsHost;
  }
  const logLevel = values['log-level'] as string | undefined;
  if (logLevel !== undefined) out.logLevel = parseLogLevel(logLevel, '--log-level');
  const logFormat = values['log-format'] as string | undefined;
  if (logFormat !== undefined) out.logFormat = parseLogFormat(logFormat, '--log-format');
  return out;
}

export interface CliSettings {
  /** undefined = no metrics endpoint. */
  metricsPort: number | undefined;
  metricsHost: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
}

/**
 * The CLI's own settings: flag, else MSGSERVER_METRICS_PORT /
 * MSGSERVER_METRICS_HOST / MSGSERVER_LOG_LEVEL / MSGSERVER_LOG_FORMAT
 * (empty = unset), else the default. A bad variable is a UsageError naming it.
 */
export function resolveCliSettings(args: ServerArgs, env: NodeJS.ProcessEnv): CliSettings {
  const fromEnv = (flag: string): [string, string] | undefined => {
    const name = envVarFor(flag);
    const v = env[name];
    return v === undefined || v === '' ? undefined : [v, name];
  };
  const port = fromEnv('metrics-port');
  const host = fromEnv('metrics-host');
  const level = fromEnv('log-level');
  const format = fromEnv('log-format');
  return {
    metricsPort: args.metricsPort ?? (port && parseMetricsPort(port[0], port[1])),
    metricsHost: args.metricsHost ?? host?.[0] ?? '127.0.0.1',
    logLevel: args.logLevel ?? (level ? parseLogLevel(level[0], level[1]) : 'info'),
    logFormat: args.logFormat ?? (format ? parseLogFormat(format[0], format[1]) : 'auto'),
  };
}

/** MSGSERVER_* variables with other uses: the native addon's path (lib/server/native.ts) and libnats's (docs/scale-out.md). */
const OTHER_ENV_VARS = ['MSGSERVER_ADDON', 'MSGSERVER_LIBNATS'];

/** Variables starting MSGSERVER_ that no flag knows: likely typos, worth a warning. */
export function unknownServerEnvVars(env: NodeJS.ProcessEnv): string[] {
  const known = new Set([...SERVER_ENV_VARS.map((v) => v.name), ...CLI_FLAGS.map((f) => envVarFor(f.flag)), ...OTHER_ENV_VARS]);
  return Object.keys(env).filter((k) => k.startsWith('MSGSERVER_') && !known.has(k)).sort();
}

/**
 * `over` wins over `base`, field by field (sections are merged, not
 * replaced): flags over the environment over the config file.
 */
export function mergeServerOptions(base: ServerOptions, over: ServerOptions): ServerOptions {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    const bothObjects = isObject(prev) && isObject(value);
    // Sections merge field by field, and so do their subsections (file.retention).
    out[key] = bothObjects ? mergeServerOptions(prev as ServerOptions, value as ServerOptions) : value;
  }
  return out as ServerOptions;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function defaultFor(path: ServerFlag['path']): unknown {
  if (typeof path !== 'string' && path[0] === 'jetstream') {
    if (path[1] === 'servers') return 'off';
    let at: unknown = JETSTREAM_DEFAULTS;
    for (const k of path.slice(1)) at = (at as Record<string, unknown>)[k];
    return at === '' ? 'none' : at;
  }
  if (typeof path !== 'string' && path[0] === 'tls') {
    const v = path[1] === 'cert' || path[1] === 'key' ? 'off' : (TLS_DEFAULTS as unknown as Record<string, unknown>)[path[1]];
    return v !== '' ? v : path[1] === 'ca' ? 'none' : "OpenSSL's";
  }
  if (typeof path !== 'string' && path[0] === 'auth') {
    const v = (AUTH_DEFAULTS as unknown as Record<string, unknown>)[path[1]];
    return v === '' ? 'off' : v;
  }
  let at: unknown = DEFAULTS;
  for (const k of typeof path === 'string' ? [path] : path) at = (at as Record<string, unknown>)[k];
  return at;
}

export function serverUsage(): string {
  const lines = SERVER_FLAGS.map((f) => {
    const arg = f.kind === 'boolean' ? '' : f.kind === 'number' ? ' <n>' : ' <value>';
    return `  --${(f.flag + arg).padEnd(28)} ${f.help} (default ${String(defaultFor(f.path))})`;
  });
  const cli = CLI_FLAGS.map((f) => `  --${(f.flag + ' <value>').padEnd(28)} ${f.help} (default ${f.def})`);
  return [
    'usage: msgserver [--config file.json|app.conf] [options]',
    '',
    'Runs the message-ingest server until SIGINT/SIGTERM, then closes it cleanly.',
    'SIGHUP re-reads the config (file, environment, flags) and applies what can change',
    'live (limits, timeouts, file.retention, file.minFreeBytes, file.fsyncIntervalMs,',
    '--log-level); other changes are logged as needing a restart. Connections stay open.',
    'In production run this bin directly, not through npx or npm (they do not forward',
    'signals). See docs/operations.md.',
    'Precedence: defaults < config file < environment < flags. Every flag has an',
    'environment variable: --fsync-interval-ms is MSGSERVER_FSYNC_INTERVAL_MS (--repair:',
    'MSGSERVER_REPAIR=true|false); an empty variable counts as unset.',
    'Logs go to stderr: readable lines on a terminal, JSON lines (pino) otherwise or with',
    '--log-format json. The effective config is logged at start.',
    '',
    '  --config <file>                options as JSON {"port": 9000, "file": {"path": "m.log"}, ...},',
    '                                 or an original app.conf (default $MS_HOME/app.conf if it exists)',
    ...lines,
    ...cli,
    '  -h, --help                     show this text',
    '  --version                      print the version',
    '',
    'exit status: 0 clean shutdown, 1 runtime failure, 2 bad flags or config',
  ].join('\n');
}

// ---- msgclient ----------------------------------------------------------------

export interface ClientArgs {
  help: boolean;
  version: boolean;
  host: string;
  port: number;
  clientId: number | undefined;
  name: string;
  window: number;
  /** Positional messages; empty = read lines from stdin. */
  messages: string[];
  /** --legacy: the original client's behaviour and protocol. */
  legacy: boolean;
  /** --config app.conf (legacy mode; else $MS_HOME/app.conf). */
  configPath: string | undefined;
  /** --quiet: print only the messages that failed. */
  quiet: boolean;
  /** --summary: no line per message; counts, rate and latency percentiles at the end. */
  summary: boolean;
  connectTimeoutMs: number;
  /** --tls (also implied by --ca, --cert, --key): connect with TLS. */
  tls: boolean;
  /** PEM files: the CA to trust instead of the system's, the client certificate and its key (mutual TLS). */
  ca: string | undefined;
  cert: string | undefined;
  key: string | undefined;
  /** --servername: the name to check the server's certificate against (default: --host unless an IP). */
  servername: string | undefined;
  /** --token, else $MSGS_TOKEN: authenticate with this token. */
  token: string | undefined;
}

/** The TLS and token flags msgclient and msgbench share (--tls --ca --cert --key --servername --token). */
export const TLS_CLIENT_SPECS: readonly FlagSpec[] = [
  { name: 'tls', type: 'boolean' },
  { name: 'ca', type: 'string' },
  { name: 'cert', type: 'string' },
  { name: 'key', type: 'string' },
  { name: 'servername', type: 'string' },
  { name: 'token', type: 'string' },
];

const CLIENT_SPECS: readonly FlagSpec[] = [
  ...COMMON_FLAGS,
  { name: 'host', type: 'string' },
  { name: 'port', type: 'string' },
  { name: 'client-id', type: 'string' },
  { name: 'name', type: 'string' },
  { name: 'window', type: 'string' },
  { name: 'legacy', type: 'boolean' },
  { name: 'config', type: 'string' },
  { name: 'quiet', short: 'q', type: 'boolean' },
  { name: 'summary', short: 's', type: 'boolean' },
  { name: 'connect-timeout-ms', type: 'string' },
  ...TLS_CLIENT_SPECS,
];

export function parseClientArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ClientArgs {
  const { values, positionals } = parseFlags(argv, CLIENT_SPECS, { positionals: true });
  const s = (k: string): string | undefined => values[k] as string | undefined;
  const help = values.help === true;
  const version = values.version === true;
  const legacy = values.legacy === true;
  if (legacy && !help && !version && positionals.length !== 2) {
    throw new UsageError('msgclient --legacy takes exactly <client_id> <msg1,msg2,...>');
  }
  if (legacy && (values.quiet === true || values.summary === true)) {
    throw new UsageError('--quiet and --summary do not apply to --legacy (it prints what the original client printed)');
  }
  const clientId = s('client-id');
  const port = s('port');
  const window = s('window');
  const timeout = s('connect-timeout-ms');
  const [ca, cert, key, servername] = [s('ca'), s('cert'), s('key'), s('servername')];
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--cert and --key go together (the client certificate and its private key)');
  const tls = values.tls === true || ca !== undefined || cert !== undefined || servername !== undefined;
  // An empty MSGS_TOKEN is no token; an empty --token is a mistake.
  const token = s('token') ?? (env.MSGS_TOKEN === '' ? undefined : env.MSGS_TOKEN);
  if (token === '') throw new UsageError('--token must not be empty');
  if (legacy && (tls || token !== undefined)) {
    throw new UsageError('--tls, --ca, --cert, --key, --servername and --token do not apply to --legacy (its protocol has neither)');
  }
  return {
    help,
    version,
    host: s('host') ?? DEFAULTS.host,
    port: port === undefined ? DEFAULTS.port : parseIntFlag('port', port, 1, 65535),
    clientId: clientId === undefined ? undefined : parseIntFlag('client-id', clientId, 0, 0xffffffff),
    name: s('name') ?? '',
    window: window === undefined ? 1024 : parseIntFlag('window', window, 1, 1_000_000),
    messages: positionals,
    legacy,
    configPath: s('config'),
    quiet: values.quiet === true,
    summary: values.summary === true,
    connectTimeoutMs: timeout === undefined ? 10_000 : parseIntFlag('connect-timeout-ms', timeout, 1, 3_600_000),
    tls,
    ca,
    cert,
    key,
    servername,
    token,
  };
}

export function clientUsage(): string {
  return [
    'usage: msgclient [--host h] [--port p] [--client-id n] [--name s] [--window n] [-q | -s]',
    '                 [--tls] [--ca f] [--cert f --key f] [--token t] [msg ...]',
    '       msgclient --legacy [--config app.conf] [--host h] [--port p] <client_id> <msg1,msg2,...>',
    '',
    'Sends each positional argument as one message, or, with none, each line of stdin.',
    'Prints one line per acknowledgement: "ack msg_id=1 status=OK". Messages are numbered',
    'from 1 in the order given. A message starting with "-" goes after "--".',
    '',
    'With --legacy it behaves like the original client: protocol legacy, the comma-separated',
    'messages sent one at a time with msg ids from 1 and name client_<id>, TIME_INTERVAL_BTN_MSG',
    '(seconds, like the original\'s sleep()) between them; IP, PORT and the interval come from',
    '--config or $MS_HOME/app.conf, flags win. Prints each ack with its latency, then the total',
    'and average latency.',
    '',
    `  --host <h>                server address (default ${DEFAULTS.host})`,
    `  --port <p>                server port (default ${DEFAULTS.port})`,
    '  --client-id <n>           u32 client id (default random)',
    '  --name <s>                name stored with every message (default empty)',
    '  --window <n>              messages in flight before waiting for ACKs (default 1024)',
    '  -q, --quiet               print only the messages that failed (on stderr)',
    '  -s, --summary             instead of a line per message: at the end, the counts, the',
    '                            rate and the send-to-ACK latency (p50, p90, p99, max); failed',
    '                            messages are still printed (on stderr). On a terminal, a',
    '                            progress line shows on stderr while a long input is sent.',
    '  --connect-timeout-ms <n>  time allowed to connect and get HELLO_OK (default 10000)',
    '  --tls                     connect with TLS (the system\'s trusted CAs unless --ca)',
    '  --ca <file>               PEM CA certificate(s) to trust for the server (implies --tls)',
    '  --cert <file>             PEM client certificate for mutual TLS, with --key (implies --tls)',
    '  --key <file>              PEM private key of --cert',
    '  --servername <name>       name the server certificate must carry (default: --host unless',
    '                            it is an IP address, which is then checked instead; implies --tls)',
    '  --token <t>               authenticate with this token. Prefer the MSGS_TOKEN environment',
    '                            variable: a flag is visible to other users in the process list',
    '  --legacy                  the original protocol and client behaviour (see above)',
    '  --config <file>           app.conf for --legacy',
    '  -h, --help                show this text',
    '  --version                 print the version',
    '',
    'exit status: 0 all messages OK, 1 some message rejected or lost, 2 bad flags, 3 cannot connect',
  ].join('\n');
}

// ---- msglog -----------------------------------------------------------------

export type LogArgs =
  | { help: true }
  | { help: false; version: true }
  | { help: false; command: 'cat'; file: string; format: 'json' | 'text'; allowTornTail: boolean; fromSeq: bigint | undefined }
  | { help: false; command: 'tail'; file: string; format: 'json' | 'text'; lines: number; follow: boolean; pollMs: number }
  | { help: false; command: 'verify' | 'stats'; file: string }
  | { help: false; command: 'salvage'; file: string; output: string }
  // --jetstream: a NATS JetStream stream instead of a file (fromSeq = the stream sequence).
  | { help: false; command: 'cat'; jetstream: string[]; stream: string; nats: NatsAccess; format: 'json' | 'text'; fromSeq: bigint | undefined; follow: boolean }
  | { help: false; command: 'stats'; jetstream: string[]; stream: string; nats: NatsAccess };

/** How msglog reaches a secured NATS (readStream's tls and credential options); secrets come from the environment. */
export interface NatsAccess {
  tls?: { ca?: string; cert?: string; key?: string };
  user?: string;
  password?: string;
  token?: string;
  nkey?: { seedFile: string; publicKey?: string };
  credsFile?: string;
}

// The server's --jetstream-* names for the same settings; the password and
// the token only from the environment (flags show in the process list).
const NATS_FLAGS = ['jetstream-tls-ca', 'jetstream-tls-cert', 'jetstream-tls-key', 'jetstream-user', 'jetstream-nkey-public',
  'jetstream-nkey-seed-file', 'jetstream-creds'] as const;

function natsAccess(values: Record<string, string | undefined>, env: NodeJS.ProcessEnv): NatsAccess {
  const v = (f: (typeof NATS_FLAGS)[number]): string | undefined => values[f];
  const out: NatsAccess = {};
  if (v('jetstream-tls-ca') || v('jetstream-tls-cert') || v('jetstream-tls-key')) {
    if (!v('jetstream-tls-cert') !== !v('jetstream-tls-key')) throw new UsageError('--jetstream-tls-cert and --jetstream-tls-key go together');
    out.tls = { ca: v('jetstream-tls-ca'), cert: v('jetstream-tls-cert'), key: v('jetstream-tls-key') };
  }
  const password = env.MSGS_JETSTREAM_PASSWORD || undefined;
  const token = env.MSGS_JETSTREAM_TOKEN || undefined;
  if (v('jetstream-user')) out.user = v('jetstream-user');
  if (password) {
    if (!out.user) throw new UsageError('MSGS_JETSTREAM_PASSWORD needs --jetstream-user');
    out.password = password;
  }
  if (token) out.token = token;
  if (v('jetstream-nkey-public') && !v('jetstream-nkey-seed-file')) throw new UsageError('--jetstream-nkey-public needs --jetstream-nkey-seed-file');
  if (v('jetstream-nkey-seed-file')) out.nkey = { seedFile: v('jetstream-nkey-seed-file') as string, publicKey: v('jetstream-nkey-public') };
  if (v('jetstream-creds')) out.credsFile = v('jetstream-creds');
  const kinds = [out.user, out.token, out.nkey, out.credsFile].filter((k) => k !== undefined).length;
  if (kinds > 1) throw new UsageError('give one kind of NATS credentials: --jetstream-user (+ MSGS_JETSTREAM_PASSWORD), MSGS_JETSTREAM_TOKEN, --jetstream-nkey-seed-file or --jetstream-creds');
  return out;
}

const LOG_FLAGS = ['format', 'json', 'allow-torn-tail', 'from-seq', 'lines', 'follow', 'poll-ms', 'jetstream', 'stream', 'output', ...NATS_FLAGS] as const;

const LOG_SPECS: readonly FlagSpec[] = [
  ...COMMON_FLAGS,
  { name: 'format', type: 'string' },
  { name: 'allow-torn-tail', type: 'boolean' },
  { name: 'from-seq', type: 'string' },
  { name: 'lines', short: 'n', type: 'string' },
  { name: 'follow', short: 'f', type: 'boolean' },
  { name: 'poll-ms', type: 'string' },
  { name: 'json', type: 'boolean' },
  { name: 'jetstream', type: 'string' },
  { name: 'stream', type: 'string' },
  { name: 'output', short: 'o', type: 'string' },
  ...NATS_FLAGS.map((name) => ({ name, type: 'string' as const })),
];

const LOG_COMMANDS = ['cat', 'tail', 'verify', 'stats', 'salvage'];

export function parseLogArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): LogArgs {
  const parsed = parseFlags(argv, LOG_SPECS, { positionals: true });
  const values = parsed.values as Record<string, string | undefined> & { help?: boolean; version?: boolean };
  const { positionals } = parsed;
  if (values.help === true) return { help: true };
  if (values.version === true) return { help: false, version: true };
  const [command, file, ...extra] = positionals;
  if (command !== 'cat' && command !== 'verify' && command !== 'tail' && command !== 'stats' && command !== 'salvage') {
    if (command === undefined) throw new UsageError('missing command (cat, tail, verify, stats or salvage)');
    const guess = closestCommand(command);
    throw new UsageError(`unknown command '${command}'${guess ? `; did you mean '${guess}'?` : ' (cat, tail, verify, stats or salvage)'}`);
  }
  const only = (flags: string[], cmd: string): void => {
    const extraFlag = LOG_FLAGS.find((f) => values[f] !== undefined && !flags.includes(f));
    if (extraFlag) throw new UsageError(`--${extraFlag} does not apply to msglog ${cmd}`);
  };
  const formatOf = (): 'json' | 'text' => {
    const format = values.format ?? 'json';
    if (format !== 'json' && format !== 'text') throw new UsageError(`--format must be json or text, got '${format}'`);
    if ((values.json as unknown) === true && format !== 'json') throw new UsageError('--json and --format text contradict each other');
    return format;
  };
  if (values.jetstream !== undefined || values.stream !== undefined) {
    const cmd = `msglog ${command} --jetstream`;
    if (command !== 'cat' && command !== 'stats') throw new UsageError(`--jetstream and --stream apply to msglog cat and stats only, not ${command}`);
    if (file !== undefined) throw new UsageError(`${cmd} reads a stream, not a file: unexpected argument '${file}'`);
    if (values.jetstream === undefined) throw new UsageError('--stream needs --jetstream <url[,url...]> (the NATS servers)');
    if (values.stream === undefined || values.stream === '') throw new UsageError('--jetstream needs --stream <name>');
    const servers = values.jetstream.split(',').map((u) => u.trim());
    if (servers.some((u) => u === '')) throw new UsageError(`--jetstream must be one or more NATS URLs separated by commas, got '${values.jetstream}'`);
    const nats = natsAccess(values, env);
    if (command === 'stats') {
      only(['jetstream', 'stream', ...NATS_FLAGS], cmd);
      return { help: false, command, jetstream: servers, stream: values.stream, nats };
    }
    only(['jetstream', 'stream', 'format', 'json', 'from-seq', 'follow', ...NATS_FLAGS], cmd);
    const rawSeq = values['from-seq'];
    if (rawSeq !== undefined && !(/^\d{1,16}$/.test(rawSeq) && BigInt(rawSeq) >= 1n && BigInt(rawSeq) <= BigInt(Number.MAX_SAFE_INTEGER))) {
      throw new UsageError(`--from-seq must be a stream sequence (1..${Number.MAX_SAFE_INTEGER}), got '${rawSeq}'`);
    }
    return {
      help: false,
      command,
      jetstream: servers,
      stream: values.stream,
      nats,
      format: formatOf(),
      fromSeq: rawSeq === undefined ? undefined : BigInt(rawSeq),
      follow: (values.follow as unknown) === true,
    };
  }
  if (file === undefined) throw new UsageError(`msglog ${command} needs a file or directory (or --jetstream <url> --stream <name>)`);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  if (command === 'verify' || command === 'stats') {
    only([], command);
    return { help: false, command, file };
  }
  if (command === 'salvage') {
    only(['output'], command);
    const output = values.output;
    if (output === undefined || output === '') throw new UsageError('msglog salvage needs -o <new log file> (the salvaged records go to a new file)');
    return { help: false, command, file, output };
  }
  const format = formatOf();
  if (command === 'tail') {
    only(['format', 'json', 'lines', 'follow', 'poll-ms'], command);
    return {
      help: false,
      command,
      file,
      format,
      lines: values.lines === undefined ? 10 : parseIntFlag('lines', values.lines, 0, 1_000_000),
      follow: (values.follow as unknown) === true,
      pollMs: values['poll-ms'] === undefined ? 250 : parseIntFlag('poll-ms', values['poll-ms'], 10, 60_000),
    };
  }
  only(['format', 'json', 'allow-torn-tail', 'from-seq'], command);
  const rawSeq = values['from-seq'];
  if (rawSeq !== undefined && !/^\d{1,20}$/.test(rawSeq)) throw new UsageError(`--from-seq must be a sequence number (digits), got '${rawSeq}'`);
  return {
    help: false,
    command,
    file,
    format,
    allowTornTail: (values['allow-torn-tail'] as unknown) === true,
    fromSeq: rawSeq === undefined ? undefined : BigInt(rawSeq),
  };
}

function closestCommand(command: string): string | undefined {
  return closestFlag(command, LOG_COMMANDS);
}

export function logUsage(): string {
  return [
    'usage: msglog cat <file|dir> [--format json|text] [--allow-torn-tail] [--from-seq N]',
    '       msglog tail <file|dir> [-n N] [-f] [--format json|text] [--poll-ms N]',
    '       msglog verify <file|dir>',
    '       msglog stats <file|dir>',
    '       msglog salvage <file|dir> -o <new.log>',
    '       msglog cat --jetstream <url[,url...]> --stream <name> [--from-seq N] [-f] [--format json|text]',
    '       msglog stats --jetstream <url[,url...]> --stream <name>',
    '         a secured NATS (tls:// URLs): [--jetstream-tls-ca f] [--jetstream-tls-cert f --jetstream-tls-key f]',
    '         and one kind of credentials: --jetstream-user u (password in MSGS_JETSTREAM_PASSWORD),',
    '         MSGS_JETSTREAM_TOKEN, --jetstream-nkey-seed-file f [--jetstream-nkey-public k], --jetstream-creds f',
    '',
    'A directory is a rotated log: its segments (files named like 00000000000000000001.log)',
    'are read in order; a directory without any is an error.',
    'With --jetstream, the records are read from a NATS JetStream stream written by the',
    'JetStream sink (one record per message) instead of a file: --from-seq is then the',
    'stream sequence, json lines also carry "streamSeq" and "subject", and cat stops at',
    'the stream\'s last message as of the start unless -f (follow) is given.',
    '--json is short for --format json.',
    '',
    'cat     prints every record: json = one JSON object per line',
    '        {"seq","time","clientId","msgId","name","payload"[,"payloadBase64"]};',
    '        text = the original server line "<client_id> <msg_id> <name> <message>"',
    '        escaped as file.format text writes it (docs/legacy.md).',
    '        A torn last record is an error unless --allow-torn-tail.',
    '        --from-seq N starts at the record with that sequence number.',
    'tail    prints the last N records (default 10); -f then follows the log as it grows,',
    '        across rotations, until interrupted (SIGINT/SIGTERM, exit 0). It reads only',
    '        new bytes, woken by file-system notifications, with a poll every --poll-ms',
    '        (default 250) as a fallback: idle, it costs next to no CPU.',
    'verify  checks every record (CRC, sequence order) and prints a summary.',
    'stats   counts records, bytes, segments, clients, names, sizes and the time span.',
    'salvage writes every record that verifies to a new log file (-o, --output; it must',
    '        not exist), skipping damaged ranges: each is printed on stderr as',
    '        "skipped <file> at offset N, L bytes: <reason>"; a summary goes to stdout.',
    '        Exit 0 when the new file is written (damage or not).',
    '',
    '  -h, --help     show this text',
    '  --version      print the version',
    '',
    'exit status: 0 ok, 1 corrupt or torn log (or stream message), or a directory without',
    '             segments, 2 bad arguments, 3 cannot read the file (or reach NATS, or no such stream)',
  ].join('\n');
}
