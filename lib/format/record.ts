// On-disk log format (docs/file-format.md), the TypeScript twin of
// native/record.cc. Little-endian; u64 values are bigint.
//
//   file header: "MSGSLOG\0" | u16 version=1 | u16 header_len=16 | u32 crc32c(bytes 0..11)
//   record:      u32 body_len | u32 crc32c(body) | body
//   body:        u64 seq | u64 time_us | u32 client_id | u64 msg_id | u8 name_len | name | payload
import { crc32c } from './crc32c';

export const FILE_HEADER_SIZE = 16;
export const RECORD_HEADER_SIZE = 8;
export const BODY_FIXED_SIZE = 29;
export const FORMAT_VERSION = 1;
export const MAX_PAYLOAD = 64 * 1024 * 1024;
export const MAX_BODY_LEN = BODY_FIXED_SIZE + 255 + MAX_PAYLOAD;

const MAGIC = Buffer.from('MSGSLOG\0', 'latin1');
const HEADER_CRC_OFFSET = 12;

export interface LogRecord {
  seq: bigint;
  timeUs: bigint;
  time: Date; // timeUs at millisecond precision
  clientId: number;
  msgId: bigint;
  name: string; // nameBytes as UTF-8 (names are bytes on the wire; invalid UTF-8 shows as U+FFFD)
  nameBytes: Buffer;
  payload: Buffer;
  offset: number; // where the record starts (in the buffer for decodeRecord, in the file for readLog)
}

export function encodeFileHeader(): Buffer {
  const b = Buffer.alloc(FILE_HEADER_SIZE);
  MAGIC.copy(b, 0);
  b.writeUInt16LE(FORMAT_VERSION, 8);
  b.writeUInt16LE(FILE_HEADER_SIZE, 10);
  b.writeUInt32LE(crc32c(b.subarray(0, HEADER_CRC_OFFSET)), HEADER_CRC_OFFSET);
  return b;
}

export function checkFileHeader(buf: Uint8Array): boolean {
  if (buf.length < FILE_HEADER_SIZE) return false;
  const b = Buffer.from(buf.buffer, buf.byteOffset, FILE_HEADER_SIZE);
  return (
    b.subarray(0, 8).equals(MAGIC) &&
    b.readUInt16LE(8) === FORMAT_VERSION &&
    b.readUInt16LE(10) === FILE_HEADER_SIZE &&
    b.readUInt32LE(HEADER_CRC_OFFSET) === crc32c(b.subarray(0, HEADER_CRC_OFFSET))
  );
}

export function encodeRecord(r: {
  seq: bigint;
  timeUs: bigint;
  clientId: number;
  msgId: bigint;
  name: Uint8Array;
  payload: Uint8Array;
}): Buffer {
  if (r.name.length > 255) throw new RangeError(`name is ${r.name.length} bytes (at most 255)`);
  if (r.payload.length > MAX_PAYLOAD) throw new RangeError(`payload is ${r.payload.length} bytes (at most ${MAX_PAYLOAD})`);
  const bodyLen = BODY_FIXED_SIZE + r.name.length + r.payload.length;
  const b = Buffer.allocUnsafe(RECORD_HEADER_SIZE + bodyLen);
  const body = b.subarray(RECORD_HEADER_SIZE);
  body.writeBigUInt64LE(r.seq, 0);
  body.writeBigUInt64LE(r.timeUs, 8);
  body.writeUInt32LE(r.clientId, 16);
  body.writeBigUInt64LE(r.msgId, 20);
  body.writeUInt8(r.name.length, 28);
  body.set(r.name, BODY_FIXED_SIZE);
  body.set(r.payload, BODY_FIXED_SIZE + r.name.length);
  b.writeUInt32LE(bodyLen, 0);
  b.writeUInt32LE(crc32c(body), 4); // last: the CRC needs the finished body
  return b;
}

export type DecodeResult =
  | { status: 'ok'; record: LogRecord; size: number }
  | { status: 'truncated' }
  | { status: 'bad'; reason: string };

/**
 * Bytes a record at offset claims to span, or -1 when its length field is not
 * readable yet or is impossible. Cheap: no CRC (used to skip garbage fast and
 * to know how much more to read).
 */
export function recordSpan(buf: Uint8Array, offset: number): number {
  if (buf.length - offset < RECORD_HEADER_SIZE) return -1;
  const bodyLen = (buf[offset] | (buf[offset + 1] << 8) | (buf[offset + 2] << 16) | (buf[offset + 3] << 24)) >>> 0;
  if (bodyLen < BODY_FIXED_SIZE || bodyLen > MAX_BODY_LEN) return -1;
  return RECORD_HEADER_SIZE + bodyLen;
}

/**
 * Same order of checks as native decode(): fewer than 8 bytes -> truncated;
 * impossible body_len -> bad; body not all there -> truncated; name_len past
 * the body or CRC mismatch -> bad. Name and payload are views into buf.
 */
export function decodeRecord(buf: Buffer, offset: number): DecodeResult {
  const n = buf.length - offset;
  if (n < RECORD_HEADER_SIZE) return { status: 'truncated' };
  const bodyLen = buf.readUInt32LE(offset);
  if (bodyLen < BODY_FIXED_SIZE || bodyLen > MAX_BODY_LEN) return { status: 'bad', reason: `impossible body length ${bodyLen}` };
  if (n - RECORD_HEADER_SIZE < bodyLen) return { status: 'truncated' };
  const bodyAt = offset + RECORD_HEADER_SIZE;
  const body = buf.subarray(bodyAt, bodyAt + bodyLen);
  const nameLen = body[28];
  if (nameLen > bodyLen - BODY_FIXED_SIZE) {
    return { status: 'bad', reason: `name length ${nameLen} exceeds body length ${bodyLen}` };
  }
  const stored = buf.readUInt32LE(offset + 4);
  const actual = crc32c(body);
  if (stored !== actual) {
    return { status: 'bad', reason: `CRC mismatch (stored 0x${hex8(stored)}, computed 0x${hex8(actual)})` };
  }
  const timeUs = body.readBigUInt64LE(8);
  const nameBytes = body.subarray(BODY_FIXED_SIZE, BODY_FIXED_SIZE + nameLen);
  return {
    status: 'ok',
    size: RECORD_HEADER_SIZE + bodyLen,
    record: {
      seq: body.readBigUInt64LE(0),
      timeUs,
      time: new Date(Number(timeUs / 1000n)),
      clientId: body.readUInt32LE(16),
      msgId: body.readBigUInt64LE(20),
      name: nameBytes.toString('utf8'),
      nameBytes,
      payload: body.subarray(BODY_FIXED_SIZE + nameLen),
      offset,
    },
  };
}

function hex8(v: number): string {
  return v.toString(16).padStart(8, '0');
}
