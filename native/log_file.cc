// The log on disk (see log_file.h, docs/file-format.md, docs/durability.md).
#include "log_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "record.h"
#include "system_error.h"
#include "time_util.h"

namespace msgs {

namespace {

constexpr char kSegmentSuffix[] = ".log";
constexpr size_t kSegmentDigits = 20;
// After a failed rotation the old segment takes records for this long before
// the next try: a failing disk must not cost a failed open for every record.
constexpr uint64_t kRotateRetryMs = 1000;
// A failed unlink (retention) is retried after this long, not every pass.
constexpr uint64_t kDeleteRetryMs = 1000;

// Start-up failures reach the user as listen()'s rejection: thrown, not
// reported (the user sees each once).
// The SystemError carries errno, the call and the path for listen()'s
// rejection (addon.cc).
[[noreturn]] void fail(const std::string& what, int err, const char* syscall, const std::string& path) {
  throw SystemError::file(what + ": " + strerror(err), err, syscall, path);
}

// The call behind each IoOp of write_header().
const char* header_syscall(IoOp op) {
  return op == IoOp::kTruncate ? "ftruncate" : op == IoOp::kWrite ? "pwrite" : "fdatasync";
}

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// "00000000000000000042.log" -> 42; anything else -> 0.
uint64_t segment_first_seq(const std::string& name) {
  if (name.size() != kSegmentDigits + sizeof kSegmentSuffix - 1) return 0;
  if (name.compare(kSegmentDigits, std::string::npos, kSegmentSuffix) != 0) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < kSegmentDigits; i++) {
    if (name[i] < '0' || name[i] > '9') return 0;
    v = v * 10 + uint64_t(name[i] - '0');
  }
  return v;
}

// 20 digits, so that names sort in write order.
std::string segment_path(const std::string& dir, uint64_t first_seq) {
  std::string digits = std::to_string(first_seq);
  return dir + "/" + std::string(kSegmentDigits - digits.size(), '0') + digits + kSegmentSuffix;
}

// One pwrite loop: EINTR is retried, a short write continues where it
// stopped. Returns 0 or an errno.
int write_all(int fd, const uint8_t* p, size_t n, uint64_t offset) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = pwrite(fd, p + done, n - done, static_cast<off_t>(offset + done));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno;
    if (w == 0) return EIO;  // no progress and no error: do not spin
    done += static_cast<size_t>(w);
  }
  return 0;
}

// A fresh file header at offset 0, synced. Returns 0 or an errno, with *op
// naming the call that failed.
int write_header(int fd, IoOp* op) {
  uint8_t h[record::kFileHeaderSize];
  record::encode_file_header(h);
  *op = IoOp::kTruncate;
  if (ftruncate(fd, 0) != 0) return errno;
  *op = IoOp::kWrite;
  if (int err = write_all(fd, h, sizeof h, 0)) return err;
  *op = IoOp::kFsync;
  return datasync(fd);
}

std::string answered(uint64_t records) { return std::to_string(records) + " messages answered WRITE_FAILED"; }

const char kNameAtRisk[] = "its name may not survive a power loss";
const char kDropFailed[] = "nothing is lost: the pages stay cached, and the next fsync reports whether they reached the disk";

}  // namespace

LogFile::LogFile(const FileConfig& cfg, const LiveSettings& live, Events& events, IoErrors& io,
                 BackgroundSync* background)
    : cfg_(cfg),
      live_(live),
      events_(events),
      io_(io),
      background_(background),
      drop_cache_(cfg.drop_cache && background != nullptr),
      text_(cfg.format == FileFormat::kText),
      rotating_(cfg.rotate_bytes > 0 || cfg.rotate_ms > 0) {}

LogFile::~LogFile() {
  wait_for_background();  // not on a closed (or reused) fd; its failure is reported
  if (fd_ >= 0) close_fd(fd_, path_);
}

uint64_t LogFile::open() {
  if (rotating_) {
    open_segments();
  } else {
    open_file(cfg_.path);
  }
  last_sync_ms_ = segment_opened_ms_ = monotonic_ms();
  drop_file_cache();  // the recovery scan read the whole file
  reset_cache_marks();
  return last_seq_;
}

void LogFile::open_file(const std::string& path) {
  path_ = path;
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot open " + path_, errno, "open", path_);
  struct stat st;
  if (fstat(fd_, &st) != 0) fail("cannot stat " + path_, errno, "fstat", path_);
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) {
    start_file();
  } else if (text_) {
    recover_text(size);
  } else {
    recover(size);
  }
}

// With rotation, file.path is a directory of segments named by the sequence
// number of their first record. The last one is the active one.
void LogFile::open_segments() {
  dir_ = cfg_.path;
  if (mkdir(dir_.c_str(), 0755) == 0) {
    // The new directory's name lives in its parent.
    if (int err = sync_dir(dir_)) io_.report(IoOp::kDirSync, dir_, err, 0, kNameAtRisk);
  } else if (errno != EEXIST) {
    fail("cannot create directory " + dir_, errno, "mkdir", dir_);
  } else {
    struct stat st;
    if (stat(dir_.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) refuse_file_as_directory();
  }
  DIR* d = opendir(dir_.c_str());
  if (!d) fail("cannot open directory " + dir_, errno, "opendir", dir_);
  std::vector<std::string> names;
  int err;
  for (;;) {
    errno = 0;  // readdir() says "end" and "error" both with null
    dirent* e = readdir(d);
    err = errno;
    if (!e) break;
    std::string name = e->d_name;
    if (segment_first_seq(name) != 0) names.push_back(name);
  }
  if (closedir(d) != 0) io_.report(IoOp::kClose, dir_, errno);
  // A directory listed in part could hide the real active segment.
  if (err) fail("cannot read directory " + dir_, err, "readdir", dir_);
  if (names.empty()) {
    segment_first_seq_ = 1;
    open_file(segment_path(dir_, 1));
    return;
  }
  std::sort(names.begin(), names.end());
  const std::string& last = names.back();
  segment_first_seq_ = segment_first_seq(last);
  open_file(dir_ + "/" + last);
  // An empty active segment still says where the sequence stands.
  uint64_t first = segment_first_seq_;
  if (last_seq_ + 1 < first) last_seq_ = first - 1;
  // Every other segment is closed: offered to the archive hooks again (in
  // this process nothing is archived yet) and subject to retention.
  for (size_t i = 0; i + 1 < names.size(); i++) {
    std::string path = dir_ + "/" + names[i];
    struct stat st;
    if (stat(path.c_str(), &st) != 0) continue;  // gone meanwhile
    uint64_t seg_first = segment_first_seq(names[i]);
    uint64_t next_first = segment_first_seq(names[i + 1]);
    uint64_t mtime_ms = uint64_t(st.st_mtim.tv_sec) * 1000 + uint64_t(st.st_mtim.tv_nsec) / 1000000;
    add_closed(ClosedSegment{path, seg_first, std::max(seg_first, next_first) - 1, uint64_t(st.st_size), mtime_ms, false});
  }
}

// Rotation asked for on a log that is one file: say what to do, with the
// exact commands (the file becomes the first segment, named after its first
// record's sequence number).
void LogFile::refuse_file_as_directory() {
  uint64_t first = 1;
  bool binary_log = false;
  int fd = ::open(dir_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    uint8_t b[record::kFileHeaderSize + record::kRecordHeaderSize + 8];
    ssize_t n = pread(fd, b, sizeof b, 0);
    if (n >= ssize_t(record::kFileHeaderSize) && record::check_file_header(b, size_t(n))) {
      binary_log = true;
      if (n == ssize_t(sizeof b)) {
        uint64_t seq = 0;
        for (int i = 7; i >= 0; i--) seq = (seq << 8) | b[record::kFileHeaderSize + record::kRecordHeaderSize + i];
        if (seq > 0) first = seq;
      }
    }
    ::close(fd);
  }
  std::string bounds;
  if (cfg_.rotate_bytes > 0) bounds = "file.rotateBytes = " + std::to_string(cfg_.rotate_bytes);
  if (cfg_.rotate_ms > 0) bounds += (bounds.empty() ? "" : ", ") + std::string("file.rotateMs = ") + std::to_string(cfg_.rotate_ms);
  std::string segment = segment_path(dir_, first);
  std::string msg = "file.path " + dir_ + " is a single log file, but rotation (" + bounds +
                    ") needs file.path to be a directory of segments. Either turn rotation off " +
                    "(file.rotateBytes and file.rotateMs 0), or move the file into a directory as its first segment";
  if (binary_log) {
    msg += " (named after its first record's sequence number, " + std::to_string(first) + "): mv " + dir_ + " " +
           dir_ + ".tmp && mkdir " + dir_ + " && mv " + dir_ + ".tmp " + segment;
  } else {
    msg += "; it is not a binary msgserver log, so it cannot become a segment (rotation needs file.format 'binary')";
  }
  throw std::runtime_error(msg);
}

// A file just created, found empty, or with its header cut short by a crash:
// gets a header (binary) and its name made durable. A failed directory sync
// does not stop the start, the file itself is sound: it is reported.
void LogFile::start_file() {
  offset_ = 0;
  if (!text_) {
    IoOp op;
    if (int err = write_header(fd_, &op)) {
      fail(std::string("cannot ") + io_op_name(op) + " " + path_, err, header_syscall(op), path_);
    }
    offset_ = record::kFileHeaderSize;
  }
  if (int err = sync_dir(path_)) io_.report(IoOp::kDirSync, path_, err, 0, kNameAtRisk);
}

// Scans the whole file: a torn tail (nothing valid after the first bad byte)
// is cut; corruption with valid records after it stops the start, unless
// repair is set, which keeps the damaged file aside and starts a clean one.
void LogFile::recover(uint64_t size) {
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd_, 0);
  if (map == MAP_FAILED) fail("cannot read " + path_, errno, "mmap", path_);
  const uint8_t* p = static_cast<const uint8_t*>(map);
  record::Scan s = record::scan(p, size);
  uint8_t h[record::kFileHeaderSize];
  record::encode_file_header(h);
  // A header cut short by a crash while the file was being created.
  bool header_cut_short = size < sizeof h && memcmp(p, h, size) == 0;
  munmap(map, size);

  if (!s.header_ok) {
    if (!header_cut_short) {
      throw SystemError::log(path_ + " is not a msgserver log (bad file header); refusing to append to it",
                             "ERR_MSGS_NOT_A_LOG", path_);
    }
    start_file();
    return;
  }
  if (s.corrupt) {
    if (!cfg_.repair) {
      throw SystemError::log(path_ + ": corrupt record at byte offset " + std::to_string(s.valid_end) +
                                 " (valid records resume at offset " + std::to_string(s.next_valid) +
                                 "); start with file.repair = true to set the damaged file aside",
                             "ERR_MSGS_LOG_CORRUPT", path_);
    }
    set_aside_damaged(s.valid_end, s.max_seq);
    return;
  }
  offset_ = s.valid_end;
  last_seq_ = s.last_seq;
  if (!s.torn) return;
  if (ftruncate(fd_, static_cast<off_t>(s.valid_end)) != 0) {
    fail("cannot truncate torn tail of " + path_, errno, "ftruncate", path_);
  }
  // Unsynced, the cut could come back after a power loss, under new records.
  if (int err = datasync(fd_)) fail("cannot fsync " + path_ + " after cutting its torn tail", err, "fdatasync", path_);
  stats.torn_bytes_cut.add(s.tail_bytes);
  std::string msg = path_ + ": cut a torn tail of " + std::to_string(s.tail_bytes) + " bytes at offset " +
                    std::to_string(s.valid_end) + " (last good seq " + std::to_string(s.last_seq) + ")";
  recovered(msg, RecoveredEvent{msg, s.valid_end, s.tail_bytes, s.last_seq});
}

// file.repair: the damaged file is renamed <path>.corrupt-<unix ms> and kept
// for inspection. A clean file continues after the highest sequence number
// found anywhere in it, so that no number is given out twice.
void LogFile::set_aside_damaged(uint64_t bad_offset, uint64_t max_seq) {
  std::string aside = path_ + ".corrupt-" + std::to_string(realtime_us() / 1000);
  if (rename(path_.c_str(), aside.c_str()) != 0) fail("cannot move " + path_ + " aside", errno, "rename", path_);
  close_fd(fd_, aside);
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot open " + path_, errno, "open", path_);
  start_file();  // its directory sync also makes the rename durable
  last_seq_ = max_seq;
  recovered(path_ + ": corrupt record at byte offset " + std::to_string(bad_offset) + "; damaged file kept as " +
                aside + ", continuing in a clean file after seq " + std::to_string(max_seq),
            RecoveredEvent{"repaired: damaged file kept as " + aside, bad_offset, 0, max_seq});
}

// Text files have no header and no checksums: one message per line. The only
// damage a crash can leave is a partial last line, which is cut.
void LogFile::recover_text(uint64_t size) {
  offset_ = size;
  uint64_t end = size;
  uint8_t chunk[65536];
  while (end > 0) {  // find the last newline, reading backwards
    size_t n = static_cast<size_t>(std::min<uint64_t>(end, sizeof chunk));
    ssize_t got = pread(fd_, chunk, n, static_cast<off_t>(end - n));
    if (got != static_cast<ssize_t>(n)) fail("cannot read " + path_, got < 0 ? errno : EIO, "pread", path_);
    const void* nl = memrchr(chunk, '\n', n);
    if (nl) {
      end = end - n + static_cast<uint64_t>(static_cast<const uint8_t*>(nl) - chunk) + 1;
      break;
    }
    end -= n;
  }
  if (end == size) return;
  if (ftruncate(fd_, static_cast<off_t>(end)) != 0) {
    fail("cannot truncate partial last line of " + path_, errno, "ftruncate", path_);
  }
  if (int err = datasync(fd_)) {
    fail("cannot fsync " + path_ + " after cutting its partial last line", err, "fdatasync", path_);
  }
  offset_ = end;
  stats.torn_bytes_cut.add(size - end);
  std::string msg = path_ + ": cut a partial last line of " + std::to_string(size - end) + " bytes at offset " +
                    std::to_string(end);
  recovered(msg, RecoveredEvent{msg, end, size - end, 0});
}

void LogFile::recovered(const std::string& line, RecoveredEvent&& ev) {
  events_.log(LogLevel::kWarn, line);
  events_.emit(std::move(ev));
}

// ---------------------------------------------------------------------------

bool LogFile::append(const uint8_t* data, size_t len, uint64_t records) {
  // Failed records are still after offset_: writing behind them would let
  // them read back as records.
  if (tail_dirty_ && !cut_tail(records, answered(records))) return false;
  if (int err = write_all(fd_, data, len, offset_)) {
    io_.report(IoOp::kWrite, path_, err, records, answered(records));
    cut_tail(0, "failed records stay after offset " + std::to_string(offset_) + ", no write until they are cut");
    return false;
  }
  offset_ += len;
  unsynced_records_ += records;
  segment_records_ += records;
  stats.writes.add();
  stats.records.add(records);
  stats.bytes.add(len);
  drop_cache_behind();
  return true;
}

// Starts the next cache drop once a chunk more is written: writeback of what
// was written since the last one, and the drop of the chunk before, whose
// writeback that one started (drop_cached()). A job still in flight (a
// drop, or the interval sync) is not waited for: the next append tries again.
void LogFile::drop_cache_behind() {
  if (!drop_cache_ || offset_ - written_back_to_ < kDropChunkBytes) return;
  collect_background();
  if (background_->in_flight()) return;
  CacheDrop range{written_back_to_, offset_, dropped_to_ - dropped_to_ % kDropAlignBytes, written_back_to_};
  dropped_to_ = written_back_to_;
  written_back_to_ = offset_;
  start_drop(range);
}

void LogFile::start_drop(const CacheDrop& range) {
  background_drop_ = true;
  background_->begin_drop(fd_, range);
}

// The whole file's clean pages: a closed segment (synced, so all of them),
// or what open()'s recovery scan read.
void LogFile::drop_file_cache() {
  if (!drop_cache_) return;
  if (int err = posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED)) io_.report(IoOp::kWriteback, path_, err, 0, kDropFailed);
}

// Nothing before offset_ (what open() found, a new file's header) is
// written back or dropped by the drops to come.
void LogFile::reset_cache_marks() { written_back_to_ = dropped_to_ = swept_to_ = offset_; }

// After a good background sync every page it covered is clean, so all of
// them can go, from where the last sweep ended: what the chunk drops left
// (pages still being written when theirs ran) and the tail written since
// the last chunk, which an idle log would otherwise keep cached.
void LogFile::sweep_cache() {
  if (!drop_cache_ || sync_end_ <= swept_to_) return;
  CacheDrop range{0, 0, swept_to_ - swept_to_ % kDropAlignBytes, sync_end_};
  swept_to_ = sync_end_;
  written_back_to_ = std::max(written_back_to_, sync_end_);
  dropped_to_ = std::max(dropped_to_, sync_end_);
  start_drop(range);
}

bool LogFile::sync(uint64_t answered_failed) {
  // A background sync in flight is applied first, so the counts stay in
  // order; a cache drop in flight goes on beside this one.
  if (!background_drop_) wait_for_background();
  sync_owed_ = false;  // this one covers it
  if (int err = datasync(fd_)) {
    sync_failed(err, answered_failed, "");
    return false;
  }
  synced(unsynced_records_);
  return true;
}

void LogFile::sync_in_background() {
  if (!background_) {
    sync();
    return;
  }
  if (background_->in_flight()) {
    // Behind a drop, the sync is owed: it starts as soon as the drop is
    // collected, before any further drop, so a stream of drops cannot hold
    // it off. A sync in flight is not doubled up.
    if (background_drop_) sync_owed_ = true;
    return;
  }
  start_background_sync();
}

void LogFile::start_background_sync() {
  sync_owed_ = false;
  sync_end_ = offset_;
  background_records_ = unsynced_records_;
  background_drop_ = false;
  background_->begin(fd_);
}

bool LogFile::collect_background() {
  int err;
  if (!background_ || !background_->finish(&err)) return false;
  bool synced_ok = !background_drop_ && err == 0;
  settle_background(err);
  if (sync_owed_) {
    start_background_sync();
  } else if (synced_ok) {
    sweep_cache();
  }
  return true;
}

void LogFile::wait_for_background() {
  if (!background_) return;
  int err = background_->wait();
  if (err >= 0) settle_background(err);
}

// Records appended while it ran may be on disk too, but only those it began
// with are known to be: the rest wait for the next sync.
void LogFile::settle_background(int err) {
  if (background_drop_) {
    background_drop_ = false;
    // Nothing is lost: the pages stay cached (dirty ones are written back
    // as usual), and the next fdatasync reports whether they reached the disk.
    if (err != 0) io_.report(IoOp::kWriteback, path_, err, 0, kDropFailed);
    return;
  }
  if (err != 0) return sync_failed(err, 0, "");
  synced(std::min(background_records_, unsynced_records_));  // fewer: a failure in between took them out
}

// The stats count what was written, so they keep these records: the
// failure itself is counted by IoErrors and the caller.
void LogFile::cut_back(uint64_t len, uint64_t records) {
  offset_ -= len;
  written_back_to_ = std::min(written_back_to_, offset_);  // what is written there next gets its own drop
  dropped_to_ = std::min(dropped_to_, offset_);
  swept_to_ = std::min(swept_to_, offset_);
  unsynced_records_ -= std::min(unsynced_records_, records);  // a failed sync already took them out
  segment_records_ -= records;
  cut_tail(0, "failed records stay after offset " + std::to_string(offset_) + ", no write until they are cut");
}

// Cuts the file back to offset_, the end of the last good record. Until that
// succeeds the bytes after offset_ are records answered WRITE_FAILED:
// append() and rotate() try again first and do nothing while it fails.
bool LogFile::cut_tail(uint64_t records, const std::string& consequence) {
  if (ftruncate(fd_, static_cast<off_t>(offset_)) != 0) {
    int err = errno;
    tail_dirty_ = true;
    io_.report(IoOp::kTruncate, path_, err, records, consequence);
    return false;
  }
  tail_dirty_ = false;
  return true;
}

void LogFile::synced(uint64_t records) {
  stats.fsyncs.add();
  stats.synced_records.add(records);
  unsynced_records_ -= records;
  last_sync_ms_ = monotonic_ms();
}

// Whether those records reached the disk is not known, and never will be:
// Linux reports a writeback error once, so a later fsync that succeeds says
// nothing about them. They leave the sync accounting here, so syncedRecords
// never counts them (docs/durability.md).
void LogFile::sync_failed(int err, uint64_t answered_failed, const std::string& also) {
  std::string consequence = answered_failed > 0
                                ? std::to_string(answered_failed) + " messages answered WRITE_FAILED"
                                : std::to_string(unsynced_records_) +
                                      " records written since the last good sync are not known to be on disk";
  unsynced_records_ = 0;
  io_.report(IoOp::kFsync, path_, err, answered_failed, also.empty() ? consequence : consequence + "; " + also);
}

// ---------------------------------------------------------------------------

bool LogFile::rotation_due(uint64_t buffered, size_t next_record) const {
  uint64_t used = offset_ + buffered;
  if (cfg_.rotate_bytes == 0 || used <= record::kFileHeaderSize || used + next_record <= cfg_.rotate_bytes) {
    return false;
  }
  return rotate_retry_ms_ == 0 || monotonic_ms() >= rotate_retry_ms_;
}

bool LogFile::rotation_due_by_age(uint64_t now_ms, int* wait_ms) const {
  *wait_ms = -1;
  if (cfg_.rotate_ms == 0 || segment_records_ == 0) return false;
  uint64_t due = std::max(segment_opened_ms_ + cfg_.rotate_ms, rotate_retry_ms_);
  if (now_ms >= due) {
    *wait_ms = 0;
    return true;
  }
  *wait_ms = static_cast<int>(std::min<uint64_t>(due - now_ms, INT_MAX));
  return false;
}

// A closed segment is complete on disk: no failed records at its end, and
// synced. The next one has its header synced and its name durable before
// any record goes into it. Any failure keeps the old segment active.
void LogFile::rotate(uint64_t next_seq) {
  std::string still = "not rotating, still writing " + path_;
  if (tail_dirty_ && !cut_tail(0, still)) return postpone_rotation();
  wait_for_background();  // the segment's fd is about to close
  sync_owed_ = false;     // the segment's own sync, next, covers it
  if (int err = datasync(fd_)) {
    sync_failed(err, 0, still);
    return postpone_rotation();
  }
  synced(unsynced_records_);

  std::string next = segment_path(dir_, next_seq);
  int fd = ::open(next.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    io_.report(IoOp::kOpen, next, errno, 0, still);  // not ours (EEXIST): left alone
    return postpone_rotation();
  }
  IoOp op;
  int err = write_header(fd, &op);
  if (err == 0 && (err = sync_dir(next)) != 0) op = IoOp::kDirSync;
  if (err != 0) {
    io_.report(op, next, err, 0, still);
    close_fd(fd, next);
    // Left behind, it would be the last segment at the next start: the
    // sequence would go back to its name.
    if (unlink(next.c_str()) != 0) io_.report(IoOp::kDelete, next, errno, 0, "remove it before the next start");
    return postpone_rotation();
  }

  std::string closed = path_;
  uint64_t closed_bytes = offset_;
  uint64_t closed_first = segment_first_seq_;
  drop_file_cache();
  close_fd(fd_, closed);
  fd_ = fd;
  path_ = next;
  offset_ = record::kFileHeaderSize;
  reset_cache_marks();
  segment_records_ = 0;
  segment_opened_ms_ = monotonic_ms();
  segment_first_seq_ = next_seq;
  rotate_retry_ms_ = 0;
  stats.rotations.add();
  events_.emit(RotateEvent{closed, next});
  add_closed(ClosedSegment{closed, closed_first, std::max(closed_first, next_seq) - 1, closed_bytes,
                           realtime_us() / 1000, false});
}

// ---------------------------------------------------------------------------
// Retention

void LogFile::add_closed(ClosedSegment&& seg) {
  events_.emit(SegmentClosedEvent{seg.path, seg.first_seq, seg.last_seq, seg.bytes});
  closed_bytes_ += seg.bytes;
  closed_.push_back(std::move(seg));
}

void LogFile::mark_archived(const std::string& path) {
  for (ClosedSegment& c : closed_) {
    if (c.path == path) {
      c.archived = true;
      return;
    }
  }
}

std::string LogFile::directory() const { return rotating_ ? dir_ : dir_of(cfg_.path); }

// The bound the oldest closed segment is beyond (nullptr: none). For the
// age bound, *wait_ms is set to the time until it is due (else -1).
const char* LogFile::retention_reason(uint64_t now_real_ms, int* wait_ms) const {
  *wait_ms = -1;
  if (closed_.empty()) return nullptr;
  constexpr auto r = std::memory_order_relaxed;
  uint64_t max_bytes = live_.retention_max_bytes.load(r);
  uint64_t max_segments = live_.retention_max_segments.load(r);
  uint64_t max_age = live_.retention_max_age_ms.load(r);
  if (max_segments > 0 && closed_.size() + 1 > max_segments) return "maxSegments";
  if (max_bytes > 0 && closed_bytes_ + offset_ > max_bytes) return "maxBytes";
  if (max_age > 0) {
    uint64_t due = closed_.front().closed_ms + max_age;
    if (now_real_ms >= due) return "maxAgeMs";
    *wait_ms = static_cast<int>(std::min<uint64_t>(due - now_real_ms, INT_MAX));
  }
  return nullptr;
}

bool LogFile::retention_step(uint64_t now_real_ms, uint64_t now_mono_ms, int* wait_ms) {
  const char* reason = retention_reason(now_real_ms, wait_ms);
  if (!reason) return false;
  if (now_mono_ms < delete_retry_ms_) {
    *wait_ms = static_cast<int>(delete_retry_ms_ - now_mono_ms);
    return false;
  }
  ClosedSegment& seg = closed_.front();
  if (!seg.archived && live_.retention_after_archive.load(std::memory_order_relaxed)) {
    *wait_ms = -1;  // mark_archived() comes with a wake-up
    return false;
  }
  bool deleted = true;
  if (unlink(seg.path.c_str()) != 0) {
    int err = errno;
    if (err != ENOENT) {
      io_.report(IoOp::kDelete, seg.path, err, 0, "segment kept, retried in 1 s");
      delete_retry_ms_ = now_mono_ms + kDeleteRetryMs;
      *wait_ms = static_cast<int>(kDeleteRetryMs);
      return false;
    }
    // Someone else removed it (an operator, an archive hook that moved it).
    events_.log(LogLevel::kInfo, "retention: " + seg.path + " was already gone");
    deleted = false;
  }
  closed_bytes_ -= seg.bytes;
  if (deleted) {
    stats.segments_deleted.add();
    events_.log(LogLevel::kInfo, "retention (" + std::string(reason) + "): deleted " + seg.path + " (seq " +
                                     std::to_string(seg.first_seq) + ".." + std::to_string(seg.last_seq) + ", " +
                                     std::to_string(seg.bytes) + " bytes)");
    events_.emit(SegmentDeletedEvent{seg.path, seg.first_seq, seg.bytes, reason});
  }
  closed_.pop_front();
  int next_wait;
  *wait_ms = retention_reason(now_real_ms, &next_wait) ? 0 : next_wait;
  return deleted;
}

void LogFile::postpone_rotation() { rotate_retry_ms_ = monotonic_ms() + kRotateRetryMs; }

// A new directory entry (a created or renamed file) is durable only once its
// directory is synced. Returns 0 or an errno.
int LogFile::sync_dir(const std::string& path) {
  std::string dir = dir_of(path);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return errno;
  int err = fsync(dfd) != 0 ? errno : 0;
  close_fd(dfd, dir);
  return err;
}

// Linux frees the descriptor even when close() fails, so there is nothing to
// retry; but a failed close can be the first news of a lost write (NFS).
void LogFile::close_fd(int fd, const std::string& path) {
  if (::close(fd) != 0) io_.report(IoOp::kClose, path, errno);
}

}  // namespace msgs
