// Errors a MessageClient hands to callers. Each one carries the protocol facts
// as fields (so code can branch on them), a stable `code` ('ERR_MSGS_...',
// listed in docs/api.md, "Error codes") and a message a person can read in a
// log line without looking anything up. ProtocolError (the peer broke the wire
// format) lives in format/codec.ts beside the decoder that detects it.
import type { AckStatusName, ErrCodeName } from './format/codec';

/** The server acknowledged a message with a non-OK status; the connection stays open. */
export class AckError extends Error {
  readonly code = 'ERR_MSGS_ACK';
  readonly msgId: bigint;
  /** The ACK status (AckStatus): never 0 (OK) here; a status newer than this client is 'UNKNOWN' by name. */
  readonly status: number;
  readonly statusName: Exclude<AckStatusName, 'OK'> | 'UNKNOWN';

  constructor(msgId: bigint, status: number, statusName: Exclude<AckStatusName, 'OK'> | 'UNKNOWN') {
    super(`message ${msgId} rejected: ${statusName}`);
    this.name = 'AckError';
    this.msgId = msgId;
    this.status = status;
    this.statusName = statusName;
  }
}

/** The server sent an ERR frame; it closes the connection after it. */
export class ServerError extends Error {
  readonly code = 'ERR_MSGS_SERVER';
  /** The ERR frame's code (ErrCode), e.g. 7 for BUSY. */
  readonly errCode: number;
  readonly codeName: ErrCodeName | 'UNKNOWN';
  readonly reason: string;

  constructor(errCode: number, codeName: ErrCodeName | 'UNKNOWN', reason: string) {
    // The reason is optional on the wire; an empty one would print as "()".
    const detail = reason.length > 0 ? ` (${reason})` : '';
    super(`server closed the connection: ${codeName}${detail}`);
    this.name = 'ServerError';
    this.errCode = errCode;
    this.codeName = codeName;
    this.reason = reason;
  }
}

/**
 * The connection ended (socket closed, close() called, or the peer misbehaved)
 * before this send was acknowledged. The message may or may not have been
 * stored: the server could have written it and lost the ACK on the way back.
 */
export class ConnectionClosedError extends Error {
  readonly code: 'ERR_MSGS_CONNECTION_CLOSED' | 'ERR_MSGS_RECONNECT_FAILED' = 'ERR_MSGS_CONNECTION_CLOSED';
  /** The send this error is about, when it is about one. */
  readonly msgId: bigint | null;

  constructor(message = 'connection closed', opts: { msgId?: bigint; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ConnectionClosedError';
    this.msgId = opts.msgId ?? null;
  }
}

/**
 * No HELLO_OK (or ERR) arrived within connectTimeoutMs. `connected` says
 * whether the TCP connection was made: then the server took the connection
 * but never answered HELLO, as a server speaking the legacy protocol does.
 */
export class ConnectTimeoutError extends Error {
  readonly code = 'ERR_MSGS_CONNECT_TIMEOUT';
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  /** True when TCP connected but no reply to HELLO came. */
  readonly connected: boolean;

  constructor(host: string, port: number, timeoutMs: number, connected = false) {
    const why = connected
      ? "connected, but no reply to HELLO: if that server speaks the legacy protocol (protocol: 'legacy'), " +
        "use msgclient --legacy (LegacyClient), or start it with --protocol v1"
      : 'no TCP connection';
    super(`connecting to ${host}:${port} timed out after ${timeoutMs} ms (${why})`);
    this.name = 'ConnectTimeoutError';
    this.host = host;
    this.port = port;
    this.timeoutMs = timeoutMs;
    this.connected = connected;
  }
}

/**
 * The TLS handshake with the server failed: its certificate was refused (not
 * signed by a trusted CA, wrong name, expired), the server refused ours, or
 * the connection closed during the handshake (e.g. the port does not speak
 * TLS). `tlsCode` is Node's or OpenSSL's code (e.g.
 * 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_TLS_CERT_ALTNAME_INVALID',
 * 'ERR_SSL_WRONG_VERSION_NUMBER', 'ECONNRESET'); `cause` the original error.
 */
export class TlsError extends Error {
  readonly code = 'ERR_MSGS_TLS';
  readonly tlsCode: string;
  readonly host: string;
  readonly port: number;

  constructor(host: string, port: number, tlsCode: string, detail: string, cause?: unknown) {
    super(`TLS with ${host}:${port} failed: ${detail}`, cause === undefined ? undefined : { cause });
    this.name = 'TlsError';
    this.tlsCode = tlsCode;
    this.host = host;
    this.port = port;
  }
}

/**
 * connect() with several `endpoints`: none answered HELLO_OK. `errors` holds
 * each endpoint's error, in order (an AggregateError).
 */
export class EndpointsFailedError extends AggregateError {
  readonly code = 'ERR_MSGS_ENDPOINTS_FAILED';

  constructor(errors: Error[], message: string) {
    super(errors, message);
    this.name = 'EndpointsFailedError';
  }
}

/**
 * A message too large for the server's frame bound (10 + 255 +
 * maxMessageBytes from its HELLO_OK): not sent, because the server would
 * close the whole connection over it. A RangeError, as before it had a code.
 */
export class MessageTooLargeError extends RangeError {
  readonly code = 'ERR_MSGS_MESSAGE_TOO_LARGE';
  /** The payload's size in bytes. */
  readonly bytes: number;
  /** The server's maxMessageBytes. */
  readonly maxMessageBytes: number;

  constructor(message: string, bytes: number, maxMessageBytes: number) {
    super(message);
    this.name = 'MessageTooLargeError';
    this.bytes = bytes;
    this.maxMessageBytes = maxMessageBytes;
  }
}

/**
 * A client with `reconnect` on gave up: `maxAttempts` reconnection attempts
 * in a row failed. Every send still pending (queued, parked, or written and
 * waiting to be resent) rejects with one of these; `cause` is the error of the
 * last attempt (e.g. ECONNREFUSED, ConnectTimeoutError, ServerError BUSY).
 * A ConnectionClosedError, so code that handles "the connection ended" keeps working.
 */
export class ReconnectFailedError extends ConnectionClosedError {
  override readonly code = 'ERR_MSGS_RECONNECT_FAILED';
  /** Attempts made since the connection dropped. */
  readonly attempts: number;

  constructor(attempts: number, lastError: Error, msgId?: bigint) {
    const what = msgId === undefined ? '' : ` (message ${msgId} not acknowledged)`;
    super(`gave up reconnecting after ${attempts} attempt${attempts === 1 ? '' : 's'}${what}: ${lastError.message}`, {
      msgId,
      cause: lastError,
    });
    this.name = 'ReconnectFailedError';
    this.attempts = attempts;
  }
}

/**
 * sendMany(): at least one item failed. Thrown only after every item settled.
 * `errors` lists the failures in item order (each an AckError,
 * ConnectionClosedError, ... carrying its msgId); `results` has one entry per
 * item, in item order: its AckResult when it was acknowledged OK, else its error.
 */
export class SendManyError<R = unknown> extends AggregateError {
  readonly code = 'ERR_MSGS_SEND_MANY';
  readonly results: Array<R | Error>;
  readonly failed: number;

  constructor(results: Array<R | Error>, errors: Error[]) {
    const first = errors[0];
    super(errors, `${errors.length} of ${results.length} messages failed; first: ${first === undefined ? '?' : first.message}`);
    this.name = 'SendManyError';
    this.results = results;
    this.failed = errors.length;
  }
}

/** The system call behind each kind of log I/O failure (stats().ioErrors). */
const IO_SYSCALLS = {
  write: 'pwrite',
  fsync: 'fdatasync',
  truncate: 'ftruncate',
  rename: 'rename',
  dirSync: 'fsync',
  open: 'open',
  close: 'close',
  delete: 'unlink',
  writeback: 'sync_file_range',
} as const;

/**
 * A system call on the log failed (a server 'error' event). The server keeps
 * running: a failed write or a failed fsync the ACKs wait for was answered
 * WRITE_FAILED; other failures are reported here and counted in
 * stats().ioErrors. Shaped like Node's own system errors: `errno` is negative,
 * `syscall` names the call, `systemCode` is the errno's name (e.g. 'EIO').
 */
export class IoError extends Error {
  readonly code = 'ERR_MSGS_IO';
  /** The kind of operation: 'write', 'fsync', 'truncate', 'rename', 'dirSync', 'open', 'close', 'delete', 'writeback'. */
  readonly op: keyof typeof IO_SYSCALLS;
  readonly path: string;
  readonly errno: number;
  readonly syscall: string;
  readonly systemCode: string;
  /** Messages this failure answered WRITE_FAILED (0 when it decided no ACK). */
  readonly records: number;

  constructor(message: string, fields: { op: keyof typeof IO_SYSCALLS; path: string; errno: number; systemCode: string; records: number }) {
    super(message);
    this.name = 'IoError';
    this.op = fields.op;
    this.path = fields.path;
    this.errno = -Math.abs(fields.errno);
    this.syscall = IO_SYSCALLS[fields.op] ?? fields.op;
    this.systemCode = fields.systemCode;
    this.records = fields.records;
  }
}

/**
 * The server speaks another protocol than the client: a LegacyClient got a
 * protocol v1 ERR frame (the v1 server refused its struct with BAD_MAGIC)
 * instead of "ack". The message names the option that fixes it.
 */
export class ProtocolMismatchError extends Error {
  readonly code = 'ERR_MSGS_PROTOCOL_MISMATCH';
  /** The protocol this client speaks. */
  readonly clientProtocol: 'v1' | 'legacy';
  /** The protocol the server answered in. */
  readonly serverProtocol: 'v1' | 'legacy';

  constructor(message: string, clientProtocol: 'v1' | 'legacy', serverProtocol: 'v1' | 'legacy') {
    super(message);
    this.name = 'ProtocolMismatchError';
    this.clientProtocol = clientProtocol;
    this.serverProtocol = serverProtocol;
  }
}
