// Command-line parsing for the three CLIs, kept free of I/O so tests can check
// the flag -> option mapping without spawning processes. Parsing uses
// node:util parseArgs: it covers --flag value / --flag=value / booleans, so no
// extra dependency is needed.
import { parseArgs } from 'node:util';
import { DEFAULTS, JETSTREAM_DEFAULTS, type EnvVar, type ServerOptions } from '../config';

/** Bad command line: the CLI prints the message and its usage, exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNAVAILABLE = 3;

type Section = 'file' | 'batch' | 'limits' | 'jetstream';
/** 'switch': a boolean that takes a value (--file-enabled false), for options that default to true. */
type FlagKind = 'string' | 'number' | 'boolean' | 'switch';

interface ServerFlag {
  flag: string;
  /** Option path: a top-level key or [section, key]. */
  path: string | [Section, string];
  kind: FlagKind;
  help: string;
}

/** Every server option has exactly one flag; the option path is the contract with config.ts. */
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
  { flag: 'jetstream', path: ['jetstream', 'servers'], kind: 'string', help: 'publish to JetStream too: nats://host:port[,...]' },
  { flag: 'jetstream-stream', path: ['jetstream', 'stream'], kind: 'string', help: 'JetStream stream name' },
  { flag: 'jetstream-subject-prefix', path: ['jetstream', 'subjectPrefix'], kind: 'string', help: 'subjects are <prefix>.<clientId>' },
  { flag: 'jetstream-replicas', path: ['jetstream', 'replicas'], kind: 'number', help: 'replicas of a stream created here (1..5)' },
  { flag: 'jetstream-create-stream', path: ['jetstream', 'createStream'], kind: 'switch', help: 'create the stream when missing: true | false' },
  { flag: 'jetstream-ack-timeout-ms', path: ['jetstream', 'ackTimeoutMs'], kind: 'number', help: 'a publish unacknowledged this long failed' },
  { flag: 'jetstream-max-pending', path: ['jetstream', 'maxPending'], kind: 'number', help: 'publishes awaiting acknowledgement' },
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
  const target = opts as Record<string, unknown>;
  if (typeof path === 'string') {
    target[path] = value;
    return;
  }
  const [section, key] = path;
  const sub = (target[section] ??= {}) as Record<string, unknown>;
  sub[key] = value;
}

function parseOrUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    // parseArgs throws TypeError with codes like ERR_PARSE_ARGS_UNKNOWN_OPTION.
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

export interface ServerArgs {
  help: boolean;
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
}

/** pino's levels; 'silent' logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Flags of the msgserver CLI itself (not server options). Each also has an environment variable. */
const CLI_FLAGS = [
  { flag: 'metrics-port', help: 'serve Prometheus metrics on GET /metrics at this port (0 = any free port)', def: 'off' },
  { flag: 'metrics-host', help: 'address for --metrics-port', def: '127.0.0.1' },
  { flag: 'log-level', help: LOG_LEVELS.join(' | '), def: 'info' },
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

export function parseServerArgs(argv: readonly string[]): ServerArgs {
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    help: { type: 'boolean' },
    config: { type: 'string' },
  };
  for (const f of SERVER_FLAGS) options[f.flag] = { type: f.kind === 'boolean' ? 'boolean' : 'string' };
  for (const f of CLI_FLAGS) options[f.flag] = { type: 'string' };
  const { values } = parseOrUsage(() => parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }));
  const flags: ServerOptions = {};
  for (const f of SERVER_FLAGS) {
    const v = values[f.flag];
    if (v === undefined) continue;
    setOption(flags, f.path, f.kind === 'number' ? numberOrRaw(v as string) : f.kind === 'switch' ? switchOrRaw(v as string) : v);
  }
  const out: ServerArgs = { help: values.help === true, configPath: values.config as string | undefined, flags };
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
  return out;
}

export interface CliSettings {
  /** undefined = no metrics endpoint. */
  metricsPort: number | undefined;
  metricsHost: string;
  logLevel: LogLevel;
}

/**
 * The CLI's own settings: flag, else MSGSERVER_METRICS_PORT /
 * MSGSERVER_METRICS_HOST / MSGSERVER_LOG_LEVEL (empty = unset), else the
 * default. A bad variable is a UsageError naming it.
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
  return {
    metricsPort: args.metricsPort ?? (port && parseMetricsPort(port[0], port[1])),
    metricsHost: args.metricsHost ?? host?.[0] ?? '127.0.0.1',
    logLevel: args.logLevel ?? (level ? parseLogLevel(level[0], level[1]) : 'info'),
  };
}

/** MSGSERVER_* variables with other uses: the native addon's path (lib/native.ts) and libnats's (docs/scale-out.md). */
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
    out[key] = bothObjects ? { ...prev, ...value } : value;
  }
  return out as ServerOptions;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function defaultFor(path: ServerFlag['path']): unknown {
  if (typeof path !== 'string' && path[0] === 'jetstream') {
    return path[1] === 'servers' ? 'off' : (JETSTREAM_DEFAULTS as unknown as Record<string, unknown>)[path[1]];
  }
  const d = DEFAULTS as unknown as Record<string, Record<string, unknown>>;
  return typeof path === 'string' ? (DEFAULTS as unknown as Record<string, unknown>)[path] : d[path[0]][path[1]];
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
    'Precedence: defaults < config file < environment < flags. Every flag has an',
    'environment variable: --fsync-interval-ms is MSGSERVER_FSYNC_INTERVAL_MS (--repair:',
    'MSGSERVER_REPAIR=true|false); an empty variable counts as unset.',
    'Logs are JSON lines (pino) on stderr; the effective config is logged at start.',
    '',
    '  --config <file>                options as JSON {"port": 9000, "file": {"path": "m.log"}, ...},',
    '                                 or an original app.conf (default $MS_HOME/app.conf if it exists)',
    ...lines,
    ...cli,
    '  --help                         show this text',
    '',
    'exit status: 0 clean shutdown, 1 runtime failure, 2 bad flags or config',
  ].join('\n');
}

// ---- msgclient ----------------------------------------------------------------

export interface ClientArgs {
  help: boolean;
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
}

function parseInteger(flag: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${flag} must be an integer ${min}..${max}, got '${raw}'`);
  }
  return n;
}

export function parseClientArgs(argv: readonly string[]): ClientArgs {
  const { values, positionals } = parseOrUsage(() =>
    parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        help: { type: 'boolean' },
        host: { type: 'string' },
        port: { type: 'string' },
        'client-id': { type: 'string' },
        name: { type: 'string' },
        window: { type: 'string' },
        legacy: { type: 'boolean' },
        config: { type: 'string' },
      },
    }),
  );
  const clientId = values['client-id'];
  const legacy = values.legacy === true;
  if (legacy && values.help !== true && positionals.length !== 2) {
    throw new UsageError('msgclient --legacy takes exactly <client_id> <msg1,msg2,...>');
  }
  return {
    help: values.help === true,
    host: values.host ?? DEFAULTS.host,
    port: values.port === undefined ? DEFAULTS.port : parseInteger('port', values.port, 1, 65535),
    clientId: clientId === undefined ? undefined : parseInteger('client-id', clientId, 0, 0xffffffff),
    name: values.name ?? '',
    window: values.window === undefined ? 1024 : parseInteger('window', values.window, 1, 1_000_000),
    messages: positionals,
    legacy,
    configPath: values.config,
  };
}

export function clientUsage(): string {
  return [
    'usage: msgclient [--host h] [--port p] [--client-id n] [--name s] [--window n] [msg ...]',
    '       msgclient --legacy [--config app.conf] [--host h] [--port p] <client_id> <msg1,msg2,...>',
    '',
    'Sends each positional argument as one message, or, with none, each line of stdin.',
    'Prints one line per acknowledgement: "ack msg_id=1 status=OK".',
    '',
    'With --legacy it behaves like the original client: protocol legacy, the comma-separated',
    'messages sent one at a time with msg ids from 1 and name client_<id>, TIME_INTERVAL_BTN_MSG',
    '(milliseconds) between them; IP, PORT and the interval come from --config or $MS_HOME/app.conf,',
    'flags win. Prints each ack with its latency, then the total and average latency.',
    '',
    `  --host <h>        server address (default ${DEFAULTS.host})`,
    `  --port <p>        server port (default ${DEFAULTS.port})`,
    '  --client-id <n>   u32 client id (default random)',
    '  --name <s>        name stored with every message (default empty)',
    '  --window <n>      messages in flight before waiting for ACKs (default 1024)',
    '  --legacy          the original protocol and client behaviour (see above)',
    '  --config <file>   app.conf for --legacy',
    '  --help            show this text',
    '',
    'exit status: 0 all messages OK, 1 some message rejected or lost, 2 bad flags, 3 cannot connect',
  ].join('\n');
}

// ---- msglog -----------------------------------------------------------------

export type LogArgs =
  | { help: true }
  | { help: false; command: 'cat'; file: string; format: 'json' | 'text'; allowTornTail: boolean; fromSeq: bigint | undefined }
  | { help: false; command: 'tail'; file: string; format: 'json' | 'text'; lines: number; follow: boolean; pollMs: number }
  | { help: false; command: 'verify' | 'stats'; file: string }
  // --jetstream: a NATS JetStream stream instead of a file (fromSeq = the stream sequence).
  | { help: false; command: 'cat'; jetstream: string[]; stream: string; format: 'json' | 'text'; fromSeq: bigint | undefined; follow: boolean }
  | { help: false; command: 'stats'; jetstream: string[]; stream: string };

const LOG_FLAGS = ['format', 'json', 'allow-torn-tail', 'from-seq', 'lines', 'follow', 'poll-ms', 'jetstream', 'stream'] as const;

export function parseLogArgs(argv: readonly string[]): LogArgs {
  const { values, positionals } = parseOrUsage(() =>
    parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        help: { type: 'boolean' },
        format: { type: 'string' },
        'allow-torn-tail': { type: 'boolean' },
        'from-seq': { type: 'string' },
        lines: { type: 'string', short: 'n' },
        follow: { type: 'boolean', short: 'f' },
        'poll-ms': { type: 'string' },
        json: { type: 'boolean' },
        jetstream: { type: 'string' },
        stream: { type: 'string' },
      },
    }),
  );
  if (values.help === true) return { help: true };
  const [command, file, ...extra] = positionals;
  if (command !== 'cat' && command !== 'verify' && command !== 'tail' && command !== 'stats') {
    throw new UsageError(command === undefined ? 'missing command (cat, tail, verify or stats)' : `unknown command '${command}'`);
  }
  const only = (flags: string[], cmd: string): void => {
    const extraFlag = LOG_FLAGS.find((f) => values[f] !== undefined && !flags.includes(f));
    if (extraFlag) throw new UsageError(`--${extraFlag} does not apply to msglog ${cmd}`);
  };
  const formatOf = (): 'json' | 'text' => {
    const format = values.format ?? 'json';
    if (format !== 'json' && format !== 'text') throw new UsageError(`--format must be json or text, got '${format}'`);
    if (values.json === true && format !== 'json') throw new UsageError('--json and --format text contradict each other');
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
    if (command === 'stats') {
      only(['jetstream', 'stream'], cmd);
      return { help: false, command, jetstream: servers, stream: values.stream };
    }
    only(['jetstream', 'stream', 'format', 'json', 'from-seq', 'follow'], cmd);
    const rawSeq = values['from-seq'];
    if (rawSeq !== undefined && !(/^\d{1,16}$/.test(rawSeq) && BigInt(rawSeq) >= 1n && BigInt(rawSeq) <= BigInt(Number.MAX_SAFE_INTEGER))) {
      throw new UsageError(`--from-seq must be a stream sequence (1..${Number.MAX_SAFE_INTEGER}), got '${rawSeq}'`);
    }
    return {
      help: false,
      command,
      jetstream: servers,
      stream: values.stream,
      format: formatOf(),
      fromSeq: rawSeq === undefined ? undefined : BigInt(rawSeq),
      follow: values.follow === true,
    };
  }
  if (file === undefined) throw new UsageError(`msglog ${command} needs a file or directory (or --jetstream <url> --stream <name>)`);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  if (command === 'verify' || command === 'stats') {
    only([], command);
    return { help: false, command, file };
  }
  const format = formatOf();
  if (command === 'tail') {
    only(['format', 'json', 'lines', 'follow', 'poll-ms'], command);
    return {
      help: false,
      command,
      file,
      format,
      lines: values.lines === undefined ? 10 : parseInteger('lines', values.lines, 0, 1_000_000),
      follow: values.follow === true,
      pollMs: values['poll-ms'] === undefined ? 250 : parseInteger('poll-ms', values['poll-ms'], 10, 60_000),
    };
  }
  only(['format', 'json', 'allow-torn-tail', 'from-seq'], command);
  const rawSeq = values['from-seq'];
  if (rawSeq !== undefined && !/^\d{1,20}$/.test(rawSeq)) throw new UsageError(`--from-seq must be a sequence number, got '${rawSeq}'`);
  return {
    help: false,
    command,
    file,
    format,
    allowTornTail: values['allow-torn-tail'] === true,
    fromSeq: rawSeq === undefined ? undefined : BigInt(rawSeq),
  };
}

export function logUsage(): string {
  return [
    'usage: msglog cat <file|dir> [--format json|text] [--allow-torn-tail] [--from-seq N]',
    '       msglog tail <file|dir> [-n N] [-f] [--format json|text] [--poll-ms N]',
    '       msglog verify <file|dir>',
    '       msglog stats <file|dir>',
    '       msglog cat --jetstream <url[,url...]> --stream <name> [--from-seq N] [-f] [--format json|text]',
    '       msglog stats --jetstream <url[,url...]> --stream <name>',
    '',
    'A directory is a rotated log: its segments are read in order.',
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
    '        across rotations, until interrupted.',
    'verify  checks every record (CRC, sequence order) and prints a summary.',
    'stats   counts records, bytes, segments, clients, names, sizes and the time span.',
    '',
    'exit status: 0 ok, 1 corrupt or torn log (or stream message), 2 bad arguments,',
    '             3 cannot read the file (or reach NATS, or no such stream)',
  ].join('\n');
}
