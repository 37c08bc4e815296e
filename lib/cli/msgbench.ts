#!/usr/bin/env node
// msgbench: drives a msgserver (or any server speaking v1 or the legacy
// protocol) with the native load generator and reports msgs/s, MB/s, ACK
// latency percentiles and errors. Every ACK is checked against the messages
// it covers; a mismatch counts as an error.
import type { BenchProtocol, LoadOptions, LoadProgress, LoadResult } from '../bench/bench';
import { EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, TLS_CLIENT_SPECS, UsageError } from './args';
import { COMMON_FLAGS, parseFlags, parseIntFlag, usageLine, versionLine, type FlagSpec } from './flags';

export interface BenchArgs {
  help: boolean;
  version: boolean;
  json: boolean;
  quiet: boolean;
  load: LoadOptions;
}

function int(flag: string, raw: string | undefined, dflt: number, min: number, max: number): number {
  return raw === undefined ? dflt : parseIntFlag(flag, raw, min, max);
}

const BENCH_SPECS: readonly FlagSpec[] = [
  ...COMMON_FLAGS,
  { name: 'json', type: 'boolean' },
  { name: 'quiet', short: 'q', type: 'boolean' },
  { name: 'host', type: 'string' },
  { name: 'port', type: 'string' },
  { name: 'protocol', type: 'string' },
  { name: 'connections', short: 'c', type: 'string' },
  { name: 'messages', short: 'n', type: 'string' },
  { name: 'duration-ms', short: 'd', type: 'string' },
  { name: 'payload', short: 'p', type: 'string' },
  { name: 'window', short: 'w', type: 'string' },
  { name: 'threads', short: 't', type: 'string' },
  { name: 'ramp-ms', type: 'string' },
  { name: 'name', type: 'string' },
  { name: 'client-id', type: 'string' },
  { name: 'stall-timeout-ms', type: 'string' },
  { name: 'seed', type: 'string' },
  ...TLS_CLIENT_SPECS,
];

function payloadArg(raw: string | undefined): number | [number, number] {
  if (raw === undefined) return 100;
  const m = /^(\d+)(?:-(\d+))?$/.exec(raw.trim());
  if (!m) throw new UsageError(`--payload must be N or MIN-MAX (bytes), got '${raw}'`);
  const a = Number(m[1]);
  if (m[2] === undefined) return a;
  const b = Number(m[2]);
  if (a > b) throw new UsageError(`--payload ${raw}: MIN is larger than MAX`);
  return [a, b];
}

/** --tls and its files (implied by --ca, --cert, --key, --servername); false without. */
function tlsArg(s: (k: string) => string | undefined, on: boolean): LoadOptions['tls'] {
  const [ca, cert, key, servername] = [s('ca'), s('cert'), s('key'), s('servername')];
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--cert and --key go together (the client certificate and its private key)');
  if (!on && ca === undefined && cert === undefined && servername === undefined) return false;
  return { ca, cert, key, servername };
}

export function parseBenchArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): BenchArgs {
  const { values } = parseFlags(argv, BENCH_SPECS, { positionals: false });
  const s = (k: string): string | undefined => values[k] as string | undefined;
  const help = values.help === true;
  const version = values.version === true;
  const protocol = (s('protocol') ?? 'v1') as BenchProtocol;
  if (protocol !== 'v1' && protocol !== 'legacy') throw new UsageError(`--protocol must be v1 or legacy, got '${protocol}'`);
  const hasMessages = s('messages') !== undefined;
  const hasDuration = s('duration-ms') !== undefined;
  if (hasMessages && hasDuration) throw new UsageError('give --messages or --duration-ms, not both');
  const load: LoadOptions = {
    host: s('host') ?? '127.0.0.1',
    port: int('port', s('port'), 9000, 1, 65535),
    protocol,
    connections: int('connections', s('connections'), 1, 1, 1_000_000),
    messages: hasMessages ? int('messages', s('messages'), 0, 1, Number.MAX_SAFE_INTEGER) : undefined,
    durationMs: hasDuration ? int('duration-ms', s('duration-ms'), 0, 1, 86_400_000) : hasMessages ? undefined : 5000,
    payload: payloadArg(s('payload')),
    window: int('window', s('window'), 1, 1, 1_000_000),
    threads: int('threads', s('threads'), 1, 1, 256),
    rampMs: int('ramp-ms', s('ramp-ms'), 0, 0, 3_600_000),
    name: s('name') ?? 'bench',
    clientIdBase: int('client-id', s('client-id'), 1, 0, 0xffffffff),
    stallTimeoutMs: int('stall-timeout-ms', s('stall-timeout-ms'), 15_000, 1, 3_600_000),
    seed: int('seed', s('seed'), 1, 0, Number.MAX_SAFE_INTEGER),
    tls: tlsArg(s, values.tls === true),
  };
  const token = s('token') ?? (env.MSGS_TOKEN === '' ? undefined : env.MSGS_TOKEN);
  if (token === '') throw new UsageError('--token must not be empty');
  if (token !== undefined) load.token = token;
  if (protocol === 'legacy' && (load.tls !== false || token !== undefined)) {
    throw new UsageError('--tls, --ca, --cert, --key, --servername and --token need --protocol v1 (legacy has neither)');
  }
  return { help, version, json: values.json === true, quiet: values.quiet === true, load };
}

export function benchUsage(): string {
  return [
    'usage: msgbench [--host h] [--port p] [--protocol v1|legacy] [-c conns] [-n msgs | -d ms] [options]',
    '                [--tls [--ca f] [--cert f --key f]] [--token t]',
    '',
    'Load-tests a message server with native client threads; checks that every ACK arrives and matches.',
    '',
    '  --host <h>              server address (default 127.0.0.1)',
    '  --port <p>              server port (default 9000)',
    '  --protocol <v1|legacy>  wire protocol (default v1; legacy = 1160-byte structs, "ack" replies)',
    '  -c, --connections <n>   connections (default 1)',
    '  -n, --messages <n>      messages per connection, then stop',
    '  -d, --duration-ms <ms>  or: send for this long, then wait for the owed ACKs (default 5000)',
    '  -p, --payload <N|A-B>   payload bytes, fixed or a uniform range (default 100; legacy: text, <= 1023)',
    '  -w, --window <n>        messages in flight per connection; 1 = synchronous (default 1)',
    '  -t, --threads <n>       load-generator threads (default 1)',
    '  --ramp-ms <ms>          spread connection starts over this long (default 0: all at once)',
    '  --name <s>              message name (default "bench")',
    '  --client-id <n>         client id of the first connection; the next get +1, +2, ... (default 1)',
    '  --stall-timeout-ms <ms> fail a connection that waits this long for an ACK (default 15000)',
    '  --seed <n>              seed for payload sizes and bytes (default 1)',
    '  --tls                   v1 over TLS, spoken by the load engine itself (system CAs unless --ca)',
    '  --ca <file>             PEM CA to trust for the server certificate (implies --tls)',
    '  --cert <file>           PEM client certificate for mutual TLS, with --key (implies --tls)',
    '  --key <file>            PEM private key of --cert',
    '  --servername <name>     name the server certificate must carry (default: --host; implies --tls)',
    '  --token <t>             every connection authenticates with this token (HELLO flag + AUTH).',
    '                          Prefer the MSGS_TOKEN environment variable: flags show in the process list',
    '  --json                  print the result as JSON on stdout',
    '  -q, --quiet             no progress line on stderr',
    '  -h, --help              show this text',
    '  --version               print the version',
    '',
    'exit status: 0 every message ACKed OK, 1 errors or missing ACKs, 2 bad flags, 3 cannot connect',
  ].join('\n');
}

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function fmtUs(us: number): string {
  if (us >= 1e6) return `${(us / 1e6).toFixed(2)} s`;
  if (us >= 1e3) return `${(us / 1e3).toFixed(2)} ms`;
  return `${us.toFixed(1)} us`;
}

function describe(o: LoadOptions): string {
  const p = Array.isArray(o.payload) ? `${o.payload[0]}-${o.payload[1]} B` : `${String(o.payload)} B`;
  const what = o.messages !== undefined ? `${fmtInt(o.messages)} msgs/conn` : `${fmtInt(o.durationMs ?? 0)} ms`;
  return (
    `${o.protocol} ${o.host}:${o.port}, ${fmtInt(o.connections ?? 1)} conn x window ${o.window}, payload ${p}, ` +
    `${what}, ${o.threads} thread(s)${o.rampMs ? `, ramp ${o.rampMs} ms` : ''}` +
    `${o.tls ? ', TLS' : ''}${o.token !== undefined ? ', token' : ''}`
  );
}

export function formatResult(r: LoadResult): string {
  const l = r.latency;
  const lines = [
    `messages   ${fmtInt(r.messagesAcked)} acked of ${fmtInt(r.messagesSent)} sent in ${(r.elapsedMs / 1000).toFixed(3)} s` +
      ` = ${fmtInt(r.msgsPerSec)} msgs/s`,
    `throughput ${r.wireMBPerSec.toFixed(1)} MB/s on the wire, ${r.payloadMBPerSec.toFixed(1)} MB/s payload` +
      ` (${fmtInt(r.ackFrames)} ACK frames, ${(r.messagesAcked / Math.max(1, r.ackFrames)).toFixed(1)} msgs/frame)`,
    `latency    p50 ${fmtUs(l.p50Us)}  p99 ${fmtUs(l.p99Us)}  p99.9 ${fmtUs(l.p999Us)}  max ${fmtUs(l.maxUs)}` +
      `  (mean ${fmtUs(l.meanUs)}, min ${fmtUs(l.minUs)})`,
    `connections ${fmtInt(r.connectionsOk)} ok, ${fmtInt(r.connectionsFailed)} failed`,
  ];
  if (r.errors === 0 && r.messagesUnacked === 0) {
    lines.push('errors     0 (every ACK arrived and matched its messages)');
  } else {
    const kinds = Object.entries(r.errorsByKind)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${k} ${fmtInt(v)}`)
      .join(', ');
    lines.push(`errors     ${fmtInt(r.errors)} (${kinds || 'none'}); ${fmtInt(r.messagesUnacked)} message(s) never ACKed`);
    for (const s of r.errorSamples) lines.push(`  ${s}`);
  }
  return lines.join('\n');
}

function progressLine(p: LoadProgress, last: { t: number; acked: number }): string {
  const dt = (p.elapsedMs - last.t) / 1000;
  const rate = dt > 0 ? (p.acked - last.acked) / dt : 0;
  last.t = p.elapsedMs;
  last.acked = p.acked;
  return (
    `msgbench: ${(p.elapsedMs / 1000).toFixed(1)} s  sent ${fmtInt(p.sent)}  acked ${fmtInt(p.acked)}` +
    `  ${fmtInt(rate)} msgs/s  open ${fmtInt(p.connectionsOpen)}  errors ${fmtInt(p.errors)}`
  );
}

async function main(argv: string[]): Promise<number> {
  let args: BenchArgs;
  try {
    args = parseBenchArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(usageLine('msgbench', err) + '\n');
      return EXIT_USAGE;
    }
    throw err;
  }
  if (args.help) {
    process.stdout.write(benchUsage() + '\n');
    return EXIT_OK;
  }
  if (args.version) {
    process.stdout.write(versionLine('msgbench') + '\n');
    return EXIT_OK;
  }
  // Loaded only now: --help and flag errors work without the native addon.
  const { runLoad, loadSucceeded } = require('../bench/bench') as typeof import('../bench/bench');
  const tty = process.stderr.isTTY === true;
  const last = { t: 0, acked: 0 };
  const load: LoadOptions = { ...args.load };
  if (!args.quiet) {
    process.stderr.write(`msgbench: ${describe(load)}\n`);
    load.progressIntervalMs = tty ? 500 : 1000;
    load.onProgress = (p) => {
      const line = progressLine(p, last);
      process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
    };
  }
  let result: LoadResult;
  try {
    result = await runLoad(load);
  } catch (err) {
    if (tty && !args.quiet) process.stderr.write('\n');
    process.stderr.write(`msgbench: ${(err as Error).message}\n`);
    return err instanceof RangeError ? EXIT_USAGE : EXIT_FAILURE;
  }
  if (tty && !args.quiet) process.stderr.write('\r\x1b[K');
  if (args.json) {
    // The token is a secret: the options say only that there was one.
    const options = { ...load, onProgress: undefined, token: load.token === undefined ? undefined : '(set)' };
    process.stdout.write(JSON.stringify({ options, result }, null, 2) + '\n');
  } else {
    process.stdout.write(formatResult(result) + '\n');
  }
  if (result.connectionsOk === 0 && result.errorsByKind.connect > 0) return EXIT_UNAVAILABLE;
  return loadSucceeded(result) ? EXIT_OK : EXIT_FAILURE;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`msgbench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = EXIT_FAILURE;
    },
  );
}
