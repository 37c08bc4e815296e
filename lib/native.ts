// Loads the native addon (a prebuild from prebuilds/, or build/Release after a
// source build) and describes its interface. MSGSERVER_ADDON points at another
// build (the sanitizer builds use it).
import * as path from 'node:path';

import type { ServerStats } from './server';

export interface NativeOptions {
  host: string;
  port: number;
  serviceThreads: number;
  protocol: string;
  ackMode: string;
  fileEnabled: boolean;
  filePath: string;
  format: string;
  rotateBytes: number;
  rotateMs: number;
  fsync: string;
  fsyncIntervalMs: number;
  repair: boolean;
  batchMaxMessages: number;
  batchMaxBytes: number;
  batchMaxDelayMs: number;
  maxMessageBytes: number;
  maxConnections: number;
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  frameTimeoutMs: number;
  maxQueueBytes: number;
  maxInflightBytesPerConnection: number;
  /** null: no JetStream sink. */
  jetstream: {
    servers: string[];
    stream: string;
    subjectPrefix: string;
    replicas: number;
    createStream: boolean;
    ackTimeoutMs: number;
    maxPending: number;
  } | null;
}

export interface NativeEvent {
  type: 'log' | 'recovered' | 'error' | 'rotate' | 'connection' | 'disconnect';
  level: string;
  message: string;
  detail: string;
  a: number;
  b: number;
  c: number;
}

/** The addon's counters: ServerStats, with ACK and ERR counts indexed by status and code. */
export type NativeStats = Omit<ServerStats, 'acks' | 'errors' | 'jetstream'> & {
  acks: number[];
  errors: number[];
  jetstream?: ServerStats['jetstream'];
};

export interface StopReport {
  unackedConnections: number;
  unackedMessages: number;
  timedOut: boolean;
  /** The counters as they were when the engine stopped. */
  stats: NativeStats;
}

export interface NativeEngine {
  /** Binds and opens the file; returns the bound port. Throws on failure. */
  start(): number;
  stop(timeoutMs: number): Promise<StopReport | undefined>;
  stats(): NativeStats | Record<string, never>;
  /** Message hooks on or off, with the policy and the bytes they may have waiting. */
  setHooks(enabled: boolean, block: boolean, maxBytes: number): void;
  setConnectionEvents(enabled: boolean): void;
}

export interface NativeAddon {
  Engine: new (
    opts: NativeOptions,
    onEvent: (ev: NativeEvent) => void,
    onMessages: (data: Buffer, meta: BigUint64Array) => void,
  ) => NativeEngine;
  sourceHash: string;
  crc32cHardware: boolean;
  /** 'available', or why the jetstream option cannot work here (loads libnats on first call). */
  jetstreamAvailability(): string;
}

let addon: NativeAddon | undefined;

export function loadAddon(): NativeAddon {
  if (addon) return addon;
  const override = process.env.MSGSERVER_ADDON;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    addon = override ? require(path.resolve(override)) : require('node-gyp-build')(path.join(__dirname, '..'));
  } catch (err) {
    throw new Error(explainLoadError(err as Error, override), { cause: err });
  }
  return addon!;
}

// Says what is wrong and how to fix it, instead of a bare dlopen message.
// `override` is MSGSERVER_ADDON when it was set.
export function explainLoadError(err: Error, override?: string): string {
  const msg = err.message || String(err);
  const first = msg.split('\n')[0];
  const where = `${process.platform}-${process.arch}`;
  const build = 'apt-get install libevent-dev cmake g++ pkg-config && npm rebuild msgserver';
  if (/libevent[^ ]*\.so/.test(msg)) {
    return (
      `msgserver: the native addon needs libevent's runtime library, which is missing (${first}). ` +
      `Install it: apt-get install libevent-2.1-7 (Debian/Ubuntu).`
    );
  }
  if (override) {
    return (
      `msgserver: cannot load the addon MSGSERVER_ADDON points at (${path.resolve(override)}): ${first}. ` +
      `Point MSGSERVER_ADDON at a built msgserver.node, or unset it to use the packaged addon.`
    );
  }
  if (/No native build was found/.test(msg)) {
    return `msgserver: no prebuilt binary for ${where} and no local build. Build from source: ${build}`;
  }
  return (
    `msgserver: cannot load the native addon for ${where}: ${first}. ` +
    `The binary was built for another platform, or is damaged. Build it for this machine: ${build}`
  );
}
