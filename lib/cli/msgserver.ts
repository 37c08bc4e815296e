#!/usr/bin/env node
// msgserver: runs a MessageServer from a config file, MSGSERVER_* environment
// variables and flags (in that order of precedence, lowest first) until
// SIGINT/SIGTERM, then closes it cleanly (drain, flush, fsync, ACK). Logs are
// pino JSON lines on stderr; stdout carries the one "listening" line.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import pino, { type Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';

import { ConfigError, configFromFile, resolveConfig, serverOptionsFromEnv, withEnvSources, type ServerOptions } from '../config';
import { collectMetrics, metricsHandler } from '../metrics';
import type { CloseReport, MessageServer, RecoveredInfo, RotateInfo } from '../server';
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
function load(argv: string[], env: NodeJS.ProcessEnv): Loaded | 'help' {
  const args = parseServerArgs(argv);
  if (args.help) return 'help';
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

function createLogger(level: CliSettings['logLevel']): Logger {
  // Synchronous writes: a line logged just before process.exit() is not lost.
  return pino({ name: 'msgserver', level }, pino.destination({ fd: 2, sync: true }));
}

/** First signal: close gracefully, exit 0. A second one: the user insists, exit 1 now. */
function handleSignals(server: MessageServer, log: Logger): void {
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
        log.error({ err }, `close failed: ${err.message}`);
        process.exit(EXIT_FAILURE);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

function startMetrics(server: MessageServer, settings: CliSettings, log: Logger): Promise<http.Server | undefined> {
  const port = settings.metricsPort;
  if (port === undefined) return Promise.resolve(undefined);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'msgserver_' });
  collectMetrics(server, registry);
  const httpServer = http.createServer(metricsHandler(registry));
  return new Promise((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(port, settings.metricsHost, () => {
      httpServer.off('error', reject);
      httpServer.on('error', (err) => log.error({ err }, `metrics server: ${err.message}`));
      const addr = httpServer.address();
      const bound = typeof addr === 'object' && addr !== null ? addr.port : port;
      log.info({ metricsHost: settings.metricsHost, metricsPort: bound }, `metrics on http://${settings.metricsHost}:${bound}/metrics`);
      resolve(httpServer);
    });
  });
}

async function main(argv: string[]): Promise<void> {
  let loaded: Loaded | 'help';
  try {
    loaded = load(argv, process.env);
  } catch (err) {
    if (err instanceof UsageError) fail(EXIT_USAGE, `${err.message}\n${serverUsage()}`);
    if (err instanceof ConfigError) fail(EXIT_USAGE, err.message);
    throw err;
  }
  if (loaded === 'help') {
    process.stdout.write(serverUsage() + '\n');
    return;
  }
  const { options, settings, configPath, envSources } = loaded;
  const log = createLogger(settings.logLevel);
  const unknown = unknownServerEnvVars(process.env);
  if (unknown.length > 0) log.warn({ variables: unknown }, `ignoring unknown environment variables ${unknown.join(', ')}`);

  // Loaded only now: --help and config errors must work even when the native
  // addon is missing or fails to load.
  const { MessageServer: Server } = require('../server') as typeof import('../server');
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
  handleSignals(server, log);

  try {
    await startMetrics(server, settings, log);
  } catch (err) {
    log.fatal({ err }, `cannot serve metrics on ${settings.metricsHost}:${settings.metricsPort}: ${(err as Error).message}`);
    process.exit(EXIT_FAILURE);
  }
  let addr: { host: string; port: number };
  try {
    addr = await server.listen();
  } catch (err) {
    log.fatal({ err }, `cannot listen: ${(err as Error).message}`);
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
