#!/usr/bin/env node
// msgserver: runs a MessageServer from a config file, MSGSERVER_* environment
// variables and flags (in that order of precedence, lowest first) until
// SIGINT/SIGTERM, then closes it cleanly (drain, flush, fsync, ACK). Logs go
// to stderr through pino: readable lines on a terminal (log-format.ts), JSON
// lines otherwise; stdout carries the one "listening" line. A failure to
// start is one line naming the cause and the flag that fixes it (explain.ts).
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import pino, { type Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';

import { ConfigError, configFromFile, resolveConfig, serverOptionsFromEnv, withEnvSources, type ServerOptions } from '../server/config';
import { collectMetrics, metricsHandler } from '../server/metrics';
import type { CloseReport, MessageServer, RecoveredInfo, RotateInfo } from '../server/server';
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  mergeServerOptions,
  parseServerArgs,
  resolveCliSettings,
  SERVER_ENV_VARS,
  serverUsage,
  unknownServerEnvVars,
  UsageError,
  type CliSettings,
} from './args';
import { explainMetricsFailure, explainStartFailure } from './explain';
import { usageLine, versionLine } from './flags';
import { prettyDestination, usePrettyLogs } from './log-format';

interface Loaded {
  options: ServerOptions;
  settings: CliSettings;
  configPath: string | undefined;
  /** Dotted option path -> the variable that set it (only where no flag overrode it). */
  envSources: Record<string, string>;
}

/** Dotted paths of the options set in `opts` ("port", "file.path", ...). */
function optionPaths(opts: ServerOptions): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(opts)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) for (const sub of Object.keys(v)) out.push(`${k}.${sub}`);
    else out.push(k);
  }
  return out;
}

/**
 * Reads the config file, the environment and the flags into options; throws
 * UsageError or ConfigError. The file is --config (JSON options, or an
 * original app.conf), else $MS_HOME/app.conf when it exists, as the original
 * server did. Precedence: defaults < file < environment < flags.
 */
function load(argv: string[], env: NodeJS.ProcessEnv): Loaded | 'help' | 'version' {
  const args = parseServerArgs(argv);
  if (args.help) return 'help';
  if (args.version) return 'version';
  const settings = resolveCliSettings(args, env);
  let configPath = args.configPath;
  const home = env.MS_HOME;
  if (configPath === undefined && home && fs.existsSync(path.join(home, 'app.conf'))) {
    configPath = path.join(home, 'app.conf');
  }
  let fromFile: ServerOptions = {};
  if (configPath !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(configPath, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read config file ${configPath}: ${(err as Error).message}`);
    }
    fromFile = configFromFile(text, configPath);
  }
  const fromEnv = serverOptionsFromEnv(env, SERVER_ENV_VARS);
  const options = mergeServerOptions(mergeServerOptions(fromFile, fromEnv.options), args.flags);
  const envSources = { ...fromEnv.sources };
  for (const p of optionPaths(args.flags)) delete envSources[p];
  // Report every config error now, before touching the engine, naming the
  // variable for values that came from the environment.
  try {
    resolveConfig(options);
  } catch (err) {
    throw withEnvSources(err, envSources);
  }
  return { options, settings, configPath, envSources };
}

/** Before the logger exists (bad flags, bad config): plain text on stderr. */
function fail(code: number, message: string): never {
  process.stderr.write(`msgserver: ${message}\n`);
  process.exit(code);
}

function createLogger(settings: CliSettings): Logger {
  const level = settings.logLevel;
  // Synchronous writes: a line logged just before process.exit() is not lost.
  if (usePrettyLogs(settings.logFormat, process.stderr.isTTY === true)) {
    const color = process.stderr.isTTY === true && !process.env.NO_COLOR;
    return pino({ name: 'msgserver', level }, prettyDestination(2, { color }));
  }
  return pino({ name: 'msgserver', level }, pino.destination({ fd: 2, sync: true }));
}

/** The facts of a system error for the JSON log, without its stack. */
function errorFacts(err: unknown): Record<string, unknown> {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  const out: Record<string, unknown> = { message: e?.message ?? String(err) };
  for (const k of ['code', 'errno', 'syscall', 'address', 'port', 'path'] as const) if (e?.[k] !== undefined) out[k] = e[k];
  return out;
}

/** First signal: close gracefully, exit 0. A second one: the user insists, exit 1 now. */
function handleSignals(server: MessageServer, log: Logger, argv: string[]): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) {
      log.error({ signal }, `${signal} again, exiting without finishing close`);
      process.exit(EXIT_FAILURE);
    }
    closing = true;
    log.info({ signal }, `${signal}, closing (send it again to exit at once)`);
    server.close().then(
      (report: CloseReport) => {
        log.info({ signal, ...report, stats: server.stats() }, 'closed');
        process.exit(EXIT_OK);
      },
      (err: Error) => {
        log.fatal({ error: errorFacts(err) }, `close failed: ${err.message}; messages already ACKed are in the log, later ones were not ACKed`);
        process.exit(EXIT_FAILURE);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', () => {
    if (closing) return;
    reloadCredentials(server, log);
    reload(server, log, argv);
  });
}

/**
 * SIGHUP, first: the TLS certificate, key and CA and the tokens file are read
 * again (server.reload()); new connections use them, open ones carry on. A
 * failure keeps the previous credentials; the server logs it and counts it
 * (stats().reloadFailures).
 */
function reloadCredentials(server: MessageServer, log: Logger): void {
  if (!server.config.tls && !server.config.auth) return;
  server.reload().then(
    () => log.info({ signal: 'SIGHUP' }, 'SIGHUP: TLS certificate, key, CA and tokens file reloaded'),
    () => undefined, // logged by the server with the reason
  );
}

/**
 * SIGHUP: reads the configuration again exactly as at start (the file, the
 * environment, the flags) and applies it with server.reconfigure(). What can
 * change live is applied (the server logs `reconfigured: ...`), what cannot
 * is logged as needing a restart and keeps its running value, and a file
 * that cannot be read or does not validate changes nothing. Connections stay
 * open. The CLI's own --log-level applies at once too.
 */
function reload(server: MessageServer, log: Logger, argv: string[]): void {
  let loaded: Loaded | 'help' | 'version';
  try {
    loaded = load(argv, process.env);
  } catch (err) {
    log.error({ signal: 'SIGHUP', error: errorFacts(err) }, `SIGHUP: cannot reload the config: ${(err as Error).message}; nothing changed`);
    return;
  }
  if (loaded === 'help' || loaded === 'version') return;
  if (loaded.configPath === undefined) {
    log.warn({ signal: 'SIGHUP' }, 'SIGHUP: no config file (--config) to reload; nothing changed');
    return;
  }
  let result: { applied: string[]; needsRestart: string[] };
  try {
    result = server.reconfigure(loaded.options);
  } catch (err) {
    const e = withEnvSources(err, loaded.envSources) as Error;
    log.error({ signal: 'SIGHUP', configFile: loaded.configPath, error: errorFacts(e) }, `SIGHUP: config ${loaded.configPath} not applied: ${e.message}; nothing changed`);
    return;
  }
  const applied = [...result.applied];
  if (loaded.settings.logLevel !== log.level) {
    log.level = loaded.settings.logLevel;
    applied.push('logLevel');
  }
  const what = applied.length === 0 && result.needsRestart.length === 0 ? 'no changes' : `applied: ${applied.join(', ') || 'none'}; needs a restart: ${result.needsRestart.join(', ') || 'none'}`;
  log.info({ signal: 'SIGHUP', configFile: loaded.configPath, applied, needsRestart: result.needsRestart }, `SIGHUP: reloaded ${loaded.configPath} (${what})`);
}

function startMetrics(server: MessageServer, settings: CliSettings, log: Logger): Promise<http.Server | undefined> {
  const port = settings.metricsPort;
  if (port === undefined) return Promise.resolve(undefined);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'msgserver_' });
  collectMetrics(server, registry);
  // /metrics, and /healthz and /readyz (docs/operations.md#health-and-readiness) on the same port.
  const httpServer = http.createServer(metricsHandler(registry, { server }));
  return new Promise((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(port, settings.metricsHost, () => {
      httpServer.off('error', reject);
      httpServer.on('error', (err) => log.error({ err }, `metrics server: ${err.message}`));
      const addr = httpServer.address();
      const bound = typeof addr === 'object' && addr !== null ? addr.port : port;
      log.info({ metricsHost: settings.metricsHost, metricsPort: bound, health: ['/healthz', '/readyz'] }, `metrics on http://${settings.metricsHost}:${bound}/metrics`);
      resolve(httpServer);
    });
  });
}

async function main(argv: string[]): Promise<void> {
  let loaded: Loaded | 'help' | 'version';
  try {
    loaded = load(argv, process.env);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(usageLine('msgserver', err) + '\n');
      process.exit(EXIT_USAGE);
    }
    if (err instanceof ConfigError) fail(EXIT_USAGE, err.message);
    throw err;
  }
  if (loaded === 'help') {
    process.stdout.write(serverUsage() + '\n');
    return;
  }
  if (loaded === 'version') {
    process.stdout.write(versionLine('msgserver') + '\n');
    return;
  }
  const { options, settings, configPath, envSources } = loaded;
  const log = createLogger(settings);
  const unknown = unknownServerEnvVars(process.env);
  if (unknown.length > 0) log.warn({ variables: unknown }, `ignoring unknown environment variables ${unknown.join(', ')}`);

  // Loaded only now: --help and config errors must work even when the native
  // addon is missing or fails to load.
  const { MessageServer: Server } = require('../server/server') as typeof import('../server/server');
  let server: MessageServer;
  try {
    // The engine's log lines (and runtime errors, with no 'error' listener) go to pino.
    server = new Server({ ...options, logger: log });
  } catch (err) {
    // Cross-field config errors (e.g. text format with rotation) are still a
    // configuration problem, not a crash.
    fail(EXIT_USAGE, (withEnvSources(err, envSources) as Error).message);
  }
  log.info({ config: server.config, configFile: configPath ?? null, fromEnv: envSources }, 'effective config');

  // Runtime errors (a failed write) reach the logger through the server (no
  // 'error' listener here); the server keeps running.
  // A torn tail cut at start-up matters: the operator should know data was dropped.
  server.on('recovered', (r: RecoveredInfo) => log.warn({ recovered: r }, `recovered: ${r.message}`));
  server.on('rotate', (r: RotateInfo) => log.info({ rotate: r }, `rotated: closed ${r.closed}, writing ${r.next}`));
  handleSignals(server, log, argv);

  try {
    await startMetrics(server, settings, log);
  } catch (err) {
    log.fatal({ error: errorFacts(err) }, explainMetricsFailure(err, settings.metricsHost, settings.metricsPort ?? 0));
    process.exit(EXIT_FAILURE);
  }
  let addr: { host: string; port: number };
  try {
    addr = await server.listen();
  } catch (err) {
    const cfg = server.config;
    const rotating = cfg.file.rotateBytes > 0 || cfg.file.rotateMs > 0;
    const line = explainStartFailure(err, { host: cfg.host, port: cfg.port, file: cfg.file.path, rotating });
    log.fatal({ error: errorFacts(err) }, line);
    process.exit(EXIT_FAILURE);
  }
  const cfg = server.config;
  const js = cfg.jetstream;
  const sinks = [
    ...(cfg.file.enabled ? [`writing ${cfg.file.path}`] : []),
    ...(js ? [`publishing to JetStream stream ${js.stream} (${js.subjectPrefix}.<clientId>) on ${js.servers.join(',')}`] : []),
  ];
  log.info({ host: addr.host, port: addr.port, file: cfg.file.enabled ? cfg.file.path : null, jetstream: js?.stream ?? null, ackMode: cfg.ackMode }, 'listening');
  process.stdout.write(`msgserver listening on ${addr.host}:${addr.port}, ${sinks.join(', ')} (ackMode ${cfg.ackMode})\n`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  fail(EXIT_FAILURE, err instanceof Error ? (err.stack ?? err.message) : String(err));
});
