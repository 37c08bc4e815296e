// Reading and verifying binary log files (docs/file-format.md).
//
// Files can be many GB, so they are streamed in chunks (1 MiB by default);
// a record may straddle chunks or be larger than one. Every record's CRC and
// the strict increase of sequence numbers are checked, with the same
// classification as native record::scan(): the first bad record is "torn"
// when no valid record follows it anywhere (an interrupted write that
// recovery may cut), else "corrupt" (damage in the middle).
//
// The unit of work is one file (walkFile); a directory of rotated segments
// can later be read by walking its files in order.
import * as fs from 'node:fs';
import {
  FILE_HEADER_SIZE,
  RECORD_HEADER_SIZE,
  BODY_FIXED_SIZE,
  LogRecord,
  checkFileHeader,
  decodeRecord,
  encodeFileHeader,
  recordSpan,
} from './record';
import { parseTextLine } from './text-format';

const DEFAULT_CHUNK = 1 << 20;
const MIN_RECORD = RECORD_HEADER_SIZE + BODY_FIXED_SIZE;

export interface ReadLogOptions {
  /** Yield only records with seq >= fromSeq (earlier ones are still checked). */
  fromSeq?: bigint;
  /** A torn tail ends the iteration quietly instead of throwing. */
  allowTornTail?: boolean;
  /** Read size in bytes (tests use small values to exercise chunk boundaries). */
  chunkSize?: number;
  /** 'auto' (default): text when the file starts with a digit, else binary. */
  format?: 'binary' | 'text' | 'auto';
}

export class LogCorruptError extends Error {
  readonly path: string;
  readonly offset: number;
  readonly reason: string;
  /** True when the damage is a torn tail (nothing valid after it). */
  readonly tornTail: boolean;
  constructor(path: string, offset: number, reason: string, tornTail = false) {
    super(`${path}: ${reason} at offset ${offset}`);
    this.name = 'LogCorruptError';
    this.path = path;
    this.offset = offset;
    this.reason = reason;
    this.tornTail = tornTail;
  }
}

export interface VerifyResult {
  path: string;
  ok: boolean; // header and every record good, no torn tail
  records: number; // good records before any problem
  bytes: number; // file size
  firstSeq: bigint | null;
  lastSeq: bigint | null;
  firstBadOffset: number | null; // where the first problem starts (= end of the valid part)
  reason: string | null;
  tornTail: boolean;
  /** Files checked: 1 for a file, the segment count for a directory. */
  segments: number;
  /** The file holding the first problem (a segment of a directory), or null. */
  file: string | null;
}

// ---- chunked reading ----

// A window over the file. Bytes already handed out (records are views into
// `buf`) are never overwritten: when the window must move, a new Buffer is
// allocated, so yielded records stay valid without copying them.
class ChunkReader {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0; // next unread byte in buf
  private end = 0; // end of the bytes read into buf
  private base = 0; // file offset of buf[0]
  private eof = false;

  constructor(
    private readonly fh: fs.promises.FileHandle,
    private readonly chunk: number,
  ) {}

  get available(): number {
    return this.end - this.pos;
  }
  get offset(): number {
    return this.base + this.pos;
  }
  get buffer(): Buffer {
    return this.buf;
  }
  get position(): number {
    return this.pos;
  }
  get atEof(): boolean {
    return this.eof;
  }

  consume(n: number): void {
    this.pos += n;
  }

  // Reads until `need` unread bytes are buffered or the file ends.
  async fill(need: number): Promise<void> {
    while (this.available < need && !this.eof) {
      const want = Math.max(this.chunk, need - this.available);
      if (this.buf.length - this.end < want) {
        const keep = this.available;
        const nb = Buffer.allocUnsafe(keep + want);
        this.buf.copy(nb, 0, this.pos, this.end);
        this.base += this.pos;
        this.buf = nb;
        this.pos = 0;
        this.end = keep;
      }
      const { bytesRead } = await this.fh.read(this.buf, this.end, this.buf.length - this.end, this.base + this.end);
      if (bytesRead === 0) this.eof = true;
      else this.end += bytesRead;
    }
  }
}

async function readAt(fh: fs.promises.FileHandle, offset: number, length: number): Promise<Buffer> {
  const b = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(b, got, length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return b.subarray(0, got);
}

// First offset in [from, size) where a whole record decodes, or null. A
// record after damage can only carry a seq a little above the last good one
// (at most one per minimal record in the damaged span), so candidates are
// filtered on length and seq before any CRC (same rule as native/record.cc):
// scanning garbage stays linear.
async function findNextValid(
  fh: fs.promises.FileHandle,
  from: number,
  size: number,
  chunk: number,
  afterSeq: bigint,
): Promise<number | null> {
  const maxSeq = afterSeq + BigInt(Math.floor((size - from) / MIN_RECORD) + 1);
  const probe = RECORD_HEADER_SIZE + 8; // length, crc, seq
  let winStart = from;
  let win: Buffer = Buffer.alloc(0);
  for (let o = from; o + MIN_RECORD <= size; o++) {
    if (o + probe > winStart + win.length) {
      winStart = o;
      win = await readAt(fh, o, Math.max(chunk, MIN_RECORD));
      if (win.length < probe) return null;
    }
    const rel = o - winStart;
    const span = recordSpan(win, rel);
    if (span < 0 || o + span > size) continue;
    const seq = win.readBigUInt64LE(rel + RECORD_HEADER_SIZE);
    if (seq <= afterSeq || seq > maxSeq) continue;
    if (rel + span <= win.length) {
      if (decodeRecord(win, rel).status === 'ok') return o;
    } else {
      const rec = await readAt(fh, o, span);
      if (decodeRecord(rec, 0).status === 'ok') return o;
    }
  }
  return null;
}

// ---- one file ----

interface Problem {
  offset: number; // start of the first bad record (= end of the valid part)
  reason: string;
  torn: boolean;
  nextValid: number | null; // when not torn and a record follows
}

interface FileSummary {
  records: number;
  firstSeq: bigint | null;
  lastSeq: bigint | null;
  size: number;
  problem: Problem | null;
}

// Yields every good record of one file (offset = file offset) and returns a
// summary saying whether, where and how the walk stopped early.
async function* walkFile(path: string, chunk: number): AsyncGenerator<LogRecord, FileSummary, undefined> {
  const fh = await fs.promises.open(path, 'r');
  try {
    const r = new ChunkReader(fh, chunk);
    const sum: FileSummary = { records: 0, firstSeq: null, lastSeq: null, size: 0, problem: null };
    const finish = async (problem: Problem | null): Promise<FileSummary> => {
      sum.size = (await fh.stat()).size;
      sum.problem = problem && (await classify(fh, problem, sum.size, chunk, sum.lastSeq));
      return sum;
    };

    await r.fill(FILE_HEADER_SIZE);
    if (r.available === 0) return await finish(null); // an empty file holds no records
    const head = r.buffer.subarray(r.position, r.position + Math.min(r.available, FILE_HEADER_SIZE));
    if (head.length < FILE_HEADER_SIZE) {
      // A header cut short is torn (the writer died creating the file); anything else is not ours.
      const torn = encodeFileHeader().subarray(0, head.length).equals(head);
      return await finish({ offset: 0, reason: torn ? 'file header cut short' : 'not a log file (bad header)', torn, nextValid: null });
    }
    if (!checkFileHeader(head)) return await finish({ offset: 0, reason: 'not a log file (bad header)', torn: false, nextValid: null });
    r.consume(FILE_HEADER_SIZE);

    for (;;) {
      await r.fill(RECORD_HEADER_SIZE);
      if (r.available === 0) return await finish(null);
      const span = recordSpan(r.buffer, r.position);
      if (span > 0) await r.fill(span); // a record bigger than a chunk is read whole
      const res = decodeRecord(r.buffer.subarray(0, r.position + r.available), r.position);
      const at = r.offset;
      if (res.status === 'truncated') {
        const want = span > 0 ? `${span}` : `${RECORD_HEADER_SIZE}`;
        return await finish({ offset: at, reason: `truncated record (${r.available} of ${want} bytes)`, torn: true, nextValid: null });
      }
      if (res.status === 'bad') return await finish({ offset: at, reason: res.reason, torn: true, nextValid: null });
      const rec = res.record;
      if (sum.lastSeq !== null && rec.seq <= sum.lastSeq) {
        // Written whole, so not a torn write: corruption.
        return await finish({ offset: at, reason: `sequence ${rec.seq} not above ${sum.lastSeq}`, torn: false, nextValid: at + res.size });
      }
      rec.offset = at;
      sum.records++;
      if (sum.firstSeq === null) sum.firstSeq = rec.seq;
      sum.lastSeq = rec.seq;
      r.consume(res.size);
      yield rec;
    }
  } finally {
    await fh.close();
  }
}

// Torn or corrupt: a record problem is torn unless a valid record exists
// somewhere after it (header problems arrive already classified).
async function classify(
  fh: fs.promises.FileHandle,
  p: Problem,
  size: number,
  chunk: number,
  lastSeq: bigint | null,
): Promise<Problem> {
  if (p.offset === 0 || p.nextValid !== null) return p;
  const next = await findNextValid(fh, p.offset + 1, size, chunk, lastSeq ?? 0n);
  if (next === null) return { ...p, torn: true, reason: `torn tail of ${size - p.offset} bytes: ${p.reason}` };
  return { ...p, torn: false, nextValid: next, reason: `${p.reason}; a valid record follows at offset ${next}` };
}

// ---- text files (file.format 'text') ----

// A text log has no header, checksums or sequence numbers: each line is one
// message (lib/text-format.ts); seq is the line number. A last line without
// its newline is a torn tail; a line that does not parse is corruption.
async function* walkTextFile(path: string, chunk: number): AsyncGenerator<LogRecord, FileSummary, undefined> {
  const fh = await fs.promises.open(path, 'r');
  try {
    const sum: FileSummary = { records: 0, firstSeq: null, lastSeq: null, size: (await fh.stat()).size, problem: null };
    let carry: Buffer = Buffer.alloc(0);
    let offset = 0; // file offset of carry[0]
    let pos = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(chunk);
      const { bytesRead } = await fh.read(buf, 0, chunk, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      let data: Buffer = carry.length ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
      let start = 0;
      for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a, start)) {
        let line;
        try {
          line = parseTextLine(data.subarray(start, nl));
        } catch (err) {
          sum.problem = { offset: offset + start, reason: `bad text line: ${(err as Error).message}`, torn: false, nextValid: null };
          return sum;
        }
        const seq = BigInt(sum.records + 1);
        sum.records++;
        sum.firstSeq ??= seq;
        sum.lastSeq = seq;
        yield { seq, timeUs: 0n, time: new Date(0), clientId: line.clientId, msgId: line.msgId, name: line.name.toString('utf8'), nameBytes: line.name, payload: line.payload, offset: offset + start };
        start = nl + 1;
      }
      carry = Buffer.from(data.subarray(start));
      offset += start;
      data = carry;
    }
    if (carry.length > 0) {
      sum.problem = { offset, reason: `partial last line of ${carry.length} bytes (no newline)`, torn: true, nextValid: null };
    }
    return sum;
  } finally {
    await fh.close();
  }
}

/** 'text' when the file starts like a text log line (a digit); binary logs start with "MSGSLOG". */
async function detectFormat(path: string): Promise<'binary' | 'text'> {
  const fh = await fs.promises.open(path, 'r');
  try {
    const b = Buffer.alloc(1);
    const { bytesRead } = await fh.read(b, 0, 1, 0);
    return bytesRead === 1 && b[0] >= 0x30 && b[0] <= 0x39 ? 'text' : 'binary';
  } finally {
    await fh.close();
  }
}

async function walk(path: string, opts: { chunkSize?: number; format?: 'binary' | 'text' | 'auto' }) {
  const chunk = opts.chunkSize ?? DEFAULT_CHUNK;
  const format = !opts.format || opts.format === 'auto' ? await detectFormat(path) : opts.format;
  return format === 'text' ? walkTextFile(path, chunk) : walkFile(path, chunk);
}

// ---- public API ----

const SEGMENT_NAME = /^\d{20}\.log$/;

/**
 * The segment files of a rotated log directory, in write order (their names
 * are the first sequence number, zero-padded). Other files are ignored.
 */
export async function listSegments(dir: string): Promise<string[]> {
  const names = (await fs.promises.readdir(dir)).filter((n) => SEGMENT_NAME.test(n)).sort();
  return names.map((n) => `${dir}/${n}`);
}

async function filesOf(path: string): Promise<{ files: string[]; isDir: boolean }> {
  const st = await fs.promises.stat(path);
  if (!st.isDirectory()) return { files: [path], isDir: false };
  return { files: await listSegments(path), isDir: true };
}

/**
 * Streams the records of a log file, or of a directory of rotated segments in
 * order. Throws LogCorruptError at the first bad record (after yielding every
 * good one before it). A torn tail throws too unless opts.allowTornTail; in a
 * directory only the last segment may have one (closed segments are complete).
 */
export async function* readLog(path: string, opts: ReadLogOptions = {}): AsyncIterableIterator<LogRecord> {
  const { files } = await filesOf(path);
  let lastSeq: bigint | null = null;
  // Segments wholly before fromSeq are skipped: the next one's name says where it starts.
  let first = 0;
  if (opts.fromSeq !== undefined) {
    while (first + 1 < files.length && BigInt(files[first + 1].slice(-24, -4)) <= opts.fromSeq) first++;
  }
  for (let i = first; i < files.length; i++) {
    const file = files[i];
    const last = i === files.length - 1;
    const walker = await walk(file, opts);
    try {
      for (;;) {
        const step = await walker.next();
        if (step.done) {
          const p = step.value.problem;
          if (p && !(p.torn && opts.allowTornTail && last)) throw new LogCorruptError(file, p.offset, p.reason, p.torn);
          break;
        }
        const rec = step.value;
        if (lastSeq !== null && rec.seq <= lastSeq) {
          throw new LogCorruptError(file, rec.offset, `sequence ${rec.seq} not above ${lastSeq} of the previous segment`);
        }
        lastSeq = rec.seq;
        if (opts.fromSeq === undefined || rec.seq >= opts.fromSeq) yield rec;
      }
    } finally {
      await walker.return(undefined as never); // closes the file when the caller stops early
    }
  }
}

/**
 * Checks a whole log file, or every segment of a rotated log directory
 * (counts, first and last sequence, the first bad offset and its file).
 * Never throws for bad content, only for I/O errors.
 */
export async function verifyLog(
  path: string,
  opts: { chunkSize?: number; format?: 'binary' | 'text' | 'auto' } = {},
): Promise<VerifyResult> {
  const { files, isDir } = await filesOf(path);
  const out: VerifyResult = {
    path,
    ok: true,
    records: 0,
    bytes: 0,
    firstSeq: null,
    lastSeq: null,
    firstBadOffset: null,
    reason: null,
    tornTail: false,
    segments: isDir ? files.length : 1,
    file: null,
  };
  for (let i = 0; i < files.length; i++) {
    const walker = await walk(files[i], opts);
    let step = await walker.next();
    let firstInFile: bigint | null = null;
    while (!step.done) {
      firstInFile ??= step.value.seq;
      step = await walker.next();
    }
    const s = step.value;
    out.bytes += s.size;
    if (out.ok && out.lastSeq !== null && firstInFile !== null && firstInFile <= out.lastSeq) {
      out.ok = false;
      out.file = files[i];
      out.firstBadOffset = 16;
      out.reason = `sequence ${firstInFile} not above ${out.lastSeq} of the previous segment`;
    }
    if (out.ok) {
      out.records += s.records;
      out.firstSeq ??= s.firstSeq;
      out.lastSeq = s.lastSeq ?? out.lastSeq;
      if (s.problem) {
        out.ok = false;
        out.file = files[i];
        out.firstBadOffset = s.problem.offset;
        out.reason = s.problem.reason;
        // Only the active (last) segment can be torn; a closed one was synced whole.
        out.tornTail = s.problem.torn && i === files.length - 1;
      }
    }
  }
  return out;
}
