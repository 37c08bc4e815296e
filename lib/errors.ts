// Errors a MessageClient hands to callers. Each one carries the protocol facts
// as fields (so code can branch on them) and a message a person can read in a
// log line without looking anything up. ProtocolError (the peer broke the wire
// format) lives in codec.ts beside the decoder that detects it.

/** The server acknowledged a message with a non-OK status; the connection stays open. */
export class AckError extends Error {
  readonly msgId: bigint;
  readonly status: number;
  readonly statusName: string;

  constructor(msgId: bigint, status: number, statusName: string) {
    super(`message ${msgId} rejected: ${statusName}`);
    this.name = 'AckError';
    this.msgId = msgId;
    this.status = status;
    this.statusName = statusName;
  }
}

/** The server sent an ERR frame; it closes the connection after it. */
export class ServerError extends Error {
  readonly code: number;
  readonly codeName: string;
  readonly reason: string;

  constructor(code: number, codeName: string, reason: string) {
    // The reason is optional on the wire; an empty one would print as "()".
    const detail = reason.length > 0 ? ` (${reason})` : '';
    super(`server closed the connection: ${codeName}${detail}`);
    this.name = 'ServerError';
    this.code = code;
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
  /** The send this error is about, when it is about one. */
  readonly msgId: bigint | null;

  constructor(message = 'connection closed', opts: { msgId?: bigint; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ConnectionClosedError';
    this.msgId = opts.msgId ?? null;
  }
}

/** No HELLO_OK (or ERR) arrived within connectTimeoutMs. */
export class ConnectTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';

  constructor(host: string, port: number, timeoutMs: number) {
    super(`connecting to ${host}:${port} timed out after ${timeoutMs} ms (no HELLO_OK)`);
    this.name = 'ConnectTimeoutError';
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
