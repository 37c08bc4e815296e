// The counters MessageServer.stats() returns. They live apart from server.ts
// so that native.ts (the addon's interface) and metrics.ts can use them
// without importing the server; this file imports nothing from server.ts or
// native.ts. server.ts re-exports them.
import type { AckStatus } from '../format/codec';

/** One count per ACK status name. */
export type StatusCounts = Record<keyof typeof AckStatus, number>;

/** The kinds of system call on the log whose failures are counted (stats().ioErrors). */
export type IoOp = 'write' | 'fsync' | 'truncate' | 'rename' | 'dirSync' | 'open' | 'close' | 'delete' | 'writeback';

export interface ServerStats {
  connections: number;
  connectionsAccepted: number;
  connectionsRejected: number;
  acceptErrors: number;
  /** Event-loop polls (epoll_wait) of the listener and service threads that failed; each was logged (rate-limited) and retried 10 ms later. */
  loopErrors: number;
  messagesIn: number;
  bytesIn: number;
  /** Messages acknowledged, by ACK status. */
  acks: StatusCounts;
  ackFrames: number;
  /** ERR frames sent, by code name. */
  errors: Record<string, number>;
  batchesPushed: number;
  readCalls: number;
  pausedForQueue: number;
  queueBytes: number;
  queueBatches: number;
  writerBatches: number;
  writes: number;
  recordsWritten: number;
  bytesWritten: number;
  fsyncs: number;
  syncedRecords: number;
  /** Failed writes and fsyncs of the log (ioErrors.write + ioErrors.fsync). */
  writeErrors: number;
  failedRecords: number;
  /** Failed system calls on the log, by kind: each was also logged (rate-limited) and emitted as 'error'. */
  ioErrors: Record<IoOp, number>;
  /** Sequence number of the last record stored (0n = none yet); a bigint like every seq. */
  lastSeq: bigint;
  tornBytesCut: number;
  /** Segments closed by rotation. */
  rotations: number;
  /** Closed segments deleted by file.retention. */
  segmentsDeleted: number;
  /** Closed segments an onSegmentClosed hook failed to archive (kept until the next start). */
  archiveFailures: number;
  /** Times ingest paused because free disk space fell below file.minFreeBytes. */
  diskGuardPauses: number;
  /** Gauge, 0/1: ingest is paused for low disk space now. */
  diskLow: number;
  /** Gauge, 0/1: the most recent store of a flush to the log failed (answered WRITE_FAILED). */
  lastStoreFailed: number;
  /** Connections that waited for their ACKs (maxInflightBytesPerConnection). */
  inflightPauses: number;
  /** TLS handshakes completed. */
  tlsHandshakes: number;
  /** TLS handshakes that failed or timed out (limits.handshakeTimeoutMs); each connection was closed. */
  tlsHandshakeFailures: number;
  /** Gauge: TLS handshake steps put off to the next loop pass in the last pass (the per-pass bound). */
  tlsHandshakesWaiting: number;
  /** TLS handshake steps put off to the next loop pass. */
  tlsHandshakeWaits: number;
  /** Connections accepted with credentials (a token or a client certificate). Refusals: errors.UNAUTHENTICATED, errors.FORBIDDEN. */
  authAccepted: number;
  /** Successful credential reloads (server.reload(), SIGHUP). */
  reloads: number;
  /** Reloads that failed (the previous credentials stayed in use). */
  reloadFailures: number;
  /** Gauge: bytes held in unfinished frames across all connections (limits.maxPartialFrameBytes). */
  partialFrameBytes: number;
  /** Times a connection stopped being read because limits.maxPartialFrameBytes was spent. */
  partialFrameWaits: number;
  /** Writes (+ fsync when synced per batch) by duration: [i] counts those under 2^i us; the last, the rest. */
  writeLatencyUs: number[];
  /** Messages handed to message hooks, and those the hooks did not see (policy 'drop'). */
  hookDelivered: number;
  hookDropped: number;
  /** Times the writer waited for slow hooks (policy 'block'). */
  hookBlocked: number;
  /** Server events (log lines, connection events, errors) dropped because the JS thread was too far behind. */
  eventsDropped: number;
  /** The JetStream sink's counters; null without a jetstream section. */
  jetstream: JetStreamStats | null;
  threads: ThreadStats[];
}

export interface JetStreamStats {
  /** Messages handed to the NATS client. */
  published: number;
  /** Publish acknowledgements with a stream sequence (duplicates included). */
  acked: number;
  /** Acknowledged as duplicates: the stream's duplicate window already held the Nats-Msg-Id. */
  duplicates: number;
  /** Answers that an earlier attempt with the same Nats-Msg-Id was still being proposed, not stored: sent again. */
  inProcess: number;
  /** Error replies (no stream, no quorum, ...), and in-process answers not retried (retryMs 0, or not 'replicated'). */
  failed: number;
  /** No acknowledgement within jetstream.ackTimeoutMs. */
  timeouts: number;
  /** Messages not published because the cluster was unreachable or the stream missing. */
  unavailable: number;
  reconnects: number;
  /** Publishes sent again (same Nats-Msg-Id) after a failure that can pass: no responders, 503, timeout, not connected, in process. */
  retries: number;
  /** Messages answered REPLICATION_FAILED once jetstream.retryMs was spent. */
  retryExhausted: number;
  /** Gauge: messages waiting for a resend or for the stream to become usable. */
  held: number;
  /** Connections refused with ERR BUSY while the stream was not ready (jetstream.whileNotReady 'refuse'). */
  refusedNotReady: number;
  connected: boolean;
  /** Connected, and the stream answered a publish: what ackMode 'replicated' needs to ACK OK. */
  ready: boolean;
}

export interface ThreadStats {
  connections: number;
  accepted: number;
  messagesIn: number;
  bytesIn: number;
  batchesPushed: number;
}
