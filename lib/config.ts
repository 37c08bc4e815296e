// Server configuration: the option types, their defaults, and resolveConfig(),
// which turns user options into a complete, validated config. Validation
// collects every problem before throwing, so a user with three typos fixes
// them in one go instead of three restarts.
import * as os from 'node:os';
import { inspect } from 'node:util';

export type Protocol = 'v1' | 'legacy';
export type AckMode = 'received' | 'written' | 'durable';
export type FileFormat = 'binary' | 'text';
export type FsyncPolicy = 'never' | 'interval' | 'batch';

export interface FileOptions {
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
}

export interface ResolvedConfig {
  host: string;
  port: number;
  serviceThreads: number;
  protocol: Protocol;
  ackMode: AckMode;
  file: Required<FileOptions>;
  batch: Required<BatchOptions>;
  limits: Required<LimitOptions>;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const MAX_TIMEOUT_MS = 86_400_000; // one day; longer looks like a unit mistake
const MAX_ROTATE_BYTES = 2 ** 50;
const MIN_ROTATE_BYTES = 4096;
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
    path: 'messages.log',
    format: 'binary',
    rotateBytes: 0,
    rotateMs: 0,
    fsync: 'interval',
    fsyncIntervalMs: 1000,
    repair: false,
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
  },
});

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
  | { kind: 'string' };

const int = (min: number, max: number): Rule => ({ kind: 'int', min, max });
const oneOf = (...values: string[]): Rule => ({ kind: 'enum', values });
const timeout = int(0, MAX_TIMEOUT_MS);

const TOP_RULES: Record<string, Rule> = {
  host: { kind: 'string' },
  port: int(0, 65535),
  serviceThreads: int(1, 256),
  protocol: oneOf('v1', 'legacy'),
  ackMode: oneOf('received', 'written', 'durable'),
};

const SECTION_RULES: Record<'file' | 'batch' | 'limits', Record<string, Rule>> = {
  file: {
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
  },
};

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
  reportUnknownKeys(`${name}.`, given, Object.keys(rules), issues);
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
  if (rotating && cfg.file.format === 'text' && !failed.has('file.format')) {
    // Text lines carry no sequence number to name or order segments by.
    issues.push({ field: 'file.format', value: 'text', allowed: "'binary' when file.rotateBytes or file.rotateMs is set" });
  }
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
  reportUnknownKeys('', given, [...Object.keys(TOP_RULES), ...Object.keys(SECTION_RULES)], issues);

  const cfg = {
    ...top,
    file: resolveSection('file', given.file, issues),
    batch: resolveSection('batch', given.batch, issues),
    limits: resolveSection('limits', given.limits, issues),
  } as unknown as ResolvedConfig;
  const queueGiven = isPlainObject(given.limits) && given.limits.maxQueueBytes !== undefined;
  crossCheck(cfg, queueGiven, issues);
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
  /** TIME_INTERVAL_BTN_MSG: the original client's pause between messages, in milliseconds. */
  timeIntervalMs: number | undefined;
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
  let timeIntervalMs: number | undefined;
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
        timeIntervalMs = integer(key, line, value, 0, MAX_TIMEOUT_MS) ?? timeIntervalMs;
        break;
      default:
        issues.push({ field: `${key} (${source} line ${line})`, value, allowed: `one of the keys ${APP_CONF_KEYS.join(', ')}` });
    }
  });
  if (issues.length > 0) throw new ConfigError(issues, `invalid ${source}: ${issues.map(formatIssue).join('; ')}`);
  return { options, timeIntervalMs };
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
  /** Option path: a top-level key or [section, key], as in ServerOptions. */
  path: string | readonly [string, string];
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
    if (typeof v.path === 'string') {
      options[v.path] = value;
      sources[v.path] = v.name;
    } else {
      const [section, key] = v.path;
      const sub = (options[section] ??= {}) as Record<string, unknown>;
      sub[key] = value;
      sources[`${section}.${key}`] = v.name;
    }
  }
  return { options: options as ServerOptions, sources };
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
