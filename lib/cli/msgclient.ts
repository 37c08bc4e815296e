#!/usr/bin/env node
// msgclient: sends messages (arguments, or stdin lines) and prints one line per
// acknowledgement, in send order. Sends are pipelined through one connection.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { MessageClient } from '../client';
import { ConfigError, parseAppConf } from '../config';
import { LegacyClient } from '../legacy-client';
import { AckError } from '../errors';
import {
  clientUsage,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_UNAVAILABLE,
  EXIT_USAGE,
  parseClientArgs,
  UsageError,
  type ClientArgs,
} from './args';

/**
 * Prints outcomes strictly in send order. ACKs already arrive in order, but a
 * send refused locally (too large) settles at once, ahead of earlier ones.
 */
class Reporter {
  failures = 0;
  private printed: Promise<void> = Promise.resolve();

  track(msgId: bigint, sent: Promise<unknown>): Promise<void> {
    const line = sent.then(
      () => `ack msg_id=${msgId} status=OK`,
      (err: Error) => {
        this.failures++;
        if (err instanceof AckError) return `ack msg_id=${msgId} status=${err.statusName}`;
        return `error msg_id=${msgId}: ${err.message}`;
      },
    );
    this.printed = this.printed.then(async () => {
      process.stdout.write((await line) + '\n');
    });
    return this.printed;
  }
}

async function sendAll(client: MessageClient, args: ClientArgs, reporter: Reporter): Promise<void> {
  const done = args.messages.map((m, i) => {
    const msgId = BigInt(i + 1);
    return reporter.track(msgId, client.send(m, { name: args.name, msgId }));
  });
  await Promise.all(done);
}

/**
 * Streams stdin lines. At most 4 windows of sends are outstanding, so a huge
 * input is read only as fast as the server acknowledges it.
 */
async function sendLines(client: MessageClient, args: ClientArgs, reporter: Reporter): Promise<void> {
  const limit = args.window * 4;
  let outstanding: Promise<void>[] = [];
  let head = 0;
  let msgId = 0n;
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (client.closed) break; // the connection is gone: every further send would fail the same way
    msgId++;
    outstanding.push(reporter.track(msgId, client.send(line, { name: args.name, msgId })));
    if (outstanding.length - head >= limit) await outstanding[head++];
    if (head >= 1024) {
      outstanding = outstanding.slice(head);
      head = 0;
    }
  }
  rl.close();
  await Promise.all(outstanding.slice(head));
}

/**
 * The original client: one message at a time, msg ids from 1, name
 * client_<id>, a pause of TIME_INTERVAL_BTN_MSG between messages, each ack
 * printed with its latency, then the total and the average.
 */
async function runLegacy(argv: string[], args: ClientArgs): Promise<number> {
  const confPath = args.configPath ?? (process.env.MS_HOME ? path.join(process.env.MS_HOME, 'app.conf') : undefined);
  let host = args.host;
  let port = args.port;
  let intervalMs = 0;
  if (confPath && fs.existsSync(confPath)) {
    const conf = parseAppConf(fs.readFileSync(confPath, 'utf8'), confPath);
    if (!argv.includes('--host')) host = conf.options.host ?? host;
    if (!argv.includes('--port')) port = conf.options.port ?? port;
    intervalMs = conf.timeIntervalMs ?? 0;
  }
  const clientId = parseInteger(args.messages[0]);
  const messages = args.messages[1].split(',');
  let client: LegacyClient;
  try {
    client = await LegacyClient.connect({ host, port });
  } catch (err) {
    exitWith(EXIT_UNAVAILABLE, `cannot connect to ${host}:${port}: ${(err as Error).message}`);
  }
  let totalMs = 0;
  for (let i = 0; i < messages.length; i++) {
    if (i > 0 && intervalMs > 0) await sleep(intervalMs);
    const t0 = process.hrtime.bigint();
    try {
      await client.send(clientId, i + 1, `client_${clientId}`, messages[i]);
    } catch (err) {
      process.stderr.write(`msgclient: message ${i + 1} not acknowledged: ${(err as Error).message}\n`);
      return EXIT_FAILURE;
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    totalMs += ms;
    process.stdout.write(`ack msg_id=${i + 1} latency=${ms.toFixed(3)}ms\n`);
  }
  await client.close();
  process.stdout.write(`total latency ${totalMs.toFixed(3)}ms, average ${(totalMs / messages.length).toFixed(3)}ms over ${messages.length} message(s)\n`);
  return EXIT_OK;
}

function parseInteger(raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > 0xffffffff) exitWith(EXIT_USAGE, `client_id must be an integer 0..4294967295, got '${raw}'`);
  return n;
}

function exitWith(code: number, message?: string): never {
  if (message !== undefined) process.stderr.write(`msgclient: ${message}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<number> {
  let args: ClientArgs;
  try {
    args = parseClientArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) exitWith(EXIT_USAGE, `${err.message}\n${clientUsage()}`);
    throw err;
  }
  if (args.help) {
    process.stdout.write(clientUsage() + '\n');
    return EXIT_OK;
  }
  if (args.legacy) {
    try {
      return await runLegacy(argv, args);
    } catch (err) {
      if (err instanceof ConfigError) exitWith(EXIT_USAGE, err.message);
      throw err;
    }
  }
  let client: MessageClient;
  try {
    client = await MessageClient.connect({ host: args.host, port: args.port, clientId: args.clientId, window: args.window });
  } catch (err) {
    exitWith(EXIT_UNAVAILABLE, `cannot connect to ${args.host}:${args.port}: ${(err as Error).message}`);
  }
  const reporter = new Reporter();
  if (args.messages.length > 0) await sendAll(client, args, reporter);
  else await sendLines(client, args, reporter);
  await client.close();
  if (reporter.failures > 0) process.stderr.write(`msgclient: ${reporter.failures} message(s) not acknowledged OK\n`);
  return reporter.failures > 0 ? EXIT_FAILURE : EXIT_OK;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => exitWith(EXIT_FAILURE, err instanceof Error ? err.message : String(err)),
);
