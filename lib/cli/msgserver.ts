#!/usr/bin/env node
// msgserver: runs a MessageServer from flags and/or a JSON config file until
// SIGINT/SIGTERM, then closes it cleanly (drain, flush, fsync, ACK).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, configFromFile, resolveConfig, type ServerOptions } from '../config';
import type { LogEntry, MessageServer, RecoveredInfo } from '../server';
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  mergeServerOptions,
  parseServerArgs,
  serverUsage,
  UsageError,
} from './args';

/**
 * Reads flags and the config file into options; throws UsageError or
 * ConfigError. The file is --config (JSON options, or an original app.conf),
 * else $MS_HOME/app.conf when it exists, as the original server did.
 */
function loadOptions(argv: string[]): ServerOptions | 'help' {
  const args = parseServerArgs(argv);
  if (args.help) return 'help';
  let configPath = args.configPath;
  const home = process.env.MS_HOME;
  if (configPath === undefined && home && fs.existsSync(path.join(home, 'app.conf'))) {
    configPath = path.join(home, 'app.conf');
  }
  if (configPath === undefined) return args.flags;
  let text: string;
  try {
    text = fs.readFileSync(configPath, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read config file ${configPath}: ${(err as Error).message}`);
  }
  return mergeServerOptions(configFromFile(text, configPath), args.flags);
}

function fail(code: number, message: string): never {
  process.stderr.write(`msgserver: ${message}\n`);
  process.exit(code);
}

/** First signal: close gracefully, exit 0. A second one: the user insists, exit 1 now. */
function handleSignals(server: MessageServer): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) fail(EXIT_FAILURE, `${signal} again, exiting without finishing close`);
    closing = true;
    process.stderr.write(`msgserver: ${signal}, closing (send it again to exit at once)\n`);
    server.close().then(
      () => process.exit(EXIT_OK),
      (err: Error) => fail(EXIT_FAILURE, `close failed: ${err.message}`),
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

async function main(argv: string[]): Promise<void> {
  let opts: ServerOptions | 'help';
  try {
    opts = loadOptions(argv);
    if (opts !== 'help') resolveConfig(opts); // report config errors before touching the engine
  } catch (err) {
    if (err instanceof UsageError) fail(EXIT_USAGE, `${err.message}\n${serverUsage()}`);
    if (err instanceof ConfigError) fail(EXIT_USAGE, err.message);
    throw err;
  }
  if (opts === 'help') {
    process.stdout.write(serverUsage() + '\n');
    return;
  }
  // Loaded only now: --help and config errors must work even when the native
  // addon is missing or fails to load.
  const { MessageServer: Server } = require('../server') as typeof import('../server');
  let server: MessageServer;
  try {
    server = new Server(opts);
  } catch (err) {
    // The constructor also refuses valid options this build cannot serve yet
    // (e.g. protocol 'legacy'): still a configuration problem, not a crash.
    fail(EXIT_USAGE, (err as Error).message);
  }
  // Runtime errors (a failed write) are reported; the server keeps running.
  server.on('error', (err: Error) => process.stderr.write(`msgserver: error: ${err.message}\n`));
  server.on('log', (e: LogEntry) => process.stderr.write(`msgserver: ${e.level}: ${e.message}\n`));
  // A torn tail cut at start-up is worth a line: the operator should know data was dropped.
  server.on('recovered', (r: RecoveredInfo) => process.stderr.write(`msgserver: recovered: ${r.message}\n`));
  handleSignals(server);
  let addr: { host: string; port: number };
  try {
    addr = await server.listen();
  } catch (err) {
    fail(EXIT_FAILURE, `cannot listen: ${(err as Error).message}`);
  }
  const cfg = server.config;
  process.stdout.write(
    `msgserver listening on ${addr.host}:${addr.port}, writing ${cfg.file.path} (ackMode ${cfg.ackMode})\n`,
  );
}

main(process.argv.slice(2)).catch((err: unknown) => {
  fail(EXIT_FAILURE, err instanceof Error ? (err.stack ?? err.message) : String(err));
});
