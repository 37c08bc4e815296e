// Wire protocol v1 (docs/protocol.md), the TypeScript twin of native/codec.cc.
// All integers are big-endian; u64 values are bigint. Decoders take any
// Uint8Array and return Buffers that are views into it (no copies), so a
// caller that keeps a frame's name or payload past the next read must copy.

export const PROTOCOL_VERSION = 1;
export const HELLO_SIZE = 12;
export const MSG_HEADER_SIZE = 10; // type, name_len, msg_id: counted in the length
export const ACK_FRAME_SIZE = 20;
export const MAX_ERR_REASON = 255;
export const LENGTH_SIZE = 4;
/** AUTH token bytes: at least 1, at most this many. */
export const MAX_TOKEN_BYTES = 1024;

export const FrameType = { MSG: 0x01, AUTH: 0x02, ACK: 0x81, ERR: 0x82 } as const;

/** HELLO flag bits. AUTH: an AUTH frame follows the HELLO. The other bits stay 0. */
export const HelloFlag = { AUTH: 0x01 } as const;

/** AUTH mechanisms (the byte after the AUTH frame's type). */
export const AuthMechanism = { TOKEN: 1 } as const;

export const ErrCode = {
  BAD_MAGIC: 1,
  BAD_VERSION: 2,
  BAD_HELLO: 3,
  UNKNOWN_TYPE: 4,
  FRAME_TOO_LARGE: 5,
  MALFORMED: 6,
  BUSY: 7,
  SHUTTING_DOWN: 8,
  IDLE_TIMEOUT: 9,
  HANDSHAKE_TIMEOUT: 10,
  SLOW_FRAME: 11,
  INTERNAL: 12,
  UNAUTHENTICATED: 13,
  FORBIDDEN: 14,
} as const;

export const AckStatus = { OK: 0, TOO_LARGE: 1, WRITE_FAILED: 2, SHUTTING_DOWN: 3, REPLICATION_FAILED: 4 } as const;

/** 'OK', 'TOO_LARGE', ...: the names of AckStatus. */
export type AckStatusName = keyof typeof AckStatus;
/** 'BAD_MAGIC', 'BUSY', ...: the names of ErrCode. */
export type ErrCodeName = keyof typeof ErrCode;

const MAGIC = Buffer.from('MSGS', 'latin1');

function nameOf<K extends string>(table: Record<K, number>, value: number): K | 'UNKNOWN' {
  for (const [k, v] of Object.entries(table) as Array<[K, number]>) if (v === value) return k;
  return 'UNKNOWN';
}

export function errCodeName(code: number): ErrCodeName | 'UNKNOWN' {
  return nameOf(ErrCode, code);
}

export function ackStatusName(s: number): AckStatusName | 'UNKNOWN' {
  return nameOf(AckStatus, s);
}

/**
 * A peer broke the protocol. `code` is 'ERR_MSGS_PROTOCOL'; `errCode` is the
 * ErrCode that describes how (MALFORMED, UNKNOWN_TYPE, ...), `codeName` its name.
 */
export class ProtocolError extends Error {
  readonly code = 'ERR_MSGS_PROTOCOL';
  readonly errCode: number;
  readonly codeName: ErrCodeName | 'UNKNOWN';
  constructor(errCode: number, detail?: string) {
    super(detail ? `${errCodeName(errCode)}: ${detail}` : errCodeName(errCode));
    this.name = 'ProtocolError';
    this.errCode = errCode;
    this.codeName = errCodeName(errCode);
  }
}

/** Largest value of a frame's u32 length field for a given payload limit. */
export function maxFrameLength(maxMessageBytes: number): number {
  return MSG_HEADER_SIZE + 255 + maxMessageBytes;
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

// ---- handshake ----

// "MSGS" u8 version u8 flags/status u16 reserved u32 value.
function helloShape(version: number, flags: number, value: number): Buffer {
  const b = Buffer.alloc(HELLO_SIZE);
  MAGIC.copy(b, 0);
  b.writeUInt8(version, 4);
  b.writeUInt8(flags, 5);
  b.writeUInt16BE(0, 6);
  b.writeUInt32BE(value, 8);
  return b;
}

/** opts let tests build wrong HELLOs (the server must refuse them). */
export function encodeHello(clientId: number, opts?: { version?: number; flags?: number }): Buffer {
  return helloShape(opts?.version ?? PROTOCOL_VERSION, opts?.flags ?? 0, clientId);
}

export function encodeHelloOk(status: number, maxMessageBytes: number): Buffer {
  return helloShape(PROTOCOL_VERSION, status, maxMessageBytes);
}

/**
 * Server-side HELLO check, same rules as native parse_hello: each field is
 * judged as soon as its bytes are there. null = need more bytes. `auth`: the
 * HELLO announces an AUTH frame (flags bit 0); any other flag bit is BAD_HELLO.
 */
export function decodeHello(buf: Uint8Array, offset = 0): { clientId: number; auth: boolean } | null {
  const b = asBuffer(buf);
  const n = b.length - offset;
  for (let i = 0; i < 4 && i < n; i++) {
    if (b[offset + i] !== MAGIC[i]) throw new ProtocolError(ErrCode.BAD_MAGIC, 'HELLO does not start with "MSGS"');
  }
  if (n > 4 && b[offset + 4] !== PROTOCOL_VERSION) {
    throw new ProtocolError(ErrCode.BAD_VERSION, `version ${b[offset + 4]}`);
  }
  if (n > 5 && (b[offset + 5] & ~HelloFlag.AUTH) !== 0) throw new ProtocolError(ErrCode.BAD_HELLO, 'unknown flags');
  for (let i = 6; i < 8 && i < n; i++) {
    if (b[offset + i] !== 0) throw new ProtocolError(ErrCode.BAD_HELLO, 'reserved not zero');
  }
  if (n < HELLO_SIZE) return null;
  return { clientId: b.readUInt32BE(offset + 8), auth: (b[offset + 5] & HelloFlag.AUTH) !== 0 };
}

/** Needs all 12 bytes (the client waits for them); throws on a wrong magic. */
export function decodeHelloOk(buf: Uint8Array): { version: number; status: number; maxMessageBytes: number } {
  const b = asBuffer(buf);
  for (let i = 0; i < 4 && i < b.length; i++) {
    if (b[i] !== MAGIC[i]) throw new ProtocolError(ErrCode.BAD_MAGIC, 'HELLO_OK does not start with "MSGS"');
  }
  if (b.length < HELLO_SIZE) throw new ProtocolError(ErrCode.MALFORMED, `HELLO_OK needs ${HELLO_SIZE} bytes`);
  return { version: b[4], status: b[5], maxMessageBytes: b.readUInt32BE(8) };
}

// ---- client -> server ----

/** MSG header (length, type, name_len, msg_id) and the name; the payload follows it. */
export function encodeMsgHeader(msgId: bigint, name: Uint8Array, payloadLen: number): Buffer {
  if (name.length > 255) throw new RangeError(`name is ${name.length} bytes (at most 255)`);
  const length = MSG_HEADER_SIZE + name.length + payloadLen;
  if (!Number.isInteger(payloadLen) || payloadLen < 0 || length > 0xffffffff) {
    throw new RangeError(`payload length ${payloadLen} does not fit a frame`);
  }
  const b = Buffer.allocUnsafe(LENGTH_SIZE + MSG_HEADER_SIZE + name.length);
  b.writeUInt32BE(length, 0);
  b.writeUInt8(FrameType.MSG, 4);
  b.writeUInt8(name.length, 5);
  b.writeBigUInt64BE(msgId, 6);
  b.set(name, LENGTH_SIZE + MSG_HEADER_SIZE);
  return b;
}

export function encodeMsg(msgId: bigint, name: Uint8Array, payload: Uint8Array): Buffer {
  const head = encodeMsgHeader(msgId, name, payload.length);
  const b = Buffer.allocUnsafe(head.length + payload.length);
  head.copy(b, 0);
  b.set(payload, head.length);
  return b;
}

/**
 * AUTH frame: u32 length | u8 type 0x02 | u8 mechanism | token (1..1024
 * bytes). It follows a HELLO whose flags have HelloFlag.AUTH set.
 */
export function encodeAuth(token: Uint8Array | string, mechanism: number = AuthMechanism.TOKEN): Buffer {
  const t = typeof token === 'string' ? Buffer.from(token, 'utf8') : token;
  // The size only, never the token: this message can end up in a log.
  if (t.length < 1 || t.length > MAX_TOKEN_BYTES) {
    throw new RangeError(`token must be 1..${MAX_TOKEN_BYTES} bytes, got ${t.length}`);
  }
  if (!Number.isInteger(mechanism) || mechanism < 0 || mechanism > 255) throw new RangeError(`mechanism must be a u8, got ${mechanism}`);
  const b = Buffer.allocUnsafe(LENGTH_SIZE + 2 + t.length);
  b.writeUInt32BE(2 + t.length, 0);
  b.writeUInt8(FrameType.AUTH, 4);
  b.writeUInt8(mechanism, 5);
  b.set(t, LENGTH_SIZE + 2);
  return b;
}

export type ClientFrame = { type: 'msg'; msgId: bigint; name: Buffer; payload: Buffer; size: number };
export type AuthFrame = { type: 'auth'; mechanism: number; token: Buffer; size: number };

/**
 * Parses the AUTH frame that follows a HELLO announcing it (flags bit 0).
 * The length decides as soon as it is there: a token of 0 or over
 * MAX_TOKEN_BYTES bytes is MALFORMED; another frame type where AUTH was
 * announced is UNAUTHENTICATED (the credentials are missing). The mechanism
 * is returned as sent: judging it is the server's business. null = need more.
 */
export function decodeAuth(buf: Uint8Array, offset = 0): AuthFrame | null {
  const b = asBuffer(buf);
  const n = b.length - offset;
  if (n < LENGTH_SIZE) return null;
  const length = b.readUInt32BE(offset);
  if (length < 3 || length > 2 + MAX_TOKEN_BYTES) throw new ProtocolError(ErrCode.MALFORMED, `AUTH length ${length}`);
  if (n < LENGTH_SIZE + 1) return null;
  if (b[offset + 4] !== FrameType.AUTH) throw new ProtocolError(ErrCode.UNAUTHENTICATED, 'announced AUTH frame missing');
  if (n < LENGTH_SIZE + length) return null;
  return {
    type: 'auth',
    mechanism: b[offset + 5],
    token: b.subarray(offset + 6, offset + LENGTH_SIZE + length),
    size: LENGTH_SIZE + length,
  };
}

/**
 * Parses one client frame at offset, with native parse_frame's rules: each
 * error is raised as soon as the bytes decide it (an oversized length before
 * its body arrives). null = need more bytes. An AUTH frame here (not right
 * after a HELLO that announced it, see decodeAuth) is UNAUTHENTICATED. A payload over maxMessageBytes
 * in a frame within the bound is NOT an error here: the server answers it
 * with a TOO_LARGE ACK and keeps the connection.
 */
export function decodeClientFrame(buf: Uint8Array, offset: number, maxMessageBytes: number): ClientFrame | null {
  const b = asBuffer(buf);
  const n = b.length - offset;
  if (n < LENGTH_SIZE) return null;
  const length = b.readUInt32BE(offset);
  if (length > maxFrameLength(maxMessageBytes)) {
    throw new ProtocolError(ErrCode.FRAME_TOO_LARGE, `frame length ${length}`);
  }
  if (length === 0) throw new ProtocolError(ErrCode.MALFORMED, 'frame length 0');
  if (n < LENGTH_SIZE + 1) return null;
  const type = b[offset + 4];
  if (type === FrameType.AUTH) throw new ProtocolError(ErrCode.UNAUTHENTICATED, 'AUTH frame not announced by HELLO');
  if (type !== FrameType.MSG) throw new ProtocolError(ErrCode.UNKNOWN_TYPE, `frame type 0x${type.toString(16)}`);
  if (length < MSG_HEADER_SIZE) throw new ProtocolError(ErrCode.MALFORMED, `MSG length ${length}`);
  if (n < LENGTH_SIZE + 2) return null;
  const nameLen = b[offset + 5];
  if (length < MSG_HEADER_SIZE + nameLen) {
    throw new ProtocolError(ErrCode.MALFORMED, `MSG length ${length} with name_len ${nameLen}`);
  }
  if (n < LENGTH_SIZE + length) return null;
  const nameAt = offset + LENGTH_SIZE + MSG_HEADER_SIZE;
  const end = offset + LENGTH_SIZE + length;
  return {
    type: 'msg',
    msgId: b.readBigUInt64BE(offset + 6),
    name: b.subarray(nameAt, nameAt + nameLen),
    payload: b.subarray(nameAt + nameLen, end),
    size: LENGTH_SIZE + length,
  };
}

// ---- server -> client ----

export function encodeAck(status: number, count: number, lastMsgId: bigint): Buffer {
  const b = Buffer.alloc(ACK_FRAME_SIZE);
  b.writeUInt32BE(ACK_FRAME_SIZE - LENGTH_SIZE, 0);
  b.writeUInt8(FrameType.ACK, 4);
  b.writeUInt8(status, 5);
  b.writeUInt16BE(0, 6);
  b.writeUInt32BE(count, 8);
  b.writeBigUInt64BE(lastMsgId, 12);
  return b;
}

// Longest prefix of at most max bytes that does not end inside a UTF-8
// character: back off while the first byte left out is a continuation byte.
function utf8Cut(b: Buffer, max: number): Buffer {
  if (b.length <= max) return b;
  let cut = max;
  while (cut > 0 && (b[cut] & 0xc0) === 0x80) cut--;
  return b.subarray(0, cut);
}

/** The reason is cut to MAX_ERR_REASON bytes at a character boundary. */
export function encodeErr(code: number, reason: string): Buffer {
  const r = utf8Cut(Buffer.from(reason, 'utf8'), MAX_ERR_REASON);
  const b = Buffer.allocUnsafe(LENGTH_SIZE + 2 + r.length);
  b.writeUInt32BE(2 + r.length, 0);
  b.writeUInt8(FrameType.ERR, 4);
  b.writeUInt8(code, 5);
  r.copy(b, 6);
  return b;
}

export type ServerFrame =
  | { type: 'ack'; status: number; count: number; lastMsgId: bigint; size: number }
  | { type: 'err'; code: number; reason: string; size: number };

/**
 * Parses one server frame (ACK or ERR) at offset; null = need more bytes.
 * Throws ProtocolError MALFORMED (impossible length) or UNKNOWN_TYPE.
 */
export function decodeServerFrame(buf: Uint8Array, offset = 0): ServerFrame | null {
  const b = asBuffer(buf);
  const n = b.length - offset;
  if (n < LENGTH_SIZE) return null;
  const length = b.readUInt32BE(offset);
  if (length === 0) throw new ProtocolError(ErrCode.MALFORMED, 'frame length 0');
  if (n < LENGTH_SIZE + 1) return null;
  const type = b[offset + 4];
  if (type === FrameType.ACK) {
    if (length !== ACK_FRAME_SIZE - LENGTH_SIZE) throw new ProtocolError(ErrCode.MALFORMED, `ACK length ${length}`);
  } else if (type === FrameType.ERR) {
    if (length < 2 || length > 2 + MAX_ERR_REASON) throw new ProtocolError(ErrCode.MALFORMED, `ERR length ${length}`);
  } else {
    throw new ProtocolError(ErrCode.UNKNOWN_TYPE, `frame type 0x${type.toString(16)}`);
  }
  if (n < LENGTH_SIZE + length) return null;
  const size = LENGTH_SIZE + length;
  if (type === FrameType.ACK) {
    return {
      type: 'ack',
      status: b[offset + 5],
      count: b.readUInt32BE(offset + 8),
      lastMsgId: b.readBigUInt64BE(offset + 12),
      size,
    };
  }
  return { type: 'err', code: b[offset + 5], reason: b.toString('utf8', offset + 6, offset + size), size };
}
