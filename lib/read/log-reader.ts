// Reading and verifying log files (docs/file-format.md): binary logs, and the
// text logs of file.format 'text'.
//
// Files can be many GB, so they are streamed in chunks (1 MiB by default);
// a record may straddle chunks or be larger than one. Every binary record's
// CRC and the strict increase of sequence numbers are checked, with the same
// classification as native record::scan(): the first bad record is "torn"
// when no valid record follows it anywhere (an interrupted write that
// recovery may cut), else "corrupt" (damage in the middle).
//
// The unit of work is one file (walkFile, or walkTextFile for a text log).
// readLog and verifyLog also take a directory of rotated segments: they walk
// its segment files in write order (listSegments) and check that sequence
// numbers keep increasing from one segment to the next.
import * as fs from 'node:fs';
import {
  FILE_HEADER_SIZE,
  RECORD_HEADER_SIZE,
  BODY_FIXED_SIZE,
  LogRecord,
  checkFileHeader,
  decodeRecord,
  encodeFileHeader,
  encodeRecord,
  recordSpan,
} from '../format/record';
import { parseTextLine } from '../format/text-format';

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
  /**
   * Follow the log as it grows (a live tail): after the last record, wait for
   * new ones instead of ending, across rotations into the next segment. Only
   * new bytes are read; see "Following a live log" below. Binary logs only.
   */
  follow?: boolean;
  /** Ends a follow (or any read) quietly: the iterator returns, files and watchers are released. */
  signal?: AbortSignal;
  /** While following: the fallback poll (ms) behind fs.watch; default 1000. Each poll is one fstat (and a readdir for a directory). */
  pollMs?: number;
  /** While following: called each time the reader has read everything there is and starts waiting. */
  onCaughtUp?: () => void;
  /**
   * Recover what verifies instead of stopping at the first bad record: every
   * damaged range is skipped (and reported to onSkip), and reading resumes at
   * the next offset where a record's header and CRC check out. Binary logs only.
   */
  salvage?: boolean;
  /** With salvage: called once per skipped range, in file order. */
  onSkip?: (range: SkippedRange) => void;
}

/** A damaged range salvage skipped: [offset, offset + length) of file. */
export interface SkippedRange {
  file: string;
  offset: number;
  length: number;
  /** What was wrong at offset (the first bad record, or the header). */
  reason: string;
}

export class LogCorruptError extends Error {
  readonly code = 'ERR_MSGS_LOG_CORRUPT';
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

/**
 * readLog/verifyLog were given a directory that holds no segment files
 * (named like 00000000000000000001.log), so there is nothing to read: most
 * likely the log is a single file in it. `found` lists what the directory holds.
 */
export class NoSegmentsError extends Error {
  readonly code = 'ERR_MSGS_NO_SEGMENTS';
  readonly path: string;
  /** The directory's entries (sorted; at most 20). */
  readonly found: string[];
  constructor(path: string, found: string[]) {
    const shown = found.slice(0, 5).join(', ') + (found.length > 5 ? `, ... (${found.length} entries)` : '');
    super(
      `${path} is a directory without log segments (files named like 00000000000000000001.log): ` +
        (found.length === 0 ? 'it is empty' : `it holds ${shown}`),
    );
    this.name = 'NoSegmentsError';
    this.path = path;
    this.found = found.slice(0, 20);
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
  private base: number; // file offset of buf[0]
  private eof = false;

  constructor(
    private readonly fh: fs.promises.FileHandle,
    private readonly chunk: number,
    start = 0,
  ) {
    this.base = start;
  }

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
// scanning garbage stays linear. Salvage may not know any earlier seq
// (afterSeq null: the damage comes before the first good record of a lone
// file); candidates are then filtered on a plausible receive time instead
// (2000-01-01 to a year from now), which random bytes almost never carry.
const PLAUSIBLE_FROM_US = 946_684_800_000_000n;
async function findNextValid(
  fh: fs.promises.FileHandle,
  from: number,
  size: number,
  chunk: number,
  afterSeq: bigint | null,
): Promise<number | null> {
  const maxSeq = afterSeq === null ? 0n : afterSeq + BigInt(Math.floor((size - from) / MIN_RECORD) + 1);
  const maxTimeUs = BigInt(Date.now() + 366 * 86_400_000) * 1000n;
  const probe = RECORD_HEADER_SIZE + 16; // length, crc, seq, time
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
    if (afterSeq !== null) {
      if (seq <= afterSeq || seq > maxSeq) continue;
    } else {
      const timeUs = win.readBigUInt64LE(rel + RECORD_HEADER_SIZE + 8);
      if (seq === 0n || timeUs < PLAUSIBLE_FROM_US || timeUs > maxTimeUs) continue;
    }
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
// message (lib/format/text-format.ts); seq is the line number. A last line without
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
  const files = await listSegments(path);
  if (files.length === 0) throw new NoSegmentsError(path, (await fs.promises.readdir(path)).sort());
  return { files, isDir: true };
}

/**
 * Streams the records of a log file, or of a directory of rotated segments in
 * order. Throws LogCorruptError at the first bad record (after yielding every
 * good one before it). A torn tail throws too unless opts.allowTornTail; in a
 * directory only the last segment may have one (closed segments are complete).
 *
 * opts.follow turns it into a live tail that never ends by itself (see
 * followLog below); opts.salvage skips damaged ranges instead of throwing
 * (see salvageRecords below). opts.signal ends any of them quietly.
 */
export function readLog(path: string, opts: ReadLogOptions = {}): AsyncIterableIterator<LogRecord> {
  if (opts.follow && opts.salvage) throw new TypeError('readLog: follow and salvage cannot be combined');
  if (opts.follow) return new StoppableIterator((stop) => followLog(path, opts, stop), opts.signal);
  if (opts.salvage) return new StoppableIterator((stop) => salvageRecords(path, opts, stop), opts.signal);
  return new StoppableIterator((stop) => readAll(path, opts, stop), opts.signal);
}

async function* readAll(path: string, opts: ReadLogOptions, stop: AbortSignal): AsyncGenerator<LogRecord, void, undefined> {
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
        if (stop.aborted) return;
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

// ---- iterators that can be stopped at any time ----

// An async generator runs a queued return() only once its pending next()
// settles, and a follower's next() may wait for hours. This wrapper aborts an
// internal signal first (which wakes the generator, so the pending next()
// ends with done) and then returns the generator, so return() and an
// AbortSignal both stop at once and release files and watchers.
class StoppableIterator implements AsyncIterableIterator<LogRecord> {
  private readonly ctl = new AbortController();
  private readonly gen: AsyncGenerator<LogRecord, void, undefined>;
  private readonly external: AbortSignal | undefined;
  private readonly onAbort = (): void => this.ctl.abort();

  constructor(make: (stop: AbortSignal) => AsyncGenerator<LogRecord, void, undefined>, signal?: AbortSignal) {
    this.gen = make(this.ctl.signal);
    this.external = signal;
    if (signal?.aborted) this.ctl.abort();
    else signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  async next(): Promise<IteratorResult<LogRecord>> {
    if (this.ctl.signal.aborted) return this.finish();
    try {
      const step = await this.gen.next();
      if (step.done) this.external?.removeEventListener('abort', this.onAbort);
      return step;
    } catch (err) {
      this.external?.removeEventListener('abort', this.onAbort);
      throw err;
    }
  }

  async return(): Promise<IteratorResult<LogRecord>> {
    this.ctl.abort();
    return this.finish();
  }

  async throw(err?: unknown): Promise<IteratorResult<LogRecord>> {
    this.ctl.abort();
    this.external?.removeEventListener('abort', this.onAbort);
    return this.gen.throw(err);
  }

  private async finish(): Promise<IteratorResult<LogRecord>> {
    this.external?.removeEventListener('abort', this.onAbort);
    await this.gen.return(undefined);
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<LogRecord> {
    return this;
  }
}

// ---- following a live log (readLog with follow: true) ----
//
// The follower keeps one open file handle and the offset of the next unread
// byte. It reads only bytes past what it already read: each wake-up is one
// fstat, and a read only when the file grew. Wake-ups come from fs.watch (on
// the file, or on the segment directory, whose watch also reports changes to
// the files in it) and from a slow poll (opts.pollMs) in case a watch event
// is lost or the file system has none. Idle, it costs one fstat per poll.
//
// - A partial record at the end (the writer's pwrite in progress) stays
//   buffered until the rest arrives; it is never decoded twice.
// - A record that does not verify at the end of the active file is read
//   again at the next wake-up: the writer may have cut a failed append back
//   and written new records there. The same bad bytes twice is corruption
//   (LogCorruptError).
// - If the file shrinks below what was read (the writer cut back records
//   whose write or sync failed: their seqs are given back and used again),
//   reading goes on at the cut, and the next record may repeat a seq that
//   was already yielded. Only a failed write or sync does that.
// - Rotation: the writer syncs a segment whole before it creates the next.
//   So once a newer segment exists, the current one is read to its end once
//   more (a partial record left there is corruption), and the follower moves
//   to the next segment (the smallest name above the current one). Should
//   that new segment vanish before it holds a record (the writer removes a
//   segment whose header it could not write, and keeps writing the old one),
//   the follower goes back to the old one.

const DEFAULT_POLL_MS = 1000;

/** A wake-up that is never lost: fire() before wait() makes the next wait() return at once. */
class Wakeup {
  private pending = false;
  private resolve: (() => void) | null = null;

  fire(): void {
    this.pending = true;
    const r = this.resolve;
    this.resolve = null;
    r?.();
  }

  async wait(): Promise<void> {
    if (!this.pending) await new Promise<void>((r) => (this.resolve = r));
    this.pending = false;
  }
}

interface FollowedFile {
  path: string;
  name: string; // the segment's file name ('' for a lone file)
  fh: fs.promises.FileHandle;
  pos: number; // file offset of pending[0]
  pending: Buffer; // bytes read and not yet consumed (at most a partial record after parsing)
  headerOk: boolean;
  records: number; // records read from this file
  badSeen: Buffer | null; // a bad record's bytes, kept to tell a rewrite from corruption
}

async function openFollowed(path: string, name: string): Promise<FollowedFile> {
  const fh = await fs.promises.open(path, 'r');
  return { path, name, fh, pos: 0, pending: Buffer.alloc(0), headerOk: false, records: 0, badSeen: null };
}

async function segmentNames(dir: string): Promise<string[]> {
  return (await fs.promises.readdir(dir)).filter((n) => SEGMENT_NAME.test(n)).sort();
}

/**
 * Reads new bytes of f (at most one chunk, or what the pending partial record
 * still needs). Returns the bytes read; 0 when nothing new is there.
 */
async function readMore(f: FollowedFile, chunk: number, onCut: () => void): Promise<number> {
  const size = (await f.fh.stat()).size;
  let have = f.pos + f.pending.length;
  if (size < have) {
    // The writer cut records back (a failed write or sync): go on from the cut.
    f.pending = Buffer.alloc(0);
    if (size < f.pos) {
      f.pos = size;
      if (size < FILE_HEADER_SIZE) {
        f.pos = 0;
        f.headerOk = false;
      }
      onCut();
    }
    have = f.pos;
  }
  if (size <= have) return 0;
  const span = f.headerOk ? recordSpan(f.pending, 0) : -1;
  const need = span > f.pending.length ? span - f.pending.length : 0;
  const want = Math.min(size - have, Math.max(chunk, need));
  // A new buffer each time: yielded records are views into the old one.
  const buf = Buffer.allocUnsafe(f.pending.length + want);
  f.pending.copy(buf, 0);
  let got = 0;
  while (got < want) {
    const { bytesRead } = await f.fh.read(buf, f.pending.length + got, want - got, have + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  f.pending = buf.subarray(0, f.pending.length + got);
  return got;
}

async function* followLog(path: string, opts: ReadLogOptions, stop: AbortSignal): AsyncGenerator<LogRecord, void, undefined> {
  const chunk = opts.chunkSize ?? DEFAULT_CHUNK;
  const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
  if (!Number.isInteger(pollMs) || pollMs < 1) throw new RangeError(`pollMs must be an integer >= 1, got ${pollMs}`);
  const isDir = (await fs.promises.stat(path)).isDirectory();
  if (!isDir && (opts.format === 'text' || ((opts.format ?? 'auto') === 'auto' && (await detectFormat(path)) === 'text'))) {
    throw new Error(`${path}: follow reads binary logs only (this is a text log)`);
  }
  if (stop.aborted) return;

  const wake = new Wakeup();
  let dirChanged = true; // a directory listing is due
  let watcher: fs.FSWatcher | null = null;
  try {
    watcher = fs.watch(path, (event) => {
      if (event === 'rename') dirChanged = true;
      wake.fire();
    });
    watcher.on('error', () => {
      // e.g. the watched file was removed: the poll carries on alone.
      watcher?.close();
      watcher = null;
    });
  } catch {
    watcher = null; // no watch on this file system: poll only
  }
  const timer = setInterval(() => {
    dirChanged = true;
    wake.fire();
  }, pollMs);
  const onAbort = (): void => wake.fire();
  stop.addEventListener('abort', onAbort);

  let cur: FollowedFile | null = null;
  let prev: FollowedFile | null = null; // the segment before cur, until cur holds a record
  let lastSeq: bigint | null = null;
  const onCut = (): void => {
    lastSeq = null; // the seqs that were cut come again
  };
  try {
    if (!isDir) cur = await openFollowed(path, '');
    for (;;) {
      if (stop.aborted) return;
      if (cur === null) {
        // A directory without segments yet: wait for the first one.
        if (dirChanged) {
          dirChanged = false;
          const names = await segmentNames(path);
          if (names.length > 0) {
            let i = 0;
            if (opts.fromSeq !== undefined) while (i + 1 < names.length && BigInt(names[i + 1].slice(0, 20)) <= opts.fromSeq) i++;
            cur = await openFollowed(`${path}/${names[i]}`, names[i]);
            continue;
          }
        }
        opts.onCaughtUp?.();
        await wake.wait();
        continue;
      }

      // Every complete record buffered.
      const f: FollowedFile = cur;
      for (;;) {
        if (!f.headerOk) {
          if (f.pending.length < FILE_HEADER_SIZE) break;
          if (!checkFileHeader(f.pending.subarray(0, FILE_HEADER_SIZE))) throw new LogCorruptError(f.path, 0, 'not a log file (bad header)');
          f.pending = f.pending.subarray(FILE_HEADER_SIZE);
          f.pos = FILE_HEADER_SIZE;
          f.headerOk = true;
        }
        const res = decodeRecord(f.pending, 0);
        if (res.status === 'truncated') break;
        if (res.status === 'bad') {
          const span = recordSpan(f.pending, 0);
          const bytes = Buffer.from(f.pending.subarray(0, span > 0 ? span : RECORD_HEADER_SIZE));
          if (f.badSeen !== null && f.badSeen.equals(bytes)) throw new LogCorruptError(f.path, f.pos, res.reason);
          f.badSeen = bytes;
          f.pending = Buffer.alloc(0); // read it again from the file at the next wake-up
          break;
        }
        f.badSeen = null;
        const rec = res.record;
        if (lastSeq !== null && rec.seq <= lastSeq) {
          throw new LogCorruptError(f.path, f.pos, `sequence ${rec.seq} not above ${lastSeq}`);
        }
        rec.offset = f.pos;
        f.pos += res.size;
        f.pending = f.pending.subarray(res.size);
        f.records++;
        lastSeq = rec.seq;
        if (prev !== null) {
          await prev.fh.close();
          prev = null;
        }
        if (opts.fromSeq === undefined || rec.seq >= opts.fromSeq) {
          yield rec;
          if (stop.aborted) return;
        }
      }
      if (f.badSeen !== null && f.pending.length === 0) {
        // Wait for a change before reading the bad record again.
        opts.onCaughtUp?.();
        await wake.wait();
        if (stop.aborted) return;
      }
      if ((await readMore(f, chunk, onCut)) > 0) continue;

      // Everything written so far is read: is there a newer segment?
      if (isDir && dirChanged) {
        dirChanged = false;
        const names = await segmentNames(path);
        if (prev !== null && f.records === 0 && !names.includes(f.name)) {
          // The rotation that created it failed: the writer goes on in the old segment.
          await f.fh.close();
          cur = prev;
          prev = null;
          continue;
        }
        const next = names.find((n) => n > f.name);
        if (next !== undefined) {
          // f was complete and synced before `next` was created: read its end once more.
          if ((await readMore(f, chunk, onCut)) > 0) {
            dirChanged = true;
            continue;
          }
          if (f.pending.length > 0 || f.badSeen !== null) {
            const why = f.badSeen !== null ? 'a record that does not verify' : `a partial record (${f.pending.length} bytes)`;
            throw new LogCorruptError(f.path, f.pos, `closed segment ends in ${why}`);
          }
          if (prev !== null) await prev.fh.close();
          prev = f;
          cur = await openFollowed(`${path}/${next}`, next);
          // Newer segments may exist already: list again at its end (their events came and went).
          dirChanged = true;
          continue;
        }
      }
      opts.onCaughtUp?.();
      await wake.wait();
    }
  } finally {
    clearInterval(timer);
    stop.removeEventListener('abort', onAbort);
    (watcher as fs.FSWatcher | null)?.close();
    if (cur !== null) await cur.fh.close().catch(() => undefined);
    if (prev !== null) await prev.fh.close().catch(() => undefined);
  }
}

// ---- salvage (readLog with salvage: true, salvageLog) ----
//
// Every record that verifies, in order, from a damaged file or directory.
// Where a record does not decode (or its seq is not above the last one
// taken), the range up to the next offset where a whole record verifies is
// skipped and reported; a search that finds none skips the rest of the file.
// The search uses the same candidate filter as recovery (findNextValid): the
// seq must lie a little above the last good one (for a segment, above its
// name's seq - 1 when that is higher), or, when no seq is known yet, the
// receive time must be plausible. Meant for logs at rest: on a live log the
// active segment's unfinished last record is reported as a skipped range.

async function* salvageFile(
  file: string,
  chunk: number,
  after: { lastSeq: bigint | null; hint: bigint | null },
  onSkip: (r: SkippedRange) => void,
  stop: AbortSignal,
): AsyncGenerator<LogRecord, void, undefined> {
  const fh = await fs.promises.open(file, 'r');
  try {
    const size0 = (await fh.stat()).size;
    if (size0 === 0) return;
    const bound = (): bigint | null => {
      const { lastSeq, hint } = after;
      if (lastSeq === null) return hint;
      return hint !== null && hint > lastSeq ? hint : lastSeq;
    };
    let pos: number | null = FILE_HEADER_SIZE;
    const head = await readAt(fh, 0, FILE_HEADER_SIZE);
    if (!checkFileHeader(head)) {
      pos = await findNextValid(fh, 0, size0, chunk, bound());
      const reason = head.length < FILE_HEADER_SIZE ? 'file header cut short' : 'bad file header';
      onSkip({ file, offset: 0, length: (pos ?? size0) - 0, reason });
    }
    while (pos !== null) {
      const r = new ChunkReader(fh, chunk, pos);
      let bad: string | null = null;
      let at = pos;
      for (;;) {
        await r.fill(RECORD_HEADER_SIZE);
        if (r.available === 0) break;
        const span = recordSpan(r.buffer, r.position);
        if (span > 0) await r.fill(span);
        const res = decodeRecord(r.buffer.subarray(0, r.position + r.available), r.position);
        at = r.offset;
        if (res.status === 'truncated') {
          bad = `truncated record (${r.available} of ${span > 0 ? span : RECORD_HEADER_SIZE} bytes)`;
          break;
        }
        if (res.status === 'bad') {
          bad = res.reason;
          break;
        }
        const rec = res.record;
        if (after.lastSeq !== null && rec.seq <= after.lastSeq) {
          bad = `sequence ${rec.seq} not above ${after.lastSeq}`;
          break;
        }
        rec.offset = at;
        after.lastSeq = rec.seq;
        r.consume(res.size);
        yield rec;
        if (stop.aborted) return;
      }
      if (bad === null) break;
      const size = (await fh.stat()).size;
      pos = await findNextValid(fh, at + 1, size, chunk, bound());
      onSkip({ file, offset: at, length: (pos ?? size) - at, reason: bad });
    }
  } finally {
    await fh.close();
  }
}

async function* salvageRecords(path: string, opts: ReadLogOptions, stop: AbortSignal): AsyncGenerator<LogRecord, void, undefined> {
  const chunk = opts.chunkSize ?? DEFAULT_CHUNK;
  const onSkip = opts.onSkip ?? ((): void => undefined);
  const { files, isDir } = await filesOf(path);
  const after: { lastSeq: bigint | null; hint: bigint | null } = { lastSeq: null, hint: null };
  for (const file of files) {
    if (opts.format === 'text' || ((opts.format ?? 'auto') === 'auto' && (await detectFormat(file)) === 'text')) {
      throw new Error(`${file}: salvage reads binary logs only (this is a text log)`);
    }
    // A segment's name is the seq of its first record: its records lie above name - 1.
    const named = isDir ? BigInt(file.slice(-24, -4)) : 0n;
    after.hint = named > 0n ? named - 1n : null;
    for await (const rec of salvageFile(file, chunk, after, onSkip, stop)) {
      if (opts.fromSeq === undefined || rec.seq >= opts.fromSeq) yield rec;
      if (stop.aborted) return;
    }
  }
}

export interface SalvageOptions {
  /** Called once per skipped range, in order (they are also in the report). */
  onSkip?: (range: SkippedRange) => void;
  chunkSize?: number;
  /** Ends the salvage early; the output is then not created. */
  signal?: AbortSignal;
}

export interface SalvageReport {
  /** The new log file written. */
  output: string;
  /** Records recovered (and written). */
  records: number;
  firstSeq: bigint | null;
  lastSeq: bigint | null;
  /** Size of the new file. */
  bytes: number;
  /** Every damaged range skipped, in order. */
  skipped: SkippedRange[];
}

/**
 * Writes every record of `src` (a log file or a segment directory) that
 * verifies to a new single log file `dest`, as readLog(src, { salvage: true })
 * yields them: same seq, time, client, message id, name and payload, so the
 * result passes verifyLog. `dest` must not exist; it is written beside as
 * `<dest>.tmp-<pid>`, synced, and renamed into place only when complete.
 */
export async function salvageLog(src: string, dest: string, opts: SalvageOptions = {}): Promise<SalvageReport> {
  const report: SalvageReport = { output: dest, records: 0, firstSeq: null, lastSeq: null, bytes: 0, skipped: [] };
  if (fs.existsSync(dest)) throw new Error(`${dest} already exists; salvage writes a new file`);
  const tmp = `${dest}.tmp-${process.pid}`;
  const out = await fs.promises.open(tmp, 'wx');
  let done = false;
  try {
    const parts: Buffer[] = [encodeFileHeader()];
    let pending = FILE_HEADER_SIZE;
    const flush = async (): Promise<void> => {
      const b = Buffer.concat(parts);
      parts.length = 0;
      pending = 0;
      let off = 0;
      while (off < b.length) off += (await out.write(b, off, b.length - off, report.bytes + off)).bytesWritten;
      report.bytes += b.length;
    };
    const records = readLog(src, {
      salvage: true,
      chunkSize: opts.chunkSize,
      signal: opts.signal,
      onSkip: (r) => {
        report.skipped.push(r);
        opts.onSkip?.(r);
      },
    });
    for await (const rec of records) {
      const b = encodeRecord({ seq: rec.seq, timeUs: rec.timeUs, clientId: rec.clientId, msgId: rec.msgId, name: rec.nameBytes, payload: rec.payload });
      parts.push(b);
      pending += b.length;
      report.records++;
      report.firstSeq ??= rec.seq;
      report.lastSeq = rec.seq;
      if (pending >= DEFAULT_CHUNK) await flush();
    }
    if (opts.signal?.aborted) throw new Error('salvage aborted');
    await flush();
    await out.sync();
    await out.close();
    done = true;
    await fs.promises.rename(tmp, dest);
    return report;
  } finally {
    if (!done) {
      await out.close().catch(() => undefined);
      await fs.promises.rm(tmp, { force: true });
    }
  }
}
