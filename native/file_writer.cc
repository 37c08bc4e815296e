#include "file_writer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include "batch.h"
#include "codec.h"
#include "engine.h"
#include "jetstream_sink.h"
#include "record.h"
#include "service_loop.h"
#include "time_util.h"

namespace msgs {

namespace {

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// A new directory entry is durable only once its directory is synced.
void sync_dir(const std::string& path) {
  int dfd = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return;
  fsync(dfd);
  close(dfd);
}

constexpr char kSegmentSuffix[] = ".log";
constexpr size_t kSegmentDigits = 20;

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

std::string segment_path(const std::string& dir, uint64_t first_seq) {
  std::string digits = std::to_string(first_seq);
  return dir + "/" + std::string(kSegmentDigits - digits.size(), '0') + digits + kSegmentSuffix;
}

}  // namespace

FileWriter::FileWriter(Engine& engine) : engine_(engine) {}

FileWriter::~FileWriter() {
  join();
  js_.reset();
  if (fd_ >= 0) close(fd_);
  std::free(buf_);
}

void FileWriter::open() {
  const EngineConfig& cfg = engine_.config();
  file_ = cfg.file_enabled;
  text_ = cfg.format == FileFormat::kText;
  rotating_ = file_ && (cfg.rotate_bytes > 0 || cfg.rotate_ms > 0);
  if (!file_) {
    // JetStream only: sequence numbers start over with each start.
  } else if (rotating_) {
    open_segments();
  } else {
    open_file(cfg.file_path);
  }
  if (cfg.jetstream.enabled) {
#if MSGS_HAVE_NATS
    js_ = std::make_unique<JetStreamSink>(engine_, notifier_);
    js_->open();
#else
    throw std::runtime_error(nats_availability());
#endif
  }
  ensure_capacity(cfg.batch_max_bytes + 64 * 1024);
  wake_.assign(engine_.service_count(), 0);
  last_sync_ms_ = segment_opened_ms_ = monotonic_ms();
  // Tests only: a writer slower than any client, to prove the back-pressure.
  if (const char* d = getenv("MSGSERVER_TEST_WRITE_DELAY_US")) test_delay_us_ = strtoul(d, nullptr, 10);
}

// Opens (creating it if needed) the active file and recovers its tail.
void FileWriter::open_file(const std::string& path) {
  path_ = path;
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot open " + path_ + ": " + strerror(errno));
  struct stat st;
  if (fstat(fd_, &st) != 0) throw std::runtime_error("cannot stat " + path_ + ": " + strerror(errno));
  if (text_) {
    recover_text(static_cast<uint64_t>(st.st_size));
  } else if (st.st_size == 0) {
    if (int err = write_header()) throw std::runtime_error("cannot write " + path_ + ": " + strerror(err));
  } else {
    recover(static_cast<uint64_t>(st.st_size));
  }
}

// With rotation, file.path is a directory of segments named by the sequence
// number of their first record (20 digits, so names sort in write order).
// The last segment is the active one.
void FileWriter::open_segments() {
  dir_ = engine_.config().file_path;
  if (mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) {
    throw std::runtime_error("cannot create directory " + dir_ + ": " + strerror(errno));
  }
  DIR* d = opendir(dir_.c_str());
  if (!d) throw std::runtime_error("cannot open directory " + dir_ + ": " + strerror(errno));
  std::string last;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (segment_first_seq(name) != 0 && name > last) last = name;
  }
  closedir(d);
  if (last.empty()) {
    open_file(segment_path(dir_, 1));
    return;
  }
  open_file(dir_ + "/" + last);
  // An empty active segment still says where the sequence stands.
  uint64_t first = segment_first_seq(last);
  if (seq_ + 1 < first) seq_ = first - 1;
  stats.last_seq.v.store(seq_, std::memory_order_relaxed);
}

// Writes a fresh file header (and makes the new file's name durable).
// Returns 0 or an errno.
int FileWriter::write_header() {
  uint8_t h[record::kFileHeaderSize];
  record::encode_file_header(h);
  if (ftruncate(fd_, 0) != 0) return errno;
  if (pwrite(fd_, h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) return errno ? errno : EIO;
  if (fdatasync(fd_) != 0) return errno;
  sync_dir(path_);
  offset_ = sizeof h;
  return 0;
}

// Scans the whole file: a torn tail (nothing valid after the first bad byte)
// is cut; corruption with valid records after it stops the start, unless
// repair is set, which keeps the damaged file aside and starts a clean one.
void FileWriter::recover(uint64_t size) {
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd_, 0);
  if (map == MAP_FAILED) throw std::runtime_error("cannot read " + path_ + ": " + strerror(errno));
  const uint8_t* p = static_cast<const uint8_t*>(map);
  record::Scan s = record::scan(p, size);
  munmap(map, size);

  if (!s.header_ok) {
    uint8_t h[record::kFileHeaderSize];
    record::encode_file_header(h);
    // A header cut short by a crash while the file was being created.
    uint8_t got[record::kFileHeaderSize];
    ssize_t n = pread(fd_, got, sizeof got, 0);
    if (size < sizeof h && n == static_cast<ssize_t>(size) && memcmp(got, h, size) == 0) {
      if (int err = write_header()) throw std::runtime_error("cannot write " + path_ + ": " + strerror(err));
      return;
    }
    throw std::runtime_error(path_ + " is not a msgserver log (bad file header); refusing to append to it");
  }
  if (s.corrupt) {
    if (!engine_.config().repair) {
      throw std::runtime_error(path_ + ": corrupt record at byte offset " + std::to_string(s.valid_end) +
                               " (valid records resume at offset " + std::to_string(s.next_valid) +
                               "); start with file.repair = true to set the damaged file aside");
    }
    std::string aside = path_ + ".corrupt-" + std::to_string(realtime_us() / 1000);
    if (rename(path_.c_str(), aside.c_str()) != 0) {
      throw std::runtime_error("cannot move " + path_ + " aside: " + strerror(errno));
    }
    close(fd_);
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("cannot open " + path_ + ": " + strerror(errno));
    if (int err = write_header()) throw std::runtime_error("cannot write " + path_ + ": " + strerror(err));
    seq_ = s.max_seq;
    engine_.log("warn", path_ + ": corrupt record at byte offset " + std::to_string(s.valid_end) +
                            "; damaged file kept as " + aside + ", continuing in a clean file after seq " +
                            std::to_string(seq_));
    EngineEvent ev{"recovered", "", "repaired: damaged file kept as " + aside, "", s.valid_end, 0, seq_};
    engine_.emit(std::move(ev));
    return;
  }
  offset_ = s.valid_end;
  seq_ = s.last_seq;
  if (s.torn) {
    if (ftruncate(fd_, static_cast<off_t>(s.valid_end)) != 0) {
      throw std::runtime_error("cannot truncate torn tail of " + path_ + ": " + strerror(errno));
    }
    fdatasync(fd_);
    stats.torn_bytes_cut.add(s.tail_bytes);
    std::string msg = path_ + ": cut a torn tail of " + std::to_string(s.tail_bytes) + " bytes at offset " +
                      std::to_string(s.valid_end) + " (last good seq " + std::to_string(s.last_seq) + ")";
    engine_.log("warn", msg);
    EngineEvent ev{"recovered", "", msg, "", s.valid_end, s.tail_bytes, s.last_seq};
    engine_.emit(std::move(ev));
  }
  stats.last_seq.add(seq_);
}

// Text files have no header and no checksums: one message per line. The only
// damage a crash can leave is a partial last line, which is cut.
void FileWriter::recover_text(uint64_t size) {
  offset_ = size;
  if (size == 0) return;
  uint64_t end = size;
  uint8_t chunk[65536];
  while (end > 0) {  // find the last newline, reading backwards
    size_t n = static_cast<size_t>(std::min<uint64_t>(end, sizeof chunk));
    if (pread(fd_, chunk, n, static_cast<off_t>(end - n)) != static_cast<ssize_t>(n)) {
      throw std::runtime_error("cannot read " + path_ + ": " + strerror(errno));
    }
    const void* nl = memrchr(chunk, '\n', n);
    if (nl) {
      end = end - n + static_cast<uint64_t>(static_cast<const uint8_t*>(nl) - chunk) + 1;
      break;
    }
    end -= n;
  }
  if (end == size) return;
  if (ftruncate(fd_, static_cast<off_t>(end)) != 0) {
    throw std::runtime_error("cannot truncate partial last line of " + path_ + ": " + strerror(errno));
  }
  fdatasync(fd_);
  offset_ = end;
  stats.torn_bytes_cut.add(size - end);
  std::string msg = path_ + ": cut a partial last line of " + std::to_string(size - end) + " bytes at offset " +
                    std::to_string(end);
  engine_.log("warn", msg);
  EngineEvent ev{"recovered", "", msg, "", end, size - end, 0};
  engine_.emit(std::move(ev));
}

void FileWriter::ensure_capacity(size_t need) {
  if (buf_cap_ >= need) return;
  size_t ncap = buf_cap_ ? buf_cap_ : 1 << 20;
  while (ncap < need) ncap *= 2;
  void* p = std::realloc(buf_, ncap);
  if (!p) throw std::bad_alloc();
  buf_ = static_cast<uint8_t*>(p);
  buf_cap_ = ncap;
}

void FileWriter::start() {
  thread_ = std::thread([this] { run(); });
  set_thread_name(thread_, "msgs-writer");
}

void FileWriter::request_stop() {
  stop_.store(true, std::memory_order_release);
  notifier_.signal();
}

void FileWriter::join() {
  if (thread_.joinable()) thread_.join();
}

// ---------------------------------------------------------------------------

void FileWriter::run() {
  const EngineConfig& cfg = engine_.config();
  for (;;) {
    while (MpscNode* n = engine_.queue().pop()) {
      Batch* b = static_cast<Batch*>(n);
      // seq_cst: Dekker handshake with a paused service thread (see
      // ServiceLoop::wait_for_queue_space): lower the count, then look.
      engine_.queue_bytes().fetch_sub(b->accounted, std::memory_order_seq_cst);
      engine_.queue_batches().fetch_sub(1, std::memory_order_relaxed);
      engine_.wake_paused_services();
      take(b);
    }
    uint64_t now = monotonic_ms();
    int timeout = js_ ? reap_jetstream(now) : -1;
    if (buf_msgs_ > 0 || !ready_.empty()) {
      if (cfg.batch_max_delay_ms == 0 || now - first_ms_ >= cfg.batch_max_delay_ms) {
        flush();
      } else {
        int left = static_cast<int>(first_ms_ + cfg.batch_max_delay_ms - now);
        timeout = timeout < 0 ? left : std::min(timeout, left);
      }
    }
    if (cfg.fsync == FsyncPolicy::kInterval && unsynced_records_ > 0) {
      if (now - last_sync_ms_ >= cfg.fsync_interval_ms) {
        int err;
        sync(&err);
      } else {
        int left = static_cast<int>(last_sync_ms_ + cfg.fsync_interval_ms - now);
        timeout = timeout < 0 ? left : std::min(timeout, left);
      }
    }
    if (rotating_ && cfg.rotate_ms > 0 && segment_records_ > 0) {
      if (now - segment_opened_ms_ >= cfg.rotate_ms) {
        flush();
        rotate();
      } else {
        int left = static_cast<int>(segment_opened_ms_ + cfg.rotate_ms - now);
        timeout = timeout < 0 ? left : std::min(timeout, left);
      }
    }
    // acquire: pairs with request_stop(); every service thread has exited, so
    // an empty queue now stays empty.
    if (stop_.load(std::memory_order_acquire) && engine_.queue().empty()) {
      flush();
      int err;
      if (unsynced_records_ > 0) sync(&err);
#if MSGS_HAVE_NATS
      if (js_) {
        js_->close();  // settles every publish (each times out at the latest)
        complete_ready();
      }
#endif
      break;
    }
    // The flushes above may have published: sleep no longer than the oldest
    // publish may wait for its acknowledgement.
    if (js_) {
      int left = reap_jetstream(monotonic_ms());
      if (left >= 0) timeout = timeout < 0 ? left : std::min(timeout, left);
    }
    notifier_.prepare_sleep();
    // Re-check after arming: work (or an acknowledgement) published before
    // prepare_sleep() did not signal.
    if (!engine_.queue().empty() || stop_.load(std::memory_order_acquire) || jetstream_settled()) {
      notifier_.cancel_sleep();
      continue;
    }
    notifier_.wait(timeout);
  }
}

// Encodes the batch's messages; flushes whenever the buffer reaches a limit,
// so one huge batch is written in bounded pieces.
void FileWriter::take(Batch* b) {
  const EngineConfig& cfg = engine_.config();
  stats.batches.add();
  if (buf_msgs_ == 0 && ready_.empty()) first_ms_ = monotonic_ms();
  uint32_t n = static_cast<uint32_t>(b->msgs.size());
  uint32_t begin = 0;
  bool hooks = engine_.hooks().enabled();
  hook_index_.clear();
  hook_seq_.clear();
  for (uint32_t i = 0; i < n; i++) {
    MsgRef& m = b->msgs[i];
    if (m.status != kPending) continue;  // rejected at parse (TOO_LARGE)
    if (rotating_ && rotation_due(record::record_size(m.name_len, m.payload_len))) {
      spans_.push_back(Span{b, begin, i});  // a record is never split across segments
      begin = i;
      flush();
      rotate();
    }
    const uint8_t* name = b->data + m.offset;
    const uint8_t* payload = b->data + m.payload_offset();
    ++seq_;
    if (hooks) {
      hook_index_.push_back(i);
      hook_seq_.push_back(seq_);
    }
    if (!file_) {
      // JetStream only: the sink encodes its own records.
    } else if (text_) {
      ensure_capacity(buf_len_ + record::text_max_size(m.name_len, m.payload_len));
      buf_len_ += record::encode_text(buf_ + buf_len_, m.client_id, m.msg_id, name, m.name_len, payload, m.payload_len);
    } else {
      ensure_capacity(buf_len_ + record::record_size(m.name_len, m.payload_len));
      buf_len_ += record::encode(buf_ + buf_len_, seq_, b->time_us, m.client_id, m.msg_id, name, m.name_len, payload,
                                 m.payload_len);
    }
    buf_msgs_++;
    if (buf_msgs_ >= cfg.batch_max_messages || buf_len_ >= cfg.batch_max_bytes) {
      spans_.push_back(Span{b, begin, i + 1});
      begin = i + 1;
      flush();
    }
  }
  spans_.push_back(Span{b, begin, n});
  ready_.push_back(b);
  if (hooks && !hook_index_.empty()) feed_hooks(b);
}

// Copies the messages take() just encoded into one HookBatch for the JS
// hooks: one allocation and one copy per batch, within the hooks' budget.
void FileWriter::feed_hooks(const Batch* b) {
  uint64_t bytes = 0;
  size_t n = 0;
  for (uint32_t i : hook_index_) {
    const MsgRef& m = b->msgs[i];
    if (m.status == wire::kAckWriteFailed) continue;  // a flush inside take() failed: never stored
    bytes += m.name_len + m.payload_len;
    n++;
  }
  if (n == 0) return;
  HookChannel& hooks = engine_.hooks();
  uint64_t budget = bytes + n * sizeof(HookMessage);
  if (!hooks.reserve(budget, n)) return;
  HookBatch* hb = new HookBatch;
  hb->budget = budget;
  hb->data.resize(bytes);
  hb->msgs.reserve(n);
  uint32_t off = 0;
  for (size_t k = 0; k < hook_index_.size(); k++) {
    const MsgRef& m = b->msgs[hook_index_[k]];
    if (m.status == wire::kAckWriteFailed) continue;
    memcpy(hb->data.data() + off, b->data + m.offset, m.name_len);
    memcpy(hb->data.data() + off + m.name_len, b->data + m.payload_offset(), m.payload_len);
    hb->msgs.push_back(HookMessage{hook_seq_[k], b->time_us, m.msg_id, m.client_id, off, m.payload_len, m.name_len});
    off += m.name_len + m.payload_len;
  }
  hooks.deliver(hb);
}

// Stores the buffer, settles every message in it, and hands back the batches
// that are now complete.
void FileWriter::flush() {
  bool stored = true;
  if (file_ && buf_len_ > 0) {
    uint64_t seq_before = seq_ - buf_msgs_;
    uint64_t good_offset = offset_;
    int err = 0;
    auto t0 = std::chrono::steady_clock::now();
    stored = store(&err);
    FsyncPolicy policy = engine_.config().fsync;
    bool sync_now = engine_.config().ack_mode == AckMode::kDurable || policy == FsyncPolicy::kBatch;
    if (stored && sync_now) stored = sync(&err);
    record_latency(std::chrono::steady_clock::now() - t0);
    if (!stored) rollback(good_offset, seq_before, err);
  }
  if (buf_msgs_ > 0) settle_spans(stored);
  spans_.clear();
  buf_len_ = 0;
  buf_msgs_ = 0;
  complete_ready();
}

// Gives every message of the flushed buffer its status, after publishing it
// to JetStream when there is a JetStream sink. In ackMode 'replicated' the
// status waits for the publish acknowledgement (see reap_jetstream()).
void FileWriter::settle_spans(bool stored) {
  uint8_t status = stored ? wire::kAckOk : wire::kAckWriteFailed;
#if MSGS_HAVE_NATS
  bool replicated = engine_.config().ack_mode == AckMode::kReplicated;
  uint64_t now_ms = monotonic_ms();
  bool publish = js_ && stored && js_->ready(now_ms, replicated);
  uint64_t seq = seq_ - buf_msgs_;  // the records' sequence numbers, in span order
  // A binary file buffer holds the same records, in the same order: publish
  // its bytes instead of encoding (and checksumming) each record again.
  const uint8_t* rec = file_ && !text_ ? buf_ : nullptr;
#endif
  for (const Span& s : spans_) {
    for (uint32_t i = s.begin; i < s.end; i++) {
      MsgRef& m = s.batch->msgs[i];
      if (m.status != kPending) continue;
#if MSGS_HAVE_NATS
      if (js_ && stored) {
        ++seq;
        const uint8_t* encoded = rec;
        if (rec) rec += record::record_size(m.name_len, m.payload_len);
        if (publish) {
          js_->publish(s.batch, i, seq, replicated, now_ms, encoded);
          if (replicated) continue;  // its acknowledgement decides
        } else {
          js_->stats.unavailable.add();
          if (replicated) {
            m.status = wire::kAckReplicationFailed;
            continue;
          }
        }
      }
#endif
      m.status = status;
    }
  }
#if MSGS_HAVE_NATS
  if (publish && replicated) js_->flush();  // the ACKs wait for these publishes: send them now
#endif
}

void FileWriter::record_latency(std::chrono::steady_clock::duration d) {
  uint64_t us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  int bucket = 0;
  while (bucket < WriterStats::kLatencyBuckets - 1 && us >= (uint64_t{1} << bucket)) bucket++;
  stats.write_latency[bucket].add();
}

// One pwrite for the whole buffer (a loop only if the kernel takes less).
bool FileWriter::store(int* err) {
  if (test_delay_us_) usleep(static_cast<useconds_t>(test_delay_us_));
  size_t off = 0;
  while (off < buf_len_) {
    ssize_t n = pwrite(fd_, buf_ + off, buf_len_ - off, static_cast<off_t>(offset_ + off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *err = n < 0 ? errno : EIO;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  offset_ += buf_len_;
  stats.writes.add();
  stats.records.add(buf_msgs_);
  stats.bytes.add(buf_len_);
  stats.last_seq.v.store(seq_, std::memory_order_relaxed);
  unsynced_records_ += buf_msgs_;
  segment_records_ += buf_msgs_;
  return true;
}

bool FileWriter::sync(int* err) {
  if (fdatasync(fd_) != 0) {
    *err = errno;
    return false;
  }
  stats.fsyncs.add();
  stats.synced_records.add(unsynced_records_);
  unsynced_records_ = 0;
  last_sync_ms_ = monotonic_ms();
  return true;
}

// A failed write or fsync: cut the file back to the last good record so it
// stays valid, give the sequence numbers back, and answer WRITE_FAILED.
void FileWriter::rollback(uint64_t good_offset, uint64_t seq_before, int err) {
  if (offset_ != good_offset) {  // stored but not synced: take it back out
    unsynced_records_ -= buf_msgs_;
    offset_ = good_offset;
  }
  if (ftruncate(fd_, static_cast<off_t>(good_offset)) != 0) {
    engine_.log("error", "cannot truncate " + path_ + " back to offset " + std::to_string(good_offset) + ": " +
                             strerror(errno));
  }
  stats.write_errors.add();
  stats.failed_records.add(buf_msgs_);
  seq_ = seq_before;
  stats.last_seq.v.store(seq_, std::memory_order_relaxed);
  uint64_t now = monotonic_ms();
  if (now - last_error_log_ms_ >= 5000) {  // a full disk fails every batch: log once per interval
    last_error_log_ms_ = now;
    engine_.log("error", "cannot write " + path_ + ": " + strerror(err) + "; " + std::to_string(buf_msgs_) +
                             " messages answered WRITE_FAILED");
  }
  EngineEvent ev{"error", "", "cannot write " + path_ + ": " + strerror(err), "", static_cast<uint64_t>(err), buf_msgs_, 0};
  engine_.emit(std::move(ev));
}

// The size bound: the next record would take the segment past rotateBytes
// (a segment always takes at least one record, however large).
bool FileWriter::rotation_due(size_t next_record) const {
  uint64_t bound = engine_.config().rotate_bytes;
  uint64_t used = offset_ + buf_len_;
  return bound > 0 && used > record::kFileHeaderSize && used + next_record > bound;
}

// Closes the active segment (synced, so a closed segment is complete on disk)
// and starts the next one, named after the next sequence number. If the new
// file cannot be created, writing goes on in the old one.
void FileWriter::rotate() {
  int err = 0;
  if (unsynced_records_ > 0) sync(&err);
  std::string closed = path_;
  std::string next = segment_path(dir_, seq_ + 1);
  int fd = ::open(next.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    engine_.log("error", "cannot create segment " + next + ": " + strerror(errno) + "; still writing " + closed);
    segment_opened_ms_ = monotonic_ms();
    return;
  }
  int old_fd = fd_;
  uint64_t old_offset = offset_;
  fd_ = fd;
  path_ = next;
  if ((err = write_header()) != 0) {
    engine_.log("error", "cannot write segment " + next + ": " + strerror(err) + "; still writing " + closed);
    close(fd_);
    unlink(next.c_str());
    fd_ = old_fd;
    path_ = closed;
    offset_ = old_offset;
    segment_opened_ms_ = monotonic_ms();
    return;
  }
  close(old_fd);
  segment_opened_ms_ = monotonic_ms();
  segment_records_ = 0;
  stats.rotations.add();
  EngineEvent ev{"rotate", "", closed, next, seq_, 0, 0};
  engine_.emit(std::move(ev));
}

// Hands finished batches back to their service threads, in the order they
// were taken: a batch still waiting for JetStream holds back the ones after
// it, so the ACKs of one connection never overtake each other. Only called
// right after a flush: every batch in ready_ then has all its messages settled
// or published.
void FileWriter::complete_ready() {
  for (Batch* b : ready_) {
    if (!awaiting_.empty() || b->awaiting > 0) {
      awaiting_.push_back(b);
    } else {
      hand_back(b);
    }
  }
  ready_.clear();
  complete_awaiting();
}

// Hands back the batches at the front of awaiting_ whose JetStream outcomes
// are all in, then wakes the service threads that got completions.
void FileWriter::complete_awaiting() {
  while (!awaiting_.empty() && awaiting_.front()->awaiting == 0) {
    hand_back(awaiting_.front());
    awaiting_.pop_front();
  }
  for (uint32_t i = 0; i < wake_.size(); i++) {
    if (wake_[i]) {
      wake_[i] = 0;
      engine_.service(i).notify();
    }
  }
}

void FileWriter::hand_back(Batch* b) {
  uint32_t owner = b->owner;  // read first: once handed back, b is the owner's (it may be freed)
  engine_.service(owner).complete(b);
  wake_[owner] = 1;
}

bool FileWriter::jetstream_settled() const {
#if MSGS_HAVE_NATS
  return js_ && js_->head_settled();
#else
  return false;
#endif
}

// Applies JetStream acknowledgements and timeouts; hands back the batches
// they completed. Returns ms until the next timeout, or -1.
int FileWriter::reap_jetstream(uint64_t now_ms) {
#if MSGS_HAVE_NATS
  int timeout = js_->reap(now_ms);
  if (!awaiting_.empty() && awaiting_.front()->awaiting == 0) complete_awaiting();
  return timeout;
#else
  return -1;
#endif
}

}  // namespace msgs
