// Loads the native addon (a prebuild from prebuilds/, or build/Release after a
// source build) and describes its interface. MSGSERVER_ADDON points at another
// build (the sanitizer builds use it).
import * as path from 'node:path';

import type { ResolvedConfig } from './config';
import type { NativePrincipal } from './credentials';
import type { IoOp, ServerStats } from './stats';

/** An engine event, with the same named fields as its C++ struct (native/events.h). */
export type NativeEvent =
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string }
  | { type: 'recovered'; message: string; offset: number; bytesCut: number; lastSeq: number }
  | { type: 'ioError'; op: IoOp; path: string; message: string; errno: number; records: number }
  | { type: 'rotate'; closed: string; next: string }
  | { type: 'segmentClosed'; path: string; firstSeq: number; lastSeq: number; bytes: number }
  | { type: 'segmentDeleted'; path: string; firstSeq: number; bytes: number; reason: 'maxBytes' | 'maxAgeMs' | 'maxSegments' }
  | { type: 'hookDrop'; messages: number }
  | { type: 'jetstreamReady'; stream: string }
  | { type: 'connection'; id: number; remoteAddress: string; serviceThread: number }
  | { type: 'disconnect'; id: number; reason: string; messagesReceived: number; unacked: number };

/** A hook batch's per-message fields, one typed array each (index i = message i). */
export interface NativeHookMeta {
  seq: BigUint64Array;
  timeUs: BigUint64Array;
  msgId: BigUint64Array;
  clientId: Uint32Array;
  /** The name is data[offset, offset + nameLen), the payload right after it. */
  nameLen: Uint32Array;
  offset: Uint32Array;
  payloadLen: Uint32Array;
}

export interface StopReport {
  unackedConnections: number;
  unackedMessages: number;
  timedOut: boolean;
  /** The counters as they were when the engine stopped. */
  stats: ServerStats;
}

export interface NativeEngine {
  /** Loads the TLS files, binds and opens the file; returns the bound port. Throws on failure. */
  start(principals: NativePrincipal[]): number;
  /**
   * New credentials for new connections: the TLS files read again, and these
   * principals. '' when in use, else why not (the old ones stay). A string
   * instead of principals: lib could not load them (counted as a failure).
   */
  reload(principals: NativePrincipal[] | string): string;
  stop(timeoutMs: number): Promise<StopReport | undefined>;
  /** Every counter (see statsSchema); an empty object before the first start. */
  stats(): ServerStats | Record<string, never>;
  /** Message hooks on or off, with the policy and the bytes they may have waiting. */
  setHooks(enabled: boolean, block: boolean, maxBytes: number): void;
  setConnectionEvents(enabled: boolean): void;
  /** The live fields of this config (LiveSettings) take effect; kept for the next start. */
  reconfigure(config: ResolvedConfig): void;
  /** Every onSegmentClosed hook resolved for this segment (ok), or one rejected (counted, segment kept). */
  segmentArchived(path: string, ok: boolean): void;
}

/** One scalar of stats() as the engine's stats table describes it (native/addon_stats.cc). */
export interface StatDescriptor {
  /** Field of ServerStats; 'jetstream.<field>' inside the jetstream section. */
  name: string;
  /** Prometheus name, without the prefix. */
  metric: string;
  type: 'counter' | 'gauge';
  help: string;
}

export interface NativeAddon {
  /** The config crosses as resolveConfig() returned it: one shape, no flattening. */
  Engine: new (
    config: ResolvedConfig,
    onEvent: (ev: NativeEvent) => void,
    onMessages: (data: Buffer, meta: NativeHookMeta) => void,
  ) => NativeEngine;
  sourceHash: string;
  statsSchema: StatDescriptor[];
  /** 'available', or why the jetstream option cannot work here (loads libnats on first call). */
  jetstreamAvailability(): string;
}

let addon: NativeAddon | undefined;

export function loadAddon(): NativeAddon {
  if (addon) return addon;
  const override = process.env.MSGSERVER_ADDON;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    addon = override ? require(path.resolve(override)) : require('node-gyp-build')(path.join(__dirname, '..', '..'));
  } catch (err) {
    throw new Error(explainLoadError(err as Error, override), { cause: err });
  }
  return addon!;
}

// Says what is wrong and how to fix it, instead of a bare dlopen message.
// `override` is MSGSERVER_ADDON when it was set.
function explainLoadError(err: Error, override?: string): string {
  const msg = err.message || String(err);
  const first = msg.split('\n')[0];
  const where = `${process.platform}-${process.arch}`;
  const build = 'apt-get install libevent-dev cmake g++ pkg-config libssl-dev && npm rebuild msgserver';
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
