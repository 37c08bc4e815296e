// The load engine behind msgbench. See loadgen.h for the shape.
#include "loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace loadgen {
namespace {

constexpr uint32_t kLegacyFrame = 1160;  // u32 client_id, u32 msg_id, char name[128], unsigned char buffer[1024]
constexpr uint32_t kLegacyNameOff = 8;
constexpr uint32_t kLegacyTextOff = 136;
constexpr uint32_t kLegacyTextMax = 1023;  // NUL-terminated in 1024 bytes
constexpr uint32_t kV1Header = 14;         // u32 length, u8 type, u8 name_len, u64 msg_id
constexpr uint32_t kHelloLen = 12;
constexpr uint32_t kReadBuf = 256 * 1024;
constexpr uint32_t kCarry = 512;
constexpr int kMaxIov = 64;
constexpr uint32_t kPoolExtra = 4096;
constexpr int kMaxErrorSamples = 8;

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline void put32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}
inline void put64(uint8_t* p, uint64_t v) {
  put32(p, uint32_t(v >> 32));
  put32(p + 4, uint32_t(v));
}
inline uint32_t get32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}
inline uint64_t get64(const uint8_t* p) { return (uint64_t(get32(p)) << 32) | get32(p + 4); }

// HDR-style histogram of nanoseconds: values below 128 exactly, above that
// 64 linear sub-buckets per power of two (relative error < 1.6%, reported at
// the bucket's midpoint, so < 0.8%).
class Histogram {
 public:
  static constexpr int kSub = 64;
  static constexpr int kBuckets = 58 * kSub + 2 * kSub;

  void record(uint64_t v) {
    counts_[index(v)]++;
    count_++;
    sum_ += v;
    if (v > max_) max_ = v;
    if (v < min_) min_ = v;
  }
  void merge(const Histogram& o) {
    for (int i = 0; i < kBuckets; i++) counts_[i] += o.counts_[i];
    count_ += o.count_;
    sum_ += o.sum_;
    max_ = std::max(max_, o.max_);
    min_ = std::min(min_, o.min_);
  }
  uint64_t count() const { return count_; }
  double mean() const { return count_ ? double(sum_) / double(count_) : 0; }
  uint64_t max() const { return max_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  // The value at quantile q (0..1): the midpoint of the bucket holding it, clamped to [min, max].
  double quantile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = uint64_t(std::ceil(q * double(count_)));
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; i++) {
      seen += counts_[i];
      if (seen >= rank) {
        double mid = midpoint(i);
        return std::min(std::max(mid, double(min())), double(max_));
      }
    }
    return double(max_);
  }

 private:
  static int index(uint64_t v) {
    if (v < 2 * kSub) return int(v);
    int e = 63 - __builtin_clzll(v);
    int shift = e - 6;
    return shift * kSub + int(v >> shift);
  }
  static double midpoint(int idx) {
    if (idx < 2 * kSub) return idx;
    int shift = idx / kSub - 1;
    uint64_t m = uint64_t(idx - shift * kSub);
    double lo = double(m << shift), width = double(uint64_t(1) << shift);
    return lo + (width - 1) / 2;
  }
  uint64_t counts_[kBuckets] = {0};
  uint64_t count_ = 0, sum_ = 0, max_ = 0, min_ = UINT64_MAX;
};

enum class State : uint8_t { kIdle, kConnecting, kRunning, kDone, kFailed, kSkipped };

struct Conn {
  int fd = -1;
  State state = State::kIdle;
  bool want_out = false;
  bool hello_ok = false;      // v1: HELLO_OK received (legacy: always true)
  uint8_t legacy_pos = 0;     // legacy: bytes of the current "ack" seen
  uint16_t carry_len = 0;
  uint32_t hello_off = 0;     // bytes of HELLO written (kHelloLen = all; legacy: always kHelloLen)
  uint32_t partial = 0;       // bytes of message `written` already written
  uint32_t index = 0;         // global connection number
  uint64_t queued = 0;        // messages prepared in slots (ids 1..queued)
  uint64_t written = 0;       // messages fully written
  uint64_t acked = 0;         // messages acknowledged (any status)
  uint64_t target = 0;        // messages this connection sends (UINT64_MAX: until the deadline)
  int64_t last_progress = 0;
  uint8_t* slots = nullptr;   // window slots of `stride` bytes
  int64_t* sent_ns = nullptr; // per slot: when its message went out
  uint32_t* len = nullptr;    // per slot: frame length (payload range only)
  uint32_t* plen = nullptr;   // per slot: payload length (payload range only)
  uint8_t hello[kHelloLen];
  uint8_t carry[kCarry];
};

struct Shared {
  const LoadConfig* cfg = nullptr;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  int64_t t0 = 0;
  std::mutex mu;
  std::vector<std::string> samples;
  void sample(const std::string& s) {
    std::lock_guard<std::mutex> g(mu);
    if (samples.size() < kMaxErrorSamples) samples.push_back(s);
  }
};

class Worker {
 public:
  Worker(Shared& sh, uint32_t id, uint32_t nthreads) : sh_(sh), cfg_(*sh.cfg), id_(id) {
    for (uint32_t i = id; i < cfg_.connections; i += nthreads) count_++;
    v1_ = cfg_.protocol == Protocol::kV1;
    fixed_ = cfg_.payload_min == cfg_.payload_max;
    uniform_ = fixed_ || !v1_;  // every frame is `stride_` bytes: slots are contiguous frames
    W_ = cfg_.window;
    name_len_ = uint32_t(cfg_.name.size());
    stride_ = v1_ ? kV1Header + name_len_ + cfg_.payload_max : kLegacyFrame;
    rng_ = cfg_.seed * 0x9E3779B97F4A7C15ull + id + 1;
    // Payload bytes come from a pool: random bytes (v1) or printable text (legacy).
    pool_.resize(cfg_.payload_max + kPoolExtra);
    for (auto& b : pool_) {
      uint64_t r = next_rand();
      b = v1_ ? uint8_t(r) : uint8_t('a' + r % 26);
    }
    conns_.reset(new Conn[count_]);
    slot_mem_.reset(new uint8_t[size_t(count_) * W_ * stride_]());
    sent_mem_.reset(new int64_t[size_t(count_) * W_]());
    if (!fixed_) {
      len_mem_.reset(new uint32_t[size_t(count_) * W_]());
      plen_mem_.reset(new uint32_t[size_t(count_) * W_]());
    }
    rbuf_.reset(new uint8_t[kCarry + kReadBuf]);
    for (uint32_t k = 0; k < count_; k++) {
      Conn& c = conns_[k];
      c.index = id + k * nthreads;
      c.target = cfg_.messages ? cfg_.messages : UINT64_MAX;
      c.slots = slot_mem_.get() + size_t(k) * W_ * stride_;
      c.sent_ns = sent_mem_.get() + size_t(k) * W_;
      if (!fixed_) {
        c.len = len_mem_.get() + size_t(k) * W_;
        c.plen = plen_mem_.get() + size_t(k) * W_;
      }
      uint32_t client_id = cfg_.client_id_base + c.index;
      if (v1_) {
        memcpy(c.hello, "MSGS\x01\x00\x00\x00", 8);
        put32(c.hello + 4 + 4, client_id);
      } else {
        c.hello_off = kHelloLen;
      }
      for (uint32_t s = 0; s < W_; s++) build_slot(c, s, client_id);
    }
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + strerror(errno));
  }
  ~Worker() {
    for (uint32_t k = 0; k < count_; k++)
      if (conns_[k].fd >= 0) close(conns_[k].fd);
    if (epfd_ >= 0) close(epfd_);
  }

  void run();

  // Read by the progress thread while running.
  std::atomic<uint64_t> p_sent{0}, p_acked{0}, p_errors{0};
  std::atomic<uint32_t> p_open{0};
  std::atomic<bool> finished{false};

  // Final figures (read after join).
  Histogram hist;
  uint64_t sent = 0, acked_ok = 0, wire = 0, payload_acked = 0, ack_frames = 0;
  uint64_t connect_errors = 0, mismatches = 0, bad_status = 0, server_errors = 0, closed_early = 0, timeouts = 0,
           unacked = 0;
  uint32_t ok_conns = 0, failed_conns = 0;
  int64_t end_ns = 0;

 private:
  uint64_t next_rand() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return rng_;
  }
  uint32_t pick_payload() {
    if (fixed_) return cfg_.payload_min;
    return cfg_.payload_min + uint32_t(next_rand() % (uint64_t(cfg_.payload_max - cfg_.payload_min) + 1));
  }

  // Fills a slot with a complete frame; later only the id (and, for a range, the size) changes.
  void build_slot(Conn& c, uint32_t s, uint32_t client_id) {
    uint8_t* p = c.slots + size_t(s) * stride_;
    uint32_t L = cfg_.payload_min;
    const uint8_t* src = pool_.data() + (size_t(s) * 61 + c.index * 7) % kPoolExtra;
    if (v1_) {
      put32(p, 10 + name_len_ + L);
      p[4] = 0x01;
      p[5] = uint8_t(name_len_);
      memcpy(p + kV1Header, cfg_.name.data(), name_len_);
      memcpy(p + kV1Header + name_len_, src, L);
      if (!fixed_) c.len[s] = kV1Header + name_len_ + L;
    } else {
      put32(p, client_id);
      memcpy(p + kLegacyNameOff, cfg_.name.data(), name_len_);  // rest stays NUL
      memcpy(p + kLegacyTextOff, src, L);
    }
    if (!fixed_) c.plen[s] = L;
  }

  // Message number q (0-based) goes into its slot: its id is q + 1.
  void prepare(Conn& c, uint64_t q, int64_t now) {
    uint32_t s = uint32_t(q % W_);
    uint8_t* p = c.slots + size_t(s) * stride_;
    if (v1_) {
      put64(p + 6, q + 1);
    } else {
      put32(p + 4, uint32_t(q + 1));
    }
    if (!fixed_) {
      uint32_t L = pick_payload();
      const uint8_t* src = pool_.data() + next_rand() % kPoolExtra;
      if (v1_) {
        put32(p, 10 + name_len_ + L);
        memcpy(p + kV1Header + name_len_, src, L);
        c.len[s] = kV1Header + name_len_ + L;
      } else {
        uint8_t* t = p + kLegacyTextOff;
        memcpy(t, src, L);
        if (c.plen[s] > L) memset(t + L, 0, c.plen[s] - L);
      }
      c.plen[s] = L;
    }
    c.sent_ns[s] = now;
  }

  void set_interest(Conn& c, bool out) {
    if (c.want_out == out) return;
    c.want_out = out;
    epoll_event ev{};
    ev.events = EPOLLIN | (out ? uint32_t(EPOLLOUT) : 0u);
    ev.data.ptr = &c;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void start(Conn& c, int64_t now);
  void on_connected(Conn& c, int64_t now);
  void flush(Conn& c);
  void on_readable(Conn& c);
  bool parse_v1(Conn& c, const uint8_t* p, size_t n, int64_t now, size_t* used);
  bool parse_legacy(Conn& c, const uint8_t* p, size_t n, int64_t now);
  bool ack(Conn& c, uint64_t count, int64_t now, uint8_t status);
  void maybe_done(Conn& c, int64_t now);
  void finish(Conn& c, int64_t now);
  void fail(Conn& c, uint64_t* counter, const std::string& why, int64_t now);
  void publish() {
    p_sent.store(sent, std::memory_order_relaxed);
    p_acked.store(acked_ok, std::memory_order_relaxed);
    p_errors.store(connect_errors + mismatches + bad_status + server_errors + closed_early + timeouts,
                   std::memory_order_relaxed);
    p_open.store(open_, std::memory_order_relaxed);
  }

  Shared& sh_;
  const LoadConfig& cfg_;
  uint32_t id_;
  uint32_t count_ = 0;
  bool v1_ = true, fixed_ = true, uniform_ = true;
  uint32_t W_ = 1, name_len_ = 0, stride_ = 0;
  uint64_t rng_ = 1;
  std::vector<uint8_t> pool_;
  std::unique_ptr<Conn[]> conns_;
  std::unique_ptr<uint8_t[]> slot_mem_;
  std::unique_ptr<int64_t[]> sent_mem_;
  std::unique_ptr<uint32_t[]> len_mem_, plen_mem_;
  std::unique_ptr<uint8_t[]> rbuf_;
  int epfd_ = -1;
  uint32_t open_ = 0;       // connections started and not finished
  uint32_t next_start_ = 0; // next connection (local index) to start
  bool stop_sending_ = false;
};

void Worker::start(Conn& c, int64_t now) {
  c.last_progress = now;
  int fd = socket(sh_.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    c.state = State::kConnecting;
    open_++;
    fail(c, &connect_errors, std::string("socket: ") + strerror(errno), now);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c.fd = fd;
  c.state = State::kConnecting;
  open_++;
  int r = connect(fd, reinterpret_cast<const sockaddr*>(&sh_.addr), sh_.addr_len);
  if (r < 0 && errno != EINPROGRESS) {
    fail(c, &connect_errors, std::string("connect: ") + strerror(errno), now);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.ptr = &c;
  c.want_out = true;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  if (r == 0) on_connected(c, now);
}

void Worker::on_connected(Conn& c, int64_t now) {
  c.state = State::kRunning;
  c.hello_ok = !v1_;
  c.last_progress = now;
  flush(c);
  maybe_done(c, now);  // a duration run may have ended while it connected
}

void Worker::flush(Conn& c) {
  if (c.state != State::kRunning) return;
  uint64_t limit = c.acked + W_;
  uint64_t tgt = stop_sending_ ? c.queued : c.target;
  if (limit > tgt) limit = tgt;
  if (c.queued < limit) {
    int64_t now = now_ns();
    for (uint64_t q = c.queued; q < limit; q++) prepare(c, q, now);
    c.queued = limit;
  }
  bool blocked = false;
  for (;;) {
    iovec iov[kMaxIov];
    int n = 0;
    size_t total = 0;
    if (c.hello_off < kHelloLen) {
      iov[n].iov_base = c.hello + c.hello_off;
      iov[n].iov_len = kHelloLen - c.hello_off;
      total += iov[n++].iov_len;
    }
    uint64_t q = c.written;
    uint32_t off = c.partial;
    while (q < c.queued && n < kMaxIov) {
      uint32_t s = uint32_t(q % W_);
      if (uniform_) {
        uint64_t run = std::min<uint64_t>(c.queued - q, W_ - s);
        iov[n].iov_base = c.slots + size_t(s) * stride_ + off;
        iov[n].iov_len = size_t(run) * stride_ - off;
        q += run;
      } else {
        iov[n].iov_base = c.slots + size_t(s) * stride_ + off;
        iov[n].iov_len = c.len[s] - off;
        q++;
      }
      total += iov[n++].iov_len;
      off = 0;
    }
    if (n == 0) break;
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = size_t(n);
    ssize_t w = sendmsg(c.fd, &mh, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        blocked = true;
        break;
      }
      fail(c, &closed_early, std::string("send: ") + strerror(errno), now_ns());
      return;
    }
    size_t left = size_t(w);
    wire += left;
    if (c.hello_off < kHelloLen) {
      size_t h = std::min<size_t>(left, kHelloLen - c.hello_off);
      c.hello_off += uint32_t(h);
      left -= h;
    }
    if (uniform_) {
      uint64_t bytes = uint64_t(c.partial) + left;
      uint64_t full = bytes / stride_;
      c.written += full;
      sent += full;
      c.partial = uint32_t(bytes % stride_);
    } else {
      while (left > 0) {
        uint32_t rest = c.len[c.written % W_] - c.partial;
        if (left >= rest) {
          left -= rest;
          c.written++;
          sent++;
          c.partial = 0;
        } else {
          c.partial += uint32_t(left);
          left = 0;
        }
      }
    }
    if (size_t(w) < total) {
      blocked = true;
      break;
    }
    if (q >= c.queued) break;
  }
  set_interest(c, blocked);
}

// ACK of the next `count` messages in flight.
bool Worker::ack(Conn& c, uint64_t count, int64_t now, uint8_t status) {
  if (count == 0 || count > c.written - c.acked) {
    fail(c, &mismatches,
         "ACK count " + std::to_string(count) + " but " + std::to_string(c.written - c.acked) + " messages in flight",
         now);
    return false;
  }
  for (uint64_t q = c.acked; q < c.acked + count; q++) {
    uint32_t s = uint32_t(q % W_);
    int64_t d = now - c.sent_ns[s];
    hist.record(d > 0 ? uint64_t(d) : 0);
    if (status == 0) payload_acked += fixed_ ? cfg_.payload_min : c.plen[s];
  }
  c.acked += count;
  if (status == 0) {
    acked_ok += count;
  } else {
    bad_status += count;
    sh_.sample("ACK status " + std::to_string(status) + " for " + std::to_string(count) + " message(s) on connection " +
               std::to_string(c.index));
  }
  c.last_progress = now;
  return true;
}

bool Worker::parse_v1(Conn& c, const uint8_t* p, size_t n, int64_t now, size_t* used) {
  size_t i = 0;
  if (!c.hello_ok) {
    if (n < 4) {
      *used = 0;
      return true;
    }
    if (memcmp(p, "MSGS", 4) == 0) {
      if (n < kHelloLen) {
        *used = 0;
        return true;
      }
      if (p[4] != 1 || p[5] != 0) {
        fail(c, &server_errors, "HELLO_OK with version " + std::to_string(p[4]) + " status " + std::to_string(p[5]), now);
        return false;
      }
      c.hello_ok = true;
      i = kHelloLen;
    }
    // Otherwise a frame (ERR BUSY comes without HELLO_OK): parsed below.
  }
  while (n - i >= 5) {
    uint32_t len = get32(p + i);
    uint8_t type = p[i + 4];
    if (type == 0x81) {
      if (len != 16) {
        fail(c, &mismatches, "ACK frame with length " + std::to_string(len), now);
        return false;
      }
      if (n - i < 20) break;
      const uint8_t* f = p + i;
      uint8_t status = f[5];
      uint64_t count = get32(f + 8);
      uint64_t last = get64(f + 12);
      if (!c.hello_ok) {
        fail(c, &mismatches, "ACK before HELLO_OK", now);
        return false;
      }
      if (count > 0 && count <= c.written - c.acked && last != c.acked + count) {
        fail(c, &mismatches,
             "ACK last_msg_id " + std::to_string(last) + ", expected " + std::to_string(c.acked + count), now);
        return false;
      }
      ack_frames++;
      if (!ack(c, count, now, status)) return false;
      i += 20;
    } else if (type == 0x82) {
      if (len < 2 || len > 257) {
        fail(c, &mismatches, "ERR frame with length " + std::to_string(len), now);
        return false;
      }
      if (n - i < 4 + size_t(len)) break;
      std::string reason(reinterpret_cast<const char*>(p + i + 6), len - 2);
      fail(c, &server_errors, "server ERR code " + std::to_string(p[i + 5]) + ": " + reason, now);
      return false;
    } else {
      fail(c, &mismatches, "unexpected frame type " + std::to_string(type) + " from the server", now);
      return false;
    }
  }
  *used = i;
  return true;
}

bool Worker::parse_legacy(Conn& c, const uint8_t* p, size_t n, int64_t now) {
  static const char kAck[3] = {'a', 'c', 'k'};
  size_t i = 0;
  uint64_t whole = 0;
  while (i < n) {
    if (c.legacy_pos == 0 && n - i >= 3 && p[i] == 'a' && p[i + 1] == 'c' && p[i + 2] == 'k') {
      whole++;
      i += 3;
      continue;
    }
    if (p[i] != uint8_t(kAck[c.legacy_pos])) {
      fail(c, &mismatches, "legacy reply is not \"ack\" (byte " + std::to_string(p[i]) + ")", now);
      return false;
    }
    i++;
    if (++c.legacy_pos == 3) {
      c.legacy_pos = 0;
      whole++;
    }
  }
  if (whole > 0) {
    ack_frames += whole;
    return ack(c, whole, now, 0);
  }
  return true;
}

void Worker::on_readable(Conn& c) {
  uint8_t* buf = rbuf_.get();
  for (int rounds = 0; rounds < 4; rounds++) {
    size_t have = c.carry_len;
    if (have) memcpy(buf, c.carry, have);
    ssize_t r = read(c.fd, buf + have, kReadBuf);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      int64_t now = now_ns();
      fail(c, &closed_early, std::string("read: ") + strerror(errno), now);
      return;
    }
    int64_t now = now_ns();
    if (r == 0) {
      fail(c, &closed_early,
           "server closed the connection with " + std::to_string(c.queued - c.acked) + " message(s) unacknowledged",
           now);
      return;
    }
    size_t n = have + size_t(r);
    if (v1_) {
      size_t used = 0;
      if (!parse_v1(c, buf, n, now, &used)) return;
      size_t rest = n - used;
      if (rest > kCarry) {
        fail(c, &mismatches, "unparseable bytes from the server", now);
        return;
      }
      memmove(c.carry, buf + used, rest);
      c.carry_len = uint16_t(rest);
    } else {
      c.carry_len = 0;
      if (!parse_legacy(c, buf, n, now)) return;
    }
    maybe_done(c, now);
    if (c.state != State::kRunning) return;
    if (size_t(r) < kReadBuf) break;
  }
  flush(c);
}

void Worker::maybe_done(Conn& c, int64_t now) {
  if (c.state != State::kRunning) return;
  bool all = cfg_.messages ? c.acked >= c.target : (stop_sending_ && c.acked == c.queued);
  if (all && (c.hello_ok || c.acked > 0 || !v1_)) finish(c, now);
}

void Worker::finish(Conn& c, int64_t now) {
  close(c.fd);
  c.fd = -1;
  c.state = State::kDone;
  ok_conns++;
  open_--;
  end_ns = now;
}

void Worker::fail(Conn& c, uint64_t* counter, const std::string& why, int64_t now) {
  (*counter)++;
  sh_.sample("connection " + std::to_string(c.index) + ": " + why);
  if (c.fd >= 0) close(c.fd);
  c.fd = -1;
  unacked += c.written - c.acked;
  c.state = State::kFailed;
  failed_conns++;
  open_--;
  end_ns = now;
}

void Worker::run() {
  const int64_t t0 = sh_.t0;
  const int64_t deadline = cfg_.messages ? INT64_MAX : t0 + int64_t(cfg_.duration_ms) * 1000000;
  const int64_t stall = int64_t(cfg_.stall_timeout_ms) * 1000000;
  const uint32_t nthreads = std::max<uint32_t>(1, cfg_.threads);
  auto due = [&](uint32_t k) -> int64_t {
    if (cfg_.ramp_ms == 0 || cfg_.connections <= 1) return t0;
    uint64_t gi = uint64_t(id_) + uint64_t(k) * nthreads;
    return t0 + int64_t(uint64_t(cfg_.ramp_ms) * 1000000 * gi / cfg_.connections);
  };
  epoll_event evs[512];
  int64_t next_sweep = t0 + 100000000;
  for (;;) {
    int64_t now = now_ns();
    // Start the connections that are due (all at once without a ramp).
    while (next_start_ < count_ && due(next_start_) <= now && now < deadline) {
      start(conns_[next_start_++], now);
    }
    if (!stop_sending_ && now >= deadline) {
      stop_sending_ = true;
      for (uint32_t k = next_start_; k < count_; k++) conns_[k].state = State::kSkipped;
      next_start_ = count_;
      for (uint32_t k = 0; k < count_; k++) maybe_done(conns_[k], now);
    }
    if (now >= next_sweep) {
      next_sweep = now + 100000000;
      for (uint32_t k = 0; k < next_start_; k++) {
        Conn& c = conns_[k];
        if ((c.state == State::kRunning || c.state == State::kConnecting) && now - c.last_progress > stall) {
          fail(c, &timeouts,
               c.state == State::kConnecting ? "connect timed out"
                                             : "no ACK progress for " + std::to_string(cfg_.stall_timeout_ms) + " ms (" +
                                                   std::to_string(c.written - c.acked) + " message(s) in flight)",
               now);
        }
      }
    }
    publish();
    if (open_ == 0 && next_start_ >= count_) break;
    int64_t wake = next_sweep;
    if (next_start_ < count_) wake = std::min(wake, due(next_start_));
    if (!stop_sending_) wake = std::min(wake, deadline);
    int timeout = wake <= now ? 0 : int((wake - now + 999999) / 1000000);
    int n = epoll_wait(epfd_, evs, 512, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("epoll_wait: ") + strerror(errno));
    }
    for (int i = 0; i < n; i++) {
      Conn& c = *static_cast<Conn*>(evs[i].data.ptr);
      uint32_t e = evs[i].events;
      if (c.state == State::kConnecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          fail(c, &connect_errors, std::string("connect: ") + strerror(err), now_ns());
          continue;
        }
        if (e & (EPOLLOUT | EPOLLIN | EPOLLERR | EPOLLHUP)) on_connected(c, now_ns());
        if (c.state != State::kRunning) continue;
      }
      if (c.state != State::kRunning) continue;
      if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
      if (c.state == State::kRunning && (e & EPOLLOUT)) flush(c);
    }
  }
  if (end_ns == 0) end_ns = now_ns();
  publish();
  finished.store(true, std::memory_order_release);
}

}  // namespace

LoadResult LoadGen::run(const LoadConfig& cfg_in, const ProgressFn& progress) {
  LoadConfig cfg = cfg_in;
  if (cfg.connections == 0) throw std::runtime_error("connections must be at least 1");
  if (cfg.window == 0) throw std::runtime_error("window must be at least 1");
  if (cfg.messages == 0 && cfg.duration_ms == 0) throw std::runtime_error("give messages per connection or a duration");
  if (cfg.payload_min > cfg.payload_max) throw std::runtime_error("payload range: min is larger than max");
  if (cfg.threads == 0) cfg.threads = 1;
  if (cfg.threads > cfg.connections) cfg.threads = cfg.connections;
  if (cfg.protocol == Protocol::kLegacy) {
    if (cfg.payload_max > kLegacyTextMax)
      throw std::runtime_error("legacy payload is NUL-terminated text in 1024 bytes: at most 1023");
    if (cfg.name.size() > 127) throw std::runtime_error("legacy name: at most 127 bytes");
  } else {
    if (cfg.name.size() > 255) throw std::runtime_error("name: at most 255 bytes");
    if (cfg.payload_max > 64u * 1024 * 1024) throw std::runtime_error("payload: at most 64 MiB");
  }
  uint64_t stride = cfg.protocol == Protocol::kV1 ? kV1Header + cfg.name.size() + cfg.payload_max : kLegacyFrame;
  if (double(stride) * cfg.window * cfg.connections > 4.0 * 1024 * 1024 * 1024)
    throw std::runtime_error("connections x window x frame size is over 4 GiB of send slots; lower one of them");
  if (cfg.messages && cfg.messages > (cfg.protocol == Protocol::kLegacy ? 0xffffffffull : (1ull << 62)))
    throw std::runtime_error("too many messages per connection for the id space");

  Shared sh;
  sh.cfg = &cfg;
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string port = std::to_string(cfg.port);
  int gai = getaddrinfo(cfg.host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0 || !res) throw std::runtime_error("cannot resolve " + cfg.host + ": " + gai_strerror(gai));
  memcpy(&sh.addr, res->ai_addr, res->ai_addrlen);
  sh.addr_len = res->ai_addrlen;
  freeaddrinfo(res);

  std::vector<std::unique_ptr<Worker>> workers;
  for (uint32_t t = 0; t < cfg.threads; t++) workers.emplace_back(new Worker(sh, t, cfg.threads));
  sh.t0 = now_ns();
  std::vector<std::thread> threads;
  std::vector<std::string> thread_errors(cfg.threads);
  for (uint32_t t = 0; t < cfg.threads; t++) {
    threads.emplace_back([&, t] {
      try {
        workers[t]->run();
      } catch (const std::exception& e) {
        thread_errors[t] = e.what();
        workers[t]->finished.store(true);
      }
    });
  }
  int64_t next_progress = sh.t0 + int64_t(cfg.progress_interval_ms) * 1000000;
  for (;;) {
    bool all = true;
    for (auto& w : workers) all = all && w->finished.load(std::memory_order_acquire);
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    int64_t now = now_ns();
    if (progress && cfg.progress_interval_ms > 0 && now >= next_progress) {
      next_progress = now + int64_t(cfg.progress_interval_ms) * 1000000;
      Progress p;
      p.elapsed_ms = double(now - sh.t0) / 1e6;
      for (auto& w : workers) {
        p.sent += w->p_sent.load(std::memory_order_relaxed);
        p.acked += w->p_acked.load(std::memory_order_relaxed);
        p.errors += w->p_errors.load(std::memory_order_relaxed);
        p.connections_open += w->p_open.load(std::memory_order_relaxed);
      }
      progress(p);
    }
  }
  for (auto& th : threads) th.join();
  for (auto& e : thread_errors)
    if (!e.empty()) throw std::runtime_error(e);

  LoadResult r;
  Histogram h;
  int64_t end = sh.t0;
  for (auto& w : workers) {
    h.merge(w->hist);
    r.messages_sent += w->sent;
    r.messages_acked += w->acked_ok;
    r.wire_bytes_sent += w->wire;
    r.payload_bytes_acked += w->payload_acked;
    r.ack_frames += w->ack_frames;
    r.connect_errors += w->connect_errors;
    r.ack_mismatches += w->mismatches;
    r.bad_status += w->bad_status;
    r.server_errors += w->server_errors;
    r.closed_early += w->closed_early;
    r.timeouts += w->timeouts;
    r.messages_unacked += w->unacked;
    r.connections_ok += w->ok_conns;
    r.connections_failed += w->failed_conns;
    end = std::max(end, w->end_ns);
  }
  r.errors = r.connect_errors + r.ack_mismatches + r.bad_status + r.server_errors + r.closed_early + r.timeouts;
  r.elapsed_ms = double(end - sh.t0) / 1e6;
  double secs = r.elapsed_ms > 0 ? r.elapsed_ms / 1e3 : 1e-9;
  r.msgs_per_sec = double(r.messages_acked) / secs;
  r.wire_mb_per_sec = double(r.wire_bytes_sent) / secs / 1e6;
  r.payload_mb_per_sec = double(r.payload_bytes_acked) / secs / 1e6;
  r.latency.count = h.count();
  r.latency.min_us = double(h.min()) / 1e3;
  r.latency.mean_us = h.mean() / 1e3;
  r.latency.p50_us = h.quantile(0.50) / 1e3;
  r.latency.p90_us = h.quantile(0.90) / 1e3;
  r.latency.p99_us = h.quantile(0.99) / 1e3;
  r.latency.p999_us = h.quantile(0.999) / 1e3;
  r.latency.max_us = double(h.max()) / 1e3;
  r.error_samples = sh.samples;
  return r;
}

}  // namespace loadgen
