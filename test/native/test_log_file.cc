// The log-file component (native/log_file.{h,cc}): new files, appends read
// back with record::scan, recovery on open (torn tail, corruption, repair,
// text lines), failed writes and fsyncs, cut_back, rotation by size and age,
// the interval sync and the cache drops on a BackgroundSync, retention.
//
// System calls fail without any test hook in the product: the binary is
// linked with -Wl,--wrap=pwrite (and fdatasync, ftruncate, fsync, close,
// unlink, sync_file_range, posix_fadvise), so LogFile's calls land in the __wrap_* functions below, which
// call the real ones unless a test armed a fault.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <poll.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "io_errors.h"
#include "log_file.h"
#include "record.h"
#include "time_util.h"

using namespace msgs;
using Bytes = std::vector<uint8_t>;
namespace fs = std::filesystem;

// ---- faults ----

struct Fault {
  int err = 0;           // errno of an injected failure
  int skip = 0;          // calls let through before the first failure
  int left = 0;          // failures still to inject
  int calls = 0;         // calls seen, failed or not
  size_t max_bytes = 0;  // pwrite only: write at most this much per call (0: all)
  bool fire() {
    calls++;
    if (left == 0) return false;
    if (skip > 0) {
      skip--;
      return false;
    }
    left--;
    return true;
  }
};

static Fault f_pwrite, f_fdatasync, f_ftruncate, f_fsync, f_close, f_unlink, f_sync_file_range, f_fadvise;

static void arm(Fault& f, int err, int times = 1, int skip = 0) {
  f.err = err;
  f.left = times;
  f.skip = skip;
}

// A held fdatasync (on the BackgroundSync's thread) waits in the wrapper
// until released, so a test can act while a sync is in flight.
static std::mutex g_hold_mu;
static std::condition_variable g_hold_cv;
static bool g_hold = false;     // the next held call waits for release_sync()
static bool g_hold_drop = false;  // the held call is sync_file_range, not fdatasync
static bool g_holding = false;  // one is waiting now
static int g_held_fd = -1;      // its descriptor
static bool g_closed_while_held = false;  // close() of that descriptor while it waited

static void hold_sync(bool drop = false) {
  std::lock_guard<std::mutex> lock(g_hold_mu);
  g_hold = true;
  g_hold_drop = drop;
}

// Holds the calls the hold is for until release_sync().
static void hold_here(int fd, bool drop) {
  std::unique_lock<std::mutex> lock(g_hold_mu);
  if (!g_hold || g_hold_drop != drop) return;
  g_holding = true;
  g_held_fd = fd;
  g_hold_cv.notify_all();
  g_hold_cv.wait(lock, [] { return !g_hold; });
  g_holding = false;
  g_held_fd = -1;
}

static void wait_until_held() {
  std::unique_lock<std::mutex> lock(g_hold_mu);
  g_hold_cv.wait(lock, [] { return g_holding; });
}

static void release_sync() {
  std::lock_guard<std::mutex> lock(g_hold_mu);
  g_hold = false;
  g_hold_cv.notify_all();
}

static void disarm() {
  for (Fault* f : {&f_pwrite, &f_fdatasync, &f_ftruncate, &f_fsync, &f_close, &f_unlink, &f_sync_file_range, &f_fadvise}) {
    *f = Fault{};
  }
}

extern "C" {
ssize_t __real_pwrite(int fd, const void* buf, size_t n, off_t off);
int __real_fdatasync(int fd);
int __real_ftruncate(int fd, off_t len);
int __real_fsync(int fd);
int __real_close(int fd);
int __real_unlink(const char* path);
int __real_sync_file_range(int fd, off_t off, off_t n, unsigned int flags);
int __real_posix_fadvise(int fd, off_t off, off_t n, int advice);

ssize_t __wrap_pwrite(int fd, const void* buf, size_t n, off_t off) {
  if (f_pwrite.fire()) {
    errno = f_pwrite.err;
    return -1;
  }
  if (f_pwrite.max_bytes && n > f_pwrite.max_bytes) n = f_pwrite.max_bytes;
  return __real_pwrite(fd, buf, n, off);
}

int __wrap_fdatasync(int fd) {
  hold_here(fd, false);
  if (f_fdatasync.fire()) {
    errno = f_fdatasync.err;
    return -1;
  }
  return __real_fdatasync(fd);
}

int __wrap_ftruncate(int fd, off_t len) {
  if (f_ftruncate.fire()) {
    errno = f_ftruncate.err;
    return -1;
  }
  return __real_ftruncate(fd, len);
}

// Only LogFile's directory syncs call fsync.
int __wrap_fsync(int fd) {
  if (f_fsync.fire()) {
    errno = f_fsync.err;
    return -1;
  }
  return __real_fsync(fd);
}

// Like Linux: the descriptor is gone even when close() fails.
int __wrap_close(int fd) {
  {
    std::lock_guard<std::mutex> lock(g_hold_mu);
    if (g_holding && fd == g_held_fd) g_closed_while_held = true;
  }
  bool fail = f_close.fire();
  int r = __real_close(fd);
  if (!fail) return r;
  errno = f_close.err;
  return -1;
}

int __wrap_unlink(const char* path) {
  if (f_unlink.fire()) {
    errno = f_unlink.err;
    return -1;
  }
  return __real_unlink(path);
}

int __wrap_sync_file_range(int fd, off_t off, off_t n, unsigned int flags) {
  hold_here(fd, true);
  if (f_sync_file_range.fire()) {
    errno = f_sync_file_range.err;
    return -1;
  }
  return __real_sync_file_range(fd, off, n, flags);
}

// Like the real one: returns the error, errno untouched.
int __wrap_posix_fadvise(int fd, off_t off, off_t n, int advice) {
  if (f_fadvise.fire()) return f_fadvise.err;
  return __real_posix_fadvise(fd, off, n, advice);
}
}

// ---- helpers ----

static std::string g_tmp;

static std::string tmp_path(const std::string& name) { return g_tmp + "/" + name; }

// A LogFile's surroundings: config, the events it emitted, its IoErrors
// (logging every failure: interval 0).
struct Fixture {
  std::vector<Event> got;
  Events events{[this](Event&& e) {
    got.push_back(std::move(e));
    return true;
  }};
  IoErrors io{events, 0};
  FileConfig cfg;
  LiveSettings live;  // retention bounds: all off unless a test sets them

  explicit Fixture(const std::string& path, uint64_t rotate_bytes = 0, uint64_t rotate_ms = 0)
      : cfg{true, path, FileFormat::kBinary, rotate_bytes, rotate_ms, FsyncPolicy::kInterval, 1000, false,
            RetentionConfig{0, 0, 0, false}, 0, false} {}
  Fixture(const Fixture&) = delete;

  template <class T>
  std::vector<T> all() const {
    std::vector<T> out;
    for (const Event& e : got)
      if (const T* t = std::get_if<T>(&e)) out.push_back(*t);
    return out;
  }
  uint64_t failed(IoOp op) const { return io.stats.failed[static_cast<int>(op)].get(); }
  uint64_t failed_total() const {
    uint64_t n = 0;
    for (int i = 0; i < kIoOps; i++) n += io.stats.failed[i].get();
    return n;
  }
  // A log line at `level` containing `text`.
  bool logged(LogLevel level, const std::string& text) const {
    for (const LogEvent& l : all<LogEvent>())
      if (l.level == level && l.message.find(text) != std::string::npos) return true;
    return false;
  }
};

// `n` binary records numbered from `first_seq`, each record_size(1, payload) bytes.
static Bytes make_records(uint64_t first_seq, int n, uint32_t payload = 50) {
  Bytes out;
  Bytes body(payload);
  const uint8_t name = 'q';
  for (int i = 0; i < n; i++) {
    uint64_t seq = first_seq + uint64_t(i);
    for (uint32_t k = 0; k < payload; k++) body[k] = uint8_t(seq + k);
    size_t at = out.size();
    out.resize(at + record::record_size(1, payload));
    record::encode(out.data() + at, seq, 1700000000000000ull + seq, 7, seq * 10, &name, 1, body.data(), payload);
  }
  return out;
}

static Bytes header() {
  Bytes h(record::kFileHeaderSize);
  record::encode_file_header(h.data());
  return h;
}

static Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

static Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

static void write_file(const std::string& path, const Bytes& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
}

static std::string text_of(const Bytes& b) { return std::string(b.begin(), b.end()); }
static Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

static uint64_t file_size(const std::string& path) { return fs::exists(path) ? fs::file_size(path) : 0; }

static record::Scan scan_file(const std::string& path) {
  Bytes b = read_file(path);
  return record::scan(b.data(), b.size());
}

static std::string segment(const std::string& dir, const char* digits) { return dir + "/" + digits + ".log"; }

static size_t count_files(const std::string& dir) {
  size_t n = 0;
  for (auto& e : fs::directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

// What open() threw (it must throw).
static std::string open_error(LogFile& log) {
  try {
    log.open();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---- a new log, appends, reopening ----

static void test_new_log_and_reopen() {
  std::string path = tmp_path("new.log");
  Bytes a = make_records(1, 3), b = make_records(4, 2, 300);
  {
    Fixture f(path);
    LogFile log(f.cfg, f.live, f.events, f.io);
    int dir_syncs = f_fsync.calls;
    CHECK_EQ(log.open(), 0u);
    CHECK_EQ(read_file(path), header());
    CHECK(f_fsync.calls > dir_syncs);  // the new file's name made durable
    CHECK_EQ(log.size(), 16u);
    CHECK_EQ(log.path(), path);
    CHECK(!log.rotating());

    CHECK(log.append(a.data(), a.size(), 3));
    CHECK(log.append(b.data(), b.size(), 2));
    CHECK_EQ(log.stats.writes.get(), 2u);
    CHECK_EQ(log.stats.records.get(), 5u);
    CHECK_EQ(log.stats.bytes.get(), a.size() + b.size());
    CHECK_EQ(log.unsynced_records(), 5u);
    CHECK_EQ(log.size(), 16 + a.size() + b.size());
    CHECK_EQ(read_file(path), cat(cat(header(), a), b));
    record::Scan s = scan_file(path);
    CHECK(s.header_ok && !s.torn && !s.corrupt);
    CHECK_EQ(s.records, 5u);
    CHECK_EQ(s.first_seq, 1u);
    CHECK_EQ(s.last_seq, 5u);
    CHECK_EQ(s.valid_end, file_size(path));

    uint64_t before = monotonic_ms();
    CHECK(log.sync());
    CHECK_EQ(log.stats.fsyncs.get(), 1u);
    CHECK_EQ(log.stats.synced_records.get(), 5u);
    CHECK_EQ(log.unsynced_records(), 0u);
    CHECK(log.last_sync_ms() >= before);
    CHECK(f.got.empty());  // nothing went wrong, nothing to say
    CHECK_EQ(f.failed_total(), 0u);
  }
  {
    Fixture f(path);
    LogFile log(f.cfg, f.live, f.events, f.io);
    CHECK_EQ(log.open(), 5u);
    CHECK_EQ(log.size(), file_size(path));
    Bytes c = make_records(6, 1);
    CHECK(log.append(c.data(), c.size(), 1));
    record::Scan s = scan_file(path);
    CHECK_EQ(s.records, 6u);
    CHECK_EQ(s.last_seq, 6u);
    CHECK(!s.torn && !s.corrupt);
    CHECK(f.got.empty());
  }
}

// Short writes continue where they stopped; EINTR is retried.
static void test_short_writes_and_eintr() {
  std::string path = tmp_path("short.log");
  Fixture f(path);
  LogFile log(f.cfg, f.live, f.events, f.io);
  log.open();
  Bytes a = make_records(1, 4);
  f_pwrite.max_bytes = 7;
  arm(f_pwrite, EINTR, 2, 3);
  int calls = f_pwrite.calls;
  CHECK(log.append(a.data(), a.size(), 4));
  CHECK(f_pwrite.calls - calls > int(a.size() / 7));
  disarm();
  CHECK_EQ(read_file(path), cat(header(), a));
  CHECK_EQ(log.stats.writes.get(), 1u);
  CHECK(f.got.empty());
}

// ---- recovery ----

static void test_torn_tail() {
  std::mt19937 rng(7);
  for (int kind = 0; kind < 2; kind++) {
    check::context() = kind == 0 ? "partial record" : "garbage";
    std::string path = tmp_path(kind == 0 ? "torn-partial.log" : "torn-garbage.log");
    Bytes good = cat(header(), make_records(1, 4));
    Bytes tail;
    if (kind == 0) {
      Bytes rec = make_records(5, 1, 500);
      tail.assign(rec.begin(), rec.begin() + 300);  // a record cut in half
    } else {
      tail.resize(777);
      for (auto& x : tail) x = uint8_t(rng());
    }
    write_file(path, cat(good, tail));

    Fixture f(path);
    LogFile log(f.cfg, f.live, f.events, f.io);
    CHECK_EQ(log.open(), 4u);
    CHECK_EQ(read_file(path), good);
    CHECK_EQ(log.size(), good.size());
    CHECK_EQ(log.stats.torn_bytes_cut.get(), tail.size());
    std::string msg = path + ": cut a torn tail of " + std::to_string(tail.size()) + " bytes at offset " +
                      std::to_string(good.size()) + " (last good seq 4)";
    auto rec = f.all<RecoveredEvent>();
    CHECK_EQ(rec.size(), 1u);
    if (!rec.empty()) {
      CHECK_EQ(rec[0].message, msg);
      CHECK_EQ(rec[0].offset, good.size());
      CHECK_EQ(rec[0].bytes_cut, tail.size());
      CHECK_EQ(rec[0].last_seq, 4u);
    }
    CHECK(f.logged(LogLevel::kWarn, msg));
    CHECK_EQ(f.failed_total(), 0u);

    Bytes next = make_records(5, 1);
    CHECK(log.append(next.data(), next.size(), 1));
    record::Scan s = scan_file(path);
    CHECK(!s.torn && !s.corrupt);
    CHECK_EQ(s.records, 5u);
    CHECK_EQ(s.last_seq, 5u);
  }
  check::context().clear();

  // A failed fdatasync after the cut stops the start (the cut could come back).
  std::string path = tmp_path("torn-nosync.log");
  write_file(path, cat(cat(header(), make_records(1, 2)), Bytes(40, 0xee)));
  Fixture f(path);
  LogFile log(f.cfg, f.live, f.events, f.io);
  arm(f_fdatasync, EIO);
  CHECK_EQ(open_error(log), "cannot fsync " + path + " after cutting its torn tail: Input/output error");
  disarm();
  CHECK_EQ(f.failed_total(), 0u);  // thrown, not also reported
}

static void test_corruption() {
  std::string path = tmp_path("mid.log");
  Bytes recs = make_records(1, 6);
  size_t rec_size = recs.size() / 6;
  uint64_t bad = 16 + 2 * rec_size;  // record 3
  Bytes damaged = cat(header(), recs);
  damaged[bad + 20] ^= 0xff;
  damaged[bad + 21] ^= 0xff;
  write_file(path, damaged);

  {
    Fixture f(path);
    LogFile log(f.cfg, f.live, f.events, f.io);
    CHECK_EQ(open_error(log), path + ": corrupt record at byte offset " + std::to_string(bad) +
                                  " (valid records resume at offset " + std::to_string(bad + rec_size) +
                                  "); start with file.repair = true to set the damaged file aside");
    CHECK_EQ(read_file(path), damaged);  // left as it was
    CHECK(f.got.empty());
  }
  {
    Fixture f(path);
    f.cfg.repair = true;
    LogFile log(f.cfg, f.live, f.events, f.io);
    CHECK_EQ(log.open(), 6u);  // the highest seq anywhere, also after the damage
    CHECK_EQ(read_file(path), header());
    std::string aside;
    for (auto& e : fs::directory_iterator(g_tmp))
      if (e.path().filename().string().rfind("mid.log.corrupt-", 0) == 0) aside = e.path().string();
    CHECK(!aside.empty());
    CHECK_EQ(read_file(aside), damaged);
    auto rec = f.all<RecoveredEvent>();
    CHECK_EQ(rec.size(), 1u);
    if (!rec.empty()) {
      CHECK_EQ(rec[0].message, "repaired: damaged file kept as " + aside);
      CHECK_EQ(rec[0].offset, bad);
      CHECK_EQ(rec[0].bytes_cut, 0u);
      CHECK_EQ(rec[0].last_seq, 6u);
    }
    CHECK(f.logged(LogLevel::kWarn, "corrupt record at byte offset " + std::to_string(bad) +
                                        "; damaged file kept as " + aside + ", continuing in a clean file after seq 6"));
    Bytes next = make_records(7, 1);
    CHECK(log.append(next.data(), next.size(), 1));
    CHECK_EQ(scan_file(path).first_seq, 7u);
  }
}

static void test_not_a_log() {
  std::string path = tmp_path("notlog.log");
  write_file(path, bytes_of("hello, this is not a log file at all\n"));
  Fixture f(path);
  LogFile log(f.cfg, f.live, f.events, f.io);
  CHECK_EQ(open_error(log), path + " is not a msgserver log (bad file header); refusing to append to it");
  CHECK_EQ(text_of(read_file(path)), "hello, this is not a log file at all\n");

  // A header cut short by a crash at creation is written again.
  std::string cut = tmp_path("cut-header.log");
  Bytes h = header();
  write_file(cut, Bytes(h.begin(), h.begin() + 5));
  Fixture g(cut);
  LogFile log2(g.cfg, g.live, g.events, g.io);
  CHECK_EQ(log2.open(), 0u);
  CHECK_EQ(read_file(cut), header());
  CHECK_EQ(log2.size(), 16u);
}

// Failures that stop the start throw a message fit for the user and are
// not also reported; a failed directory sync does not stop it and is.
static void test_open_errors() {
  {
    std::string path = tmp_path("missing/x.log");
    Fixture f(path);
    LogFile log(f.cfg, f.live, f.events, f.io);
    CHECK_EQ(open_error(log), "cannot open " + path + ": No such file or directory");
    CHECK_EQ(f.failed_total(), 0u);
    CHECK(f.got.empty());
  }
  {
    Fixture f(g_tmp);
    LogFile log(f.cfg, f.live, f.events, f.io);
    CHECK_EQ(open_error(log), "cannot open " + g_tmp + ": Is a directory");
  }
  {
    std::string plain = tmp_path("plain");
    write_file(plain, bytes_of("x"));
    Fixture f(plain + "/segs", 4096);
    LogFile log(f.cfg, f.live, f.events, f.io);
    CHECK_EQ(open_error(log), "cannot create directory " + plain + "/segs: Not a directory");
    Fixture g(plain, 4096);
    LogFile log2(g.cfg, g.live, g.events, g.io);
    // Rotation on a file that is not a log: says so, and how to turn rotation off.
    std::string e2 = open_error(log2);
    CHECK(e2.find("file.path " + plain + " is a single log file") != std::string::npos);
    CHECK(e2.find("not a binary msgserver log") != std::string::npos);
  }
  {
    std::string path = tmp_path("header-nosync.log");
    Fixture f(path);
    LogFile log(f.cfg, f.live, f.events, f.io);
    arm(f_fdatasync, EIO);
    CHECK_EQ(open_error(log), "cannot fsync " + path + ": Input/output error");
    disarm();
    CHECK_EQ(f.failed_total(), 0u);
  }
  {
    std::string path = tmp_path("dir-nosync.log");
    Fixture f(path);
    LogFile log(f.cfg, f.live, f.events, f.io);
    arm(f_fsync, EIO);
    CHECK_EQ(log.open(), 0u);
    disarm();
    CHECK_EQ(f.failed(IoOp::kDirSync), 1u);
    auto errs = f.all<IoErrorEvent>();
    CHECK_EQ(errs.size(), 1u);
    if (!errs.empty()) {
      CHECK_EQ(errs[0].op, std::string("dirSync"));
      CHECK_EQ(errs[0].path, path);
      CHECK_EQ(errs[0].err, EIO);
      CHECK_EQ(errs[0].records, 0u);
    }
    CHECK(f.logged(LogLevel::kError, "cannot sync the directory of " + path + ": Input/output error"));
    Bytes a = make_records(1, 1);
    CHECK(log.append(a.data(), a.size(), 1));  // the file works
  }
}

// ---- failed writes and syncs ----

static void test_failed_append() {
  std::string path = tmp_path("fail-write.log");
  Fixture f(path);
  LogFile log(f.cfg, f.live, f.events, f.io);
  log.open();
  Bytes a = make_records(1, 2), b = make_records(3, 3);
  CHECK(log.append(a.data(), a.size(), 2));
  Bytes before = read_file(path);

  // Three short writes land, then the disk is full: 30 bytes to take back.
  f_pwrite.max_bytes = 10;
  arm(f_pwrite, ENOSPC, 1, 3);
  CHECK(!log.append(b.data(), b.size(), 3));
  disarm();
  CHECK_EQ(read_file(path), before);
  CHECK_EQ(log.size(), before.size());
  CHECK_EQ(log.stats.writes.get(), 1u);
  CHECK_EQ(log.stats.records.get(), 2u);
  CHECK_EQ(log.unsynced_records(), 2u);
  CHECK_EQ(f.failed(IoOp::kWrite), 1u);
  CHECK_EQ(f.failed(IoOp::kTruncate), 0u);
  auto errs = f.all<IoErrorEvent>();
  CHECK_EQ(errs.size(), 1u);
  if (!errs.empty()) {
    CHECK_EQ(errs[0].op, std::string("write"));
    CHECK_EQ(errs[0].err, ENOSPC);
    CHECK_EQ(errs[0].records, 3u);
    CHECK_EQ(errs[0].message, "cannot write " + path + ": No space left on device");
  }
  CHECK(f.logged(LogLevel::kError, "cannot write " + path + ": No space left on device; 3 messages answered WRITE_FAILED"));

  // The next try works, right after the good records.
  CHECK(log.append(b.data(), b.size(), 3));
  CHECK_EQ(read_file(path), cat(before, b));
}

// The cut after a failed write fails too: nothing is written behind the
// failed bytes until a cut succeeds.
static void test_failed_append_and_cut() {
  std::string path = tmp_path("fail-cut.log");
  Fixture f(path);
  LogFile log(f.cfg, f.live, f.events, f.io);
  log.open();
  Bytes a = make_records(1, 2), b = make_records(3, 3), c = make_records(3, 1);
  CHECK(log.append(a.data(), a.size(), 2));
  uint64_t good = log.size();

  f_pwrite.max_bytes = 100;
  arm(f_pwrite, EIO, 1, 1);
  arm(f_ftruncate, EIO);
  CHECK(!log.append(b.data(), b.size(), 3));
  CHECK_EQ(f.failed(IoOp::kWrite), 1u);
  CHECK_EQ(f.failed(IoOp::kTruncate), 1u);
  CHECK_EQ(log.size(), good);
  CHECK(file_size(path) > good);  // the failed bytes are still there
  CHECK(f.logged(LogLevel::kError, "cannot truncate " + path + ": Input/output error; failed records stay after offset " +
                                       std::to_string(good)));

  // Still failing: the append does not write at all, and says why.
  arm(f_ftruncate, EIO);
  int writes = f_pwrite.calls;
  CHECK(!log.append(c.data(), c.size(), 1));
  CHECK_EQ(f_pwrite.calls, writes);
  CHECK_EQ(f.failed(IoOp::kTruncate), 2u);
  auto errs = f.all<IoErrorEvent>();
  CHECK(!errs.empty());
  if (!errs.empty()) {
    CHECK_EQ(errs.back().op, std::string("truncate"));
    CHECK_EQ(errs.back().records, 1u);
  }

  // The rotation of a segment with failed bytes at its end waits too: see
  // test_rotation_failures. Here: the cut works again, so does the append.
  disarm();
  CHECK(log.append(c.data(), c.size(), 1));
  record::Scan s = scan_file(path);
  CHECK(!s.torn && !s.corrupt);
  CHECK_EQ(s.records, 3u);
  CHECK_EQ(s.valid_end, file_size(path));
}

static void test_failed_sync() {
  std::string path = tmp_path("fail-sync.log");
  Fixture f(path);
  LogFile log(f.cfg, f.live, f.events, f.io);
  log.open();
  Bytes a = make_records(1, 2);
  CHECK(log.append(a.data(), a.size(), 2));
  uint64_t last_good = log.last_sync_ms();
  arm(f_fdatasync, EIO);
  CHECK(!log.sync());
  disarm();
  CHECK_EQ(log.last_sync_ms(), last_good);
  CHECK_EQ(log.unsynced_records(), 0u);  // not known to be on disk, and never counted as synced
  CHECK_EQ(log.stats.fsyncs.get(), 0u);
  CHECK_EQ(log.stats.synced_records.get(), 0u);
  CHECK_EQ(f.failed(IoOp::kFsync), 1u);
  auto errs = f.all<IoErrorEvent>();
  CHECK_EQ(errs.size(), 1u);
  if (!errs.empty()) {
    CHECK_EQ(errs[0].op, std::string("fsync"));
    CHECK_EQ(errs[0].path, path);
    CHECK_EQ(errs[0].err, EIO);
    CHECK_EQ(errs[0].records, 0u);  // the caller decides the ACKs
  }
  CHECK(f.logged(LogLevel::kError, "cannot fsync " + path +
                                       ": Input/output error; 2 records written since the last good sync are not known "
                                       "to be on disk"));
  CHECK(log.sync());
  CHECK_EQ(log.unsynced_records(), 0u);
  CHECK_EQ(log.stats.synced_records.get(), 0u);  // a later good fsync proves nothing about them
  Bytes b = make_records(3, 1);
  CHECK(log.append(b.data(), b.size(), 1));
  CHECK(log.sync());
  CHECK_EQ(log.stats.synced_records.get(), 1u);
}

static void test_cut_back() {
  std::string path = tmp_path("cut-back.log");
  Fixture f(path);
  LogFile log(f.cfg, f.live, f.events, f.io);
  log.open();
  Bytes a = make_records(1, 2), b = make_records(3, 3);
  CHECK(log.append(a.data(), a.size(), 2));
  CHECK(log.sync());
  CHECK(log.append(b.data(), b.size(), 3));
  arm(f_fdatasync, EIO);
  CHECK(!log.sync());
  disarm();
  log.cut_back(b.size(), 3);
  CHECK_EQ(log.size(), 16 + a.size());
  CHECK_EQ(read_file(path), cat(header(), a));
  CHECK_EQ(log.unsynced_records(), 0u);
  CHECK_EQ(log.stats.records.get(), 5u);  // stats count what was written
  CHECK_EQ(log.stats.bytes.get(), a.size() + b.size());

  // A failed cut is reported, and the next append cuts first.
  CHECK(log.append(b.data(), b.size(), 3));
  arm(f_ftruncate, EIO);
  log.cut_back(b.size(), 3);
  disarm();
  CHECK_EQ(f.failed(IoOp::kTruncate), 1u);
  CHECK_EQ(log.size(), 16 + a.size());
  Bytes c = make_records(3, 1);
  CHECK(log.append(c.data(), c.size(), 1));
  CHECK_EQ(read_file(path), cat(cat(header(), a), c));
  CHECK_EQ(log.unsynced_records(), 1u);
}

// ---- the interval sync on a BackgroundSync ----

// Waits (bounded) for the background sync to finish, as the writer does.
static bool wait_finished(LogFile& log, Notifier& wake) {
  for (int i = 0; i < 100 && !log.background_finished(); i++) {
    wake.prepare_sleep();
    if (log.background_finished()) {
      wake.cancel_sleep();
      break;
    }
    wake.wait(100);
  }
  return log.background_finished();
}

static void test_background_sync() {
  std::string path = tmp_path("background.log");
  Fixture f(path);
  Notifier wake;
  BackgroundSync bg(wake);
  bg.start();
  LogFile log(f.cfg, f.live, f.events, f.io, &bg);
  log.open();
  Bytes a = make_records(1, 2), b = make_records(3, 3), c = make_records(6, 1);
  CHECK(log.append(a.data(), a.size(), 2));
  int calls_before = f_fdatasync.calls;

  // In flight: appends go on, a second start waits for the first, nothing
  // is counted synced yet.
  hold_sync();
  log.sync_in_background();
  wait_until_held();
  CHECK(log.background_busy());
  CHECK(!log.background_finished());
  CHECK(!log.collect_background());
  CHECK(log.append(b.data(), b.size(), 3));
  log.sync_in_background();
  CHECK_EQ(log.stats.fsyncs.get(), 0u);
  // The writer about to sleep (armed, nothing finished): the sync's end must
  // wake it through its notifier.
  wake.prepare_sleep();
  CHECK(!log.background_finished());
  release_sync();
  pollfd p{wake.fd(), POLLIN, 0};
  CHECK_EQ(poll(&p, 1, 10000), 1);  // signalled (a missing wake-up would time out)
  wake.drain();
  wake.cancel_sleep();
  CHECK(log.background_finished());
  CHECK(log.collect_background());
  CHECK_EQ(f_fdatasync.calls, calls_before + 1);  // one sync, not two
  CHECK(!log.background_busy());
  CHECK(!log.background_finished());
  // It covered the records unsynced when it began, not those appended since.
  CHECK_EQ(log.stats.fsyncs.get(), 1u);
  CHECK_EQ(log.stats.synced_records.get(), 2u);
  CHECK_EQ(log.unsynced_records(), 3u);
  CHECK(!log.collect_background());

  // A failed one is reported like sync()'s; its records are never counted synced.
  arm(f_fdatasync, EIO);
  log.sync_in_background();
  CHECK(wait_finished(log, wake));
  CHECK(log.collect_background());
  disarm();
  CHECK_EQ(f.failed(IoOp::kFsync), 1u);
  CHECK_EQ(log.unsynced_records(), 0u);
  CHECK_EQ(log.stats.synced_records.get(), 2u);
  CHECK(f.logged(LogLevel::kError, "cannot fsync " + path +
                                       ": Input/output error; 3 records written since the last good sync are not known "
                                       "to be on disk"));

  // sync() waits for one in flight and applies it before its own.
  CHECK(log.append(c.data(), c.size(), 1));
  log.sync_in_background();
  CHECK(log.sync());
  CHECK(!log.background_busy());
  CHECK_EQ(log.stats.fsyncs.get(), 3u);
  CHECK_EQ(log.stats.synced_records.get(), 3u);
  CHECK_EQ(log.unsynced_records(), 0u);
  CHECK_EQ(read_file(path), cat(cat(cat(header(), a), b), c));
}

// Rotation and the destructor close the fd: a sync in flight is waited for
// first, never left running on a closed (or reused) descriptor.
static void test_background_sync_and_close() {
  std::string dir = tmp_path("background-segs");
  Fixture f(dir, 200);
  Notifier wake;
  BackgroundSync bg(wake);
  bg.start();
  {
    LogFile log(f.cfg, f.live, f.events, f.io, &bg);
    log.open();
    Bytes a = make_records(1, 2);
    CHECK(log.append(a.data(), a.size(), 2));
    hold_sync();
    log.sync_in_background();
    wait_until_held();
    std::thread releaser([] {
      // Not synchronisation: a delay that gives a rotate() that closed the
      // fd without waiting the time to do it while the sync is held.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      release_sync();
    });
    log.rotate(3);  // waits for the held sync, then syncs and closes the segment
    releaser.join();
    CHECK(!g_closed_while_held);
    CHECK(!log.background_busy());
    CHECK_EQ(log.stats.rotations.get(), 1u);
    CHECK_EQ(log.stats.synced_records.get(), 2u);
    CHECK_EQ(f_fdatasync.calls >= 2, true);
    Bytes b = make_records(3, 1);
    CHECK(log.append(b.data(), b.size(), 1));
    log.sync_in_background();
  }  // the destructor waits for that sync before it closes
  CHECK(!bg.in_flight());
  CHECK_EQ(f.failed_total(), 0u);
}

// Without its thread (never started, or stopped) a BackgroundSync syncs on
// the caller's thread: nothing waits for a thread that is not there.
static void test_background_sync_without_thread() {
  std::string path = tmp_path("background-inline.log");
  Fixture f(path);
  Notifier wake;
  BackgroundSync bg(wake);
  LogFile log(f.cfg, f.live, f.events, f.io, &bg);
  log.open();
  Bytes a = make_records(1, 2);
  CHECK(log.append(a.data(), a.size(), 2));
  int calls = f_fdatasync.calls;
  log.sync_in_background();
  CHECK_EQ(f_fdatasync.calls, calls + 1);  // done before it returned
  CHECK(log.background_finished());
  CHECK(log.collect_background());
  CHECK_EQ(log.stats.synced_records.get(), 2u);
  bg.start();
  bg.stop();
  CHECK(log.append(a.data(), a.size(), 2));
  log.sync_in_background();
  CHECK(log.collect_background());
  CHECK_EQ(log.stats.synced_records.get(), 4u);
}

// ---- the cache drops (file.dropCache) ----

// Whether the page-cache checks mean anything: on tmpfs the pages are the
// file, and no drop can take them (set in main()).
static bool g_cache_checks = true;

// Pages of `path` lying wholly in [from, to) that are in the page cache.
static size_t cached_pages(const std::string& path, uint64_t from, uint64_t to) {
  const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  uint64_t first = (from + page - 1) / page, end = to / page;
  if (end <= first) return 0;
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return 0;
  size_t len = size_t((end - first) * page);
  void* map = mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, off_t(first * page));  // maps, reads nothing
  __real_close(fd);
  if (map == MAP_FAILED) return 0;
  std::vector<unsigned char> in(end - first);
  size_t n = 0;
  if (mincore(map, len, in.data()) == 0) {
    for (unsigned char c : in) n += c & 1;
  }
  munmap(map, len);
  return n;
}

// Records just over one drop chunk.
static Bytes drop_chunk(uint64_t first_seq) {
  int n = int(LogFile::kDropChunkBytes / record::record_size(1, 1000)) + 1;
  return make_records(first_seq, n, 1000);
}

// An open log (drop_cache as given) with its BackgroundSync thread running.
struct DropFixture {
  Fixture f;
  Notifier wake;
  BackgroundSync bg{wake};
  LogFile log;
  DropFixture(const std::string& path, bool drop, uint64_t rotate_bytes = 0)
      : f(path, rotate_bytes), log((f.cfg.drop_cache = drop, f.cfg), f.live, f.events, f.io, &bg) {
    bg.start();
    log.open();
  }
};

// Written pages leave the cache one chunk behind the writer: a chunk's
// writeback starts when it is complete, its pages go with the next one.
// The log's own sync() makes the pages clean in between, so what the drop
// leaves is not a matter of the disk's speed. A failed drop is reported and
// changes nothing else. Without drop_cache the pages stay: the check can fail.
static void test_drop_cache() {
  for (bool drop : {false, true}) {
    std::string path = tmp_path(drop ? "drop.log" : "keep.log");
    DropFixture d(path, drop);
    Fixture& f = d.f;
    Notifier& wake = d.wake;
    LogFile& log = d.log;
    int calls = f_sync_file_range.calls;
    Bytes a = drop_chunk(1);
    uint64_t n = a.size() / record::record_size(1, 1000);
    CHECK(log.append(a.data(), a.size(), n));
    uint64_t end_a = log.size();
    CHECK_EQ(log.background_busy(), drop);  // the first chunk's writeback began
    if (drop) CHECK(wait_finished(log, wake));
    CHECK(log.sync());
    if (g_cache_checks) CHECK(cached_pages(path, record::kFileHeaderSize, end_a) > 0);  // only its writeback began
    Bytes b = drop_chunk(1 + n);
    CHECK(log.append(b.data(), b.size(), n));
    if (drop) {
      CHECK(wait_finished(log, wake));
      CHECK(log.collect_background());
    }
    CHECK_EQ(f_sync_file_range.calls, calls + (drop ? 2 : 0));
    if (g_cache_checks) {
      // Up to the folio boundary below end_a: the folio that straddles it
      // goes with the next drop.
      size_t left = cached_pages(path, 0, end_a - end_a % LogFile::kDropAlignBytes);
      if (drop) {
        CHECK_EQ(left, 0u);
      } else {
        CHECK(left > 0);
      }
      CHECK(cached_pages(path, end_a, log.size()) > 0);  // the last chunk: one behind
    }
    CHECK_EQ(f.failed_total(), 0u);
    CHECK_EQ(log.stats.synced_records.get(), n);  // a drop is no sync
    CHECK_EQ(log.unsynced_records(), n);
    if (!drop) continue;

    // A failed drop: reported (counted, logged, an error event), and only
    // the cache is the worse for it.
    arm(f_sync_file_range, EIO);
    Bytes c = drop_chunk(1 + 2 * n);
    CHECK(log.append(c.data(), c.size(), n));
    CHECK(wait_finished(log, wake));
    CHECK(log.collect_background());
    disarm();
    CHECK_EQ(f.failed(IoOp::kWriteback), 1u);
    CHECK_EQ(f.failed_total(), 1u);
    CHECK(f.logged(LogLevel::kError, "cannot drop the cached pages of " + path +
                                         ": Input/output error; nothing is lost: the pages stay cached, and the "
                                         "next fsync reports whether they reached the disk"));
    CHECK_EQ(log.unsynced_records(), 2 * n);
    CHECK(log.sync());
    CHECK_EQ(log.stats.synced_records.get(), 3 * n);

    // sync() goes on beside a drop in flight: a durable flush does not wait
    // for the drop's disk work too.
    hold_sync(true);
    Bytes e = drop_chunk(1 + 3 * n);
    CHECK(log.append(e.data(), e.size(), n));
    wait_until_held();
    auto synced = std::async(std::launch::async, [&log] { return log.sync(); });
    bool returned = synced.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
    CHECK(log.background_busy());
    release_sync();
    CHECK(returned);
    CHECK(synced.get());
    CHECK_EQ(log.stats.synced_records.get(), 4 * n);
    CHECK(wait_finished(log, wake));
    CHECK(log.collect_background());
    CHECK_EQ(f.failed_total(), 1u);
    CHECK_EQ(read_file(path).size(), log.size());
  }
}

// An interval sync that falls due during a drop is owed, and starts when
// the drop is collected, before any further drop: a stream of drops cannot
// hold it off. After it, the sweep drops every page it made clean.
static void test_drop_cache_owes_sync() {
  std::string path = tmp_path("drop-owed.log");
  DropFixture d(path, true);
  Fixture& f = d.f;
  Notifier& wake = d.wake;
  LogFile& log = d.log;
  int drops = f_sync_file_range.calls, syncs = f_fdatasync.calls;
  hold_sync(true);
  Bytes a = drop_chunk(1);
  uint64_t n = a.size() / record::record_size(1, 1000);
  CHECK(log.append(a.data(), a.size(), n));
  wait_until_held();
  CHECK(!log.sync_pending());
  log.sync_in_background();
  CHECK(log.sync_pending());
  CHECK_EQ(f_fdatasync.calls, syncs);  // owed, not started beside the drop
  release_sync();
  CHECK(wait_finished(log, wake));
  Bytes b = drop_chunk(1 + n);
  CHECK(log.append(b.data(), b.size(), n));  // collects the drop: the owed sync starts, no new drop
  uint64_t end_b = log.size();
  CHECK(log.background_busy());
  CHECK(wait_finished(log, wake));
  CHECK(log.collect_background());
  CHECK_EQ(f_fdatasync.calls, syncs + 1);
  CHECK_EQ(f_sync_file_range.calls, drops + 1);
  CHECK_EQ(log.stats.synced_records.get(), 2 * n);
  CHECK(!log.sync_pending());
  // The good sync made every page clean: a sweep drops them all, the tail
  // that no chunk's drop reached included.
  CHECK(log.background_busy());
  CHECK(wait_finished(log, wake));
  CHECK(log.collect_background());
  if (g_cache_checks) CHECK_EQ(cached_pages(path, 0, end_b - end_b % LogFile::kDropAlignBytes), 0u);
  Bytes c = drop_chunk(1 + 2 * n);
  CHECK(log.append(c.data(), c.size(), n));  // the next drop
  CHECK(wait_finished(log, wake));
  CHECK(log.collect_background());
  CHECK_EQ(f_sync_file_range.calls, drops + 2);
  CHECK_EQ(f.failed_total(), 0u);
}

// A closed segment is synced, so it leaves the cache whole; a failed drop
// of it is reported and the rotation goes on.
static void test_drop_cache_rotation() {
  std::string dir = tmp_path("drop-segs");
  DropFixture d(dir, true, 64 << 20);
  Fixture& f = d.f;
  LogFile& log = d.log;
  Bytes a = make_records(1, 100, 1000);
  CHECK(log.append(a.data(), a.size(), 100));
  std::string first = log.path();
  if (g_cache_checks) CHECK(cached_pages(first, 0, log.size()) > 0);
  log.rotate(101);
  CHECK_EQ(log.stats.rotations.get(), 1u);
  if (g_cache_checks) CHECK_EQ(cached_pages(first, 0, fs::file_size(first)), 0u);
  CHECK(log.append(a.data(), a.size(), 100));
  std::string second = log.path();
  arm(f_fadvise, EIO);
  log.rotate(201);
  disarm();
  CHECK_EQ(log.stats.rotations.get(), 2u);
  CHECK_EQ(f.failed(IoOp::kWriteback), 1u);
  CHECK(f.logged(LogLevel::kError, "cannot drop the cached pages of " + second + ": Input/output error; nothing is lost"));
  if (g_cache_checks) CHECK(cached_pages(second, 0, fs::file_size(second)) > 0);
}

// ---- rotation ----

static void test_rotation_by_size() {
  std::string dir = tmp_path("segs");
  Bytes r1 = make_records(1, 3, 262);  // 300-byte records
  CHECK_EQ(r1.size(), 900u);
  std::string first = segment(dir, "00000000000000000001");
  std::string second = segment(dir, "00000000000000000004");
  {
    Fixture f(dir, 1000);
    LogFile log(f.cfg, f.live, f.events, f.io);
    CHECK_EQ(log.open(), 0u);
    CHECK(log.rotating());
    CHECK_EQ(log.path(), first);
    CHECK_EQ(read_file(first), header());
    CHECK(!log.rotation_due(0, 5000));  // a segment always takes one record
    CHECK(log.append(r1.data(), r1.size(), 3));
    CHECK(!log.rotation_due(0, 84));  // exactly 1000: fits
    CHECK(log.rotation_due(0, 85));
    int w;
    CHECK(!log.rotation_due_by_age(monotonic_ms() + 100000, &w));  // no age bound
    CHECK_EQ(w, -1);

    log.rotate(4);
    auto rot = f.all<RotateEvent>();
    CHECK_EQ(rot.size(), 1u);
    if (!rot.empty()) {
      CHECK_EQ(rot[0].closed, first);
      CHECK_EQ(rot[0].next, second);
    }
    CHECK_EQ(log.stats.rotations.get(), 1u);
    CHECK_EQ(log.stats.fsyncs.get(), 1u);  // the closed segment
    CHECK_EQ(log.stats.synced_records.get(), 3u);
    CHECK_EQ(log.unsynced_records(), 0u);
    CHECK_EQ(log.path(), second);
    CHECK_EQ(log.size(), 16u);
    CHECK_EQ(read_file(second), header());
    CHECK_EQ(read_file(first), cat(header(), r1));
    CHECK(!log.rotation_due(0, 5000));
    Bytes r2 = make_records(4, 1, 262);
    CHECK(log.append(r2.data(), r2.size(), 1));
    CHECK_EQ(scan_file(second).first_seq, 4u);
    CHECK_EQ(f.failed_total(), 0u);
  }
  {
    // The last segment is the active one; the sequence continues from it.
    Fixture f(dir, 1000);
    LogFile log(f.cfg, f.live, f.events, f.io);
    CHECK_EQ(log.open(), 4u);
    CHECK_EQ(log.path(), second);
    log.rotate(5);
    CHECK_EQ(log.path(), segment(dir, "00000000000000000005"));
  }
  {
    // An empty active segment says where the sequence stands.
    Fixture f(dir, 1000);
    LogFile log(f.cfg, f.live, f.events, f.io);
    CHECK_EQ(log.open(), 4u);
    CHECK_EQ(log.path(), segment(dir, "00000000000000000005"));
    CHECK_EQ(count_files(dir), 3u);
  }
}

static void test_rotation_by_age() {
  std::string dir = tmp_path("aged");
  Fixture f(dir, 0, 50);
  LogFile log(f.cfg, f.live, f.events, f.io);
  uint64_t t0 = monotonic_ms();
  log.open();
  CHECK(log.rotating());
  int w = 0;
  CHECK(!log.rotation_due_by_age(t0 + 100000, &w));  // no records: never
  CHECK_EQ(w, -1);
  Bytes a = make_records(1, 1);
  CHECK(log.append(a.data(), a.size(), 1));
  CHECK(!log.rotation_due(0, 1u << 30));  // no size bound
  uint64_t now = monotonic_ms();
  if (now < t0 + 40) {  // the coarse clock may already be a tick on
    CHECK(!log.rotation_due_by_age(now, &w));
    CHECK(w > 0 && w <= 50);
  }
  CHECK(log.rotation_due_by_age(now + 60, &w));
  log.rotate(2);
  CHECK_EQ(log.path(), segment(dir, "00000000000000000002"));
  CHECK(!log.rotation_due_by_age(now + 100000, &w));  // the new one holds nothing
  CHECK_EQ(f.all<RotateEvent>().size(), 1u);
}

static void test_rotation_failures() {
  std::string dir = tmp_path("rotfail");
  Fixture f(dir, 1000);
  LogFile log(f.cfg, f.live, f.events, f.io);
  log.open();
  std::string first = segment(dir, "00000000000000000001");
  std::string next = segment(dir, "00000000000000000004");
  Bytes r = make_records(1, 3, 262);
  CHECK(log.append(r.data(), r.size(), 3));

  // The closed segment cannot be synced: no rotation.
  arm(f_fdatasync, EIO);
  log.rotate(4);
  disarm();
  CHECK(f.all<RotateEvent>().empty());
  CHECK_EQ(log.path(), first);
  CHECK_EQ(count_files(dir), 1u);
  CHECK_EQ(log.stats.rotations.get(), 0u);
  CHECK_EQ(log.unsynced_records(), 0u);
  CHECK_EQ(f.failed(IoOp::kFsync), 1u);
  CHECK(f.logged(LogLevel::kError, "cannot fsync " + first + ": Input/output error; 3 records written since the last "
                                       "good sync are not known to be on disk; not rotating, still writing " + first));
  // Neither bound is due again at once: a failing disk is not retried per record.
  CHECK(!log.rotation_due(0, 300));
  // Writing goes on in the old segment.
  Bytes r4 = make_records(4, 1, 262);
  CHECK(log.append(r4.data(), r4.size(), 1));
  CHECK_EQ(scan_file(first).records, 4u);
  next = segment(dir, "00000000000000000005");

  // The new segment's header cannot be synced: deleted, old one kept.
  arm(f_fdatasync, EIO, 1, 1);  // the old segment's sync works
  log.rotate(5);
  disarm();
  CHECK(!fs::exists(next));
  CHECK_EQ(log.path(), first);
  CHECK_EQ(log.stats.fsyncs.get(), 1u);
  CHECK_EQ(f.failed(IoOp::kFsync), 2u);
  CHECK(f.logged(LogLevel::kError, "cannot fsync " + next + ": Input/output error; not rotating, still writing " + first));

  // Its directory entry cannot be synced: the same.
  arm(f_fsync, EIO);
  log.rotate(5);
  disarm();
  CHECK(!fs::exists(next));
  CHECK_EQ(log.path(), first);
  CHECK_EQ(f.failed(IoOp::kDirSync), 1u);

  // ...and it cannot be deleted either: reported, with what to do.
  arm(f_fsync, EIO);
  arm(f_unlink, EACCES);
  log.rotate(5);
  disarm();
  CHECK(fs::exists(next));
  CHECK_EQ(f.failed(IoOp::kDelete), 1u);
  CHECK(f.logged(LogLevel::kError, "cannot delete " + next + ": Permission denied; remove it before the next start"));
  CHECK_EQ(log.path(), first);

  // A file already there is not ours: reported, left alone.
  write_file(next, bytes_of("keep"));
  int unlinks = f_unlink.calls;
  log.rotate(5);
  CHECK_EQ(f.failed(IoOp::kOpen), 1u);
  int open_err = f.all<IoErrorEvent>().back().err;
  CHECK_EQ(open_err, EEXIST);
  CHECK_EQ(f_unlink.calls, unlinks);
  CHECK_EQ(text_of(read_file(next)), "keep");
  fs::remove(next);

  // Failed bytes at the end of the segment that cannot be cut: no rotation.
  f_pwrite.max_bytes = 100;
  arm(f_pwrite, EIO, 1, 1);
  arm(f_ftruncate, EIO, 2);
  Bytes r5 = make_records(5, 1, 262);
  CHECK(!log.append(r5.data(), r5.size(), 1));
  log.rotate(5);
  disarm();
  CHECK(!fs::exists(next));
  CHECK_EQ(f.failed(IoOp::kTruncate), 2u);
  CHECK_EQ(log.path(), first);
  CHECK(f.all<RotateEvent>().empty());

  // A failed close of the old segment is reported; the rotation stands.
  arm(f_close, EIO, 10);
  log.rotate(5);
  disarm();
  CHECK_EQ(log.path(), next);
  CHECK_EQ(log.stats.rotations.get(), 1u);
  bool closed_reported = false;
  for (const IoErrorEvent& e : f.all<IoErrorEvent>())
    if (e.op == "close" && e.path == first) closed_reported = true;
  CHECK(closed_reported);
  record::Scan s = scan_file(first);  // complete: the cut happened first
  CHECK(!s.torn && !s.corrupt);
  CHECK_EQ(s.records, 4u);
  CHECK_EQ(s.valid_end, file_size(first));
}

// ---- text ----

static void test_text() {
  std::string path = tmp_path("legacy.txt");
  write_file(path, bytes_of("1 1 client_1 complete line\n1 2 client_1 cut in the mid"));
  {
    Fixture f(path);
    f.cfg.format = FileFormat::kText;
    LogFile log(f.cfg, f.live, f.events, f.io);
    CHECK_EQ(log.open(), 0u);
    CHECK_EQ(text_of(read_file(path)), "1 1 client_1 complete line\n");
    CHECK_EQ(log.size(), 27u);
    CHECK_EQ(log.stats.torn_bytes_cut.get(), 27u);
    std::string msg = path + ": cut a partial last line of 27 bytes at offset 27";
    auto rec = f.all<RecoveredEvent>();
    CHECK_EQ(rec.size(), 1u);
    if (!rec.empty()) {
      CHECK_EQ(rec[0].message, msg);
      CHECK_EQ(rec[0].offset, 27u);
      CHECK_EQ(rec[0].bytes_cut, 27u);
      CHECK_EQ(rec[0].last_seq, 0u);
    }
    CHECK(f.logged(LogLevel::kWarn, msg));
    Bytes line = bytes_of("1 3 client_1 after recovery\n");
    CHECK(log.append(line.data(), line.size(), 1));
    CHECK_EQ(text_of(read_file(path)), "1 1 client_1 complete line\n1 3 client_1 after recovery\n");
  }
  {
    // Whole lines: nothing to say.
    Fixture f(path);
    f.cfg.format = FileFormat::kText;
    LogFile log(f.cfg, f.live, f.events, f.io);
    CHECK_EQ(log.open(), 0u);
    CHECK(f.got.empty());
    CHECK_EQ(log.size(), file_size(path));
  }
  {
    // No newline at all: all of it is a partial line. A new text file has no header.
    std::string p2 = tmp_path("partial.txt");
    write_file(p2, bytes_of("partial"));
    Fixture f(p2);
    f.cfg.format = FileFormat::kText;
    LogFile log(f.cfg, f.live, f.events, f.io);
    log.open();
    CHECK_EQ(file_size(p2), 0u);
    CHECK_EQ(log.size(), 0u);
    auto rec = f.all<RecoveredEvent>();
    CHECK(rec.size() == 1 && rec[0].offset == 0 && rec[0].bytes_cut == 7);

    std::string p3 = tmp_path("fresh.txt");
    Fixture g(p3);
    g.cfg.format = FileFormat::kText;
    LogFile log3(g.cfg, g.live, g.events, g.io);
    CHECK_EQ(log3.open(), 0u);
    CHECK(fs::exists(p3));
    CHECK_EQ(file_size(p3), 0u);
  }
}

// ---- retention ----

// A rotating log in `dir` (rotateBytes 1000, 300-byte records: three per
// segment) with `segments` closed segments and an active one holding one record.
static void fill_segments(LogFile& log, int segments) {
  uint64_t seq = 1;
  for (int i = 0; i < segments; i++) {
    Bytes r = make_records(seq, 3, 262);
    CHECK(log.append(r.data(), r.size(), 3));
    seq += 3;
    log.rotate(seq);
  }
  Bytes r = make_records(seq, 1, 262);
  CHECK(log.append(r.data(), r.size(), 1));
}

static void test_retention_segment_closed_events() {
  std::string dir = tmp_path("ret-closed");
  Fixture f(dir, 1000);
  LogFile log(f.cfg, f.live, f.events, f.io);
  log.open();
  fill_segments(log, 3);
  auto closed = f.all<SegmentClosedEvent>();
  CHECK_EQ(closed.size(), 3u);
  if (closed.size() == 3) {
    CHECK_EQ(closed[0].path, segment(dir, "00000000000000000001"));
    CHECK_EQ(closed[0].first_seq, 1u);
    CHECK_EQ(closed[0].last_seq, 3u);
    CHECK_EQ(closed[0].bytes, 916u);
    CHECK_EQ(closed[2].first_seq, 7u);
    CHECK_EQ(closed[2].last_seq, 9u);
  }
  CHECK_EQ(log.closed_segments().size(), 3u);
  int w;
  CHECK(!log.retention_step(realtime_us() / 1000, monotonic_ms(), &w));  // no bound: nothing
  CHECK_EQ(w, -1);
  CHECK_EQ(count_files(dir), 4u);
}

static void test_retention_max_segments() {
  std::string dir = tmp_path("ret-segs");
  Fixture f(dir, 1000);
  LogFile log(f.cfg, f.live, f.events, f.io);
  log.open();
  fill_segments(log, 5);
  f.live.retention_max_segments = 3;  // the active one included: two closed stay
  uint64_t now = realtime_us() / 1000, mono = monotonic_ms();
  int w;
  CHECK(log.retention_step(now, mono, &w));  // one unlink per call
  CHECK_EQ(w, 0);                            // more is due
  CHECK_EQ(count_files(dir), 5u);
  CHECK(!fs::exists(segment(dir, "00000000000000000001")));
  CHECK(log.retention_step(now, mono, &w));
  CHECK(log.retention_step(now, mono, &w));
  CHECK_EQ(w, -1);
  CHECK(!log.retention_step(now, mono, &w));
  CHECK_EQ(count_files(dir), 3u);
  CHECK(fs::exists(segment(dir, "00000000000000000010")));
  CHECK(fs::exists(segment(dir, "00000000000000000013")));
  CHECK(fs::exists(log.path()));
  CHECK_EQ(log.path(), segment(dir, "00000000000000000016"));
  CHECK_EQ(log.stats.segments_deleted.get(), 3u);
  auto del = f.all<SegmentDeletedEvent>();
  CHECK_EQ(del.size(), 3u);
  if (del.size() == 3) {
    CHECK_EQ(del[0].reason, std::string("maxSegments"));
    CHECK_EQ(del[0].first_seq, 1u);
    CHECK_EQ(del[0].bytes, 916u);
    CHECK_EQ(del[2].first_seq, 7u);
  }
  CHECK(f.logged(LogLevel::kInfo, "deleted " + segment(dir, "00000000000000000001")));
  // maxSegments 1: only the active segment stays, never deleted.
  f.live.retention_max_segments = 1;
  while (log.retention_step(now, mono, &w)) {
  }
  CHECK_EQ(count_files(dir), 1u);
  CHECK(fs::exists(log.path()));
  CHECK(log.closed_segments().empty());
  Bytes r = make_records(17, 1, 262);
  CHECK(log.append(r.data(), r.size(), 1));
  CHECK_EQ(f.failed_total(), 0u);
}

static void test_retention_max_bytes() {
  std::string dir = tmp_path("ret-bytes");
  Fixture f(dir, 1000);
  LogFile log(f.cfg, f.live, f.events, f.io);
  log.open();
  fill_segments(log, 4);  // 4 x 916 closed + 316 active = 3980
  f.live.retention_max_bytes = 2200;  // two closed + the active fit (2148)
  uint64_t now = realtime_us() / 1000, mono = monotonic_ms();
  int w;
  int deleted = 0;
  while (log.retention_step(now, mono, &w)) deleted++;
  CHECK_EQ(deleted, 2);
  uint64_t total = 0;
  for (auto& e : fs::directory_iterator(dir)) total += e.file_size();
  CHECK(total <= 2200);
  CHECK_EQ(total, 2148u);
  auto del = f.all<SegmentDeletedEvent>();
  CHECK(del.size() == 2 && del[0].reason == "maxBytes");
  // The active segment alone past the bound: still never deleted.
  f.live.retention_max_bytes = 100;
  while (log.retention_step(now, mono, &w)) {
  }
  CHECK_EQ(count_files(dir), 1u);
  CHECK(fs::exists(log.path()));
}

static void test_retention_max_age() {
  std::string dir = tmp_path("ret-age");
  Fixture f(dir, 1000);
  LogFile log(f.cfg, f.live, f.events, f.io);
  log.open();
  fill_segments(log, 2);
  f.live.retention_max_age_ms = 60000;
  uint64_t now = realtime_us() / 1000, mono = monotonic_ms();
  int w;
  CHECK(!log.retention_step(now, mono, &w));  // closed just now
  CHECK(w > 59000 && w <= 60000);             // the writer sleeps until the oldest ages out
  CHECK(log.retention_step(now + 61000, mono, &w));
  CHECK(log.retention_step(now + 61000, mono, &w));
  CHECK(!log.retention_step(now + 61000, mono, &w));
  CHECK_EQ(count_files(dir), 1u);
  auto del = f.all<SegmentDeletedEvent>();
  CHECK(del.size() == 2 && del[0].reason == "maxAgeMs");
}

static void test_retention_after_archive() {
  std::string dir = tmp_path("ret-archive");
  Fixture f(dir, 1000);
  LogFile log(f.cfg, f.live, f.events, f.io);
  log.open();
  fill_segments(log, 3);
  f.live.retention_max_segments = 1;
  f.live.retention_after_archive = true;
  uint64_t now = realtime_us() / 1000, mono = monotonic_ms();
  int w;
  CHECK(!log.retention_step(now, mono, &w));  // nothing archived: all kept
  CHECK_EQ(w, -1);
  // The second one archived, the oldest not: the oldest holds the rest back
  // (the retained log stays contiguous).
  log.mark_archived(segment(dir, "00000000000000000004"));
  CHECK(!log.retention_step(now, mono, &w));
  CHECK_EQ(count_files(dir), 4u);
  log.mark_archived(segment(dir, "00000000000000000001"));
  CHECK(log.retention_step(now, mono, &w));
  CHECK(log.retention_step(now, mono, &w));
  CHECK(!log.retention_step(now, mono, &w));  // the third is not archived
  CHECK_EQ(count_files(dir), 2u);
  CHECK(fs::exists(segment(dir, "00000000000000000007")));
  log.mark_archived(segment(dir, "00000000000000000007"));
  CHECK(log.retention_step(now, mono, &w));
  CHECK_EQ(count_files(dir), 1u);
}

static void test_retention_failed_unlink() {
  std::string dir = tmp_path("ret-fail");
  Fixture f(dir, 1000);
  LogFile log(f.cfg, f.live, f.events, f.io);
  log.open();
  fill_segments(log, 2);
  f.live.retention_max_segments = 2;
  uint64_t now = realtime_us() / 1000, mono = monotonic_ms();
  int w;
  disarm();
  arm(f_unlink, EACCES);
  CHECK(!log.retention_step(now, mono, &w));
  CHECK_EQ(f.failed(IoOp::kDelete), 1u);
  CHECK(fs::exists(segment(dir, "00000000000000000001")));
  CHECK_EQ(w, 1000);                              // retried later, not every pass
  CHECK(!log.retention_step(now, mono + 10, &w));  // not yet
  CHECK_EQ(f_unlink.calls, 1);
  CHECK(f.logged(LogLevel::kError, "segment kept"));
  disarm();
  CHECK(log.retention_step(now, mono + 1000, &w));
  CHECK(!fs::exists(segment(dir, "00000000000000000001")));
  CHECK_EQ(log.stats.segments_deleted.get(), 1u);
  // Removed by someone else: dropped from the list, not counted.
  f.live.retention_max_segments = 1;
  fs::remove(segment(dir, "00000000000000000004"));
  CHECK(!log.retention_step(now, mono + 1000, &w));
  CHECK(log.closed_segments().empty());
  CHECK_EQ(log.stats.segments_deleted.get(), 1u);
}

static void test_retention_at_start() {
  std::string dir = tmp_path("ret-start");
  {
    Fixture f(dir, 1000);
    LogFile log(f.cfg, f.live, f.events, f.io);
    log.open();
    fill_segments(log, 3);
  }
  Fixture f(dir, 1000);
  LogFile log(f.cfg, f.live, f.events, f.io);
  CHECK_EQ(log.open(), 10u);
  // Closed segments found at start are offered again (at-least-once archiving).
  auto closed = f.all<SegmentClosedEvent>();
  CHECK_EQ(closed.size(), 3u);
  if (closed.size() == 3) {
    CHECK_EQ(closed[1].path, segment(dir, "00000000000000000004"));
    CHECK_EQ(closed[1].first_seq, 4u);
    CHECK_EQ(closed[1].last_seq, 6u);
    CHECK_EQ(closed[1].bytes, 916u);
  }
  f.live.retention_max_segments = 2;
  int w;
  uint64_t now = realtime_us() / 1000, mono = monotonic_ms();
  while (log.retention_step(now, mono, &w)) {
  }
  CHECK_EQ(count_files(dir), 2u);
  CHECK_EQ(log.path(), segment(dir, "00000000000000000010"));
  CHECK(fs::exists(segment(dir, "00000000000000000007")));
}

static void test_rotation_on_a_single_file() {
  std::string path = tmp_path("single.log");
  write_file(path, cat(header(), make_records(42, 3)));
  Fixture f(path, 65536);
  LogFile log(f.cfg, f.live, f.events, f.io);
  std::string err = open_error(log);
  CHECK(err.find("file.path " + path + " is a single log file") != std::string::npos);
  CHECK(err.find("file.rotateBytes = 65536") != std::string::npos);
  CHECK(err.find("turn rotation off") != std::string::npos);
  CHECK(err.find("mkdir " + path) != std::string::npos);
  CHECK(err.find("mv " + path + ".tmp " + path + "/00000000000000000042.log") != std::string::npos);
  CHECK(err.find("Not a directory") == std::string::npos);
  // Following the advice works: the file is the first segment.
  fs::rename(path, path + ".tmp");
  fs::create_directory(path);
  fs::rename(path + ".tmp", path + "/00000000000000000042.log");
  Fixture g(path, 65536);
  LogFile log2(g.cfg, g.live, g.events, g.io);
  CHECK_EQ(log2.open(), 44u);
  CHECK_EQ(log2.path(), path + "/00000000000000000042.log");
}

int main() {
  char tmpl[] = "/tmp/test_log_file.XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::perror("mkdtemp");
    return 2;
  }
  g_tmp = tmpl;
  struct statfs sfs;
  if (statfs(tmpl, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC) {
    g_cache_checks = false;
    std::printf("test_log_file: %s is on tmpfs, where no page can be dropped: the page-cache checks are skipped\n", tmpl);
  }
  test_new_log_and_reopen();
  test_short_writes_and_eintr();
  test_torn_tail();
  test_corruption();
  test_not_a_log();
  test_open_errors();
  test_failed_append();
  test_failed_append_and_cut();
  test_failed_sync();
  test_cut_back();
  test_background_sync();
  test_background_sync_and_close();
  test_background_sync_without_thread();
  test_drop_cache();
  test_drop_cache_owes_sync();
  test_drop_cache_rotation();
  test_rotation_by_size();
  test_rotation_by_age();
  test_rotation_failures();
  test_text();
  test_retention_segment_closed_events();
  test_retention_max_segments();
  test_retention_max_bytes();
  test_retention_max_age();
  test_retention_after_archive();
  test_retention_failed_unlink();
  test_retention_at_start();
  test_rotation_on_a_single_file();
  fs::remove_all(g_tmp);
  return check_summary("test_log_file");
}
