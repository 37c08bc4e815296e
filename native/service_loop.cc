#include "service_loop.h"
#include "spin_wait.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "codec.h"
#include "time_util.h"

namespace msgs {

namespace {
constexpr size_t kReadChunk = 256 * 1024;     // most bytes one read takes (fairness)
constexpr size_t kMaxBlock = 4 * 1024 * 1024; // a batch block this full is pushed mid-pass
constexpr size_t kLargeFrame = 256 * 1024;    // frames this big are assembled per connection
constexpr size_t kMaxOutBytes = 1 << 20;      // unsent ACK bytes before we stop reading
constexpr size_t kKeepInBuffer = 64 * 1024;   // partial-frame buffer kept between frames
constexpr size_t kPoolSize = 16;
constexpr uint64_t kLingerMs = 2000;          // after an ERR: wait for the client to close
constexpr uint64_t kDrainLingerMs = 1000;
constexpr int kPauseCheckMs = 250;            // a paused thread looks around at least this often
constexpr long kSweepIntervalUs = 250 * 1000; // timeouts are checked by one sweep, not a timer each
constexpr uint64_t kHintIntervalMs = 10000;   // protocol-mismatch hints: one log line per thread per interval

// The protocol-mismatch hints are logged at most once per interval by each
// service thread (the thread that parses is the one that logs).
thread_local RateLimit t_hint_log{kHintIntervalMs};

const char kLegacyOnV1Reason[] =
    "bad magic: expected \"MSGS\" HELLO; this looks like a legacy client (1160-byte structs): "
    "serve it with protocol: 'legacy' (--protocol legacy)";

// A v1 port's first bytes that failed the magic check: do they look like the
// legacy protocol's struct (u32 client_id, u32 msg_id, then a NUL-padded
// name)? Judged on what arrived: the name's bytes must be text, then NULs.
bool looks_legacy(const uint8_t* p, size_t n) {
  if (n <= 8) return false;
  size_t end = std::min(n, size_t{8 + legacy::kNameSize});
  size_t i = 8;
  while (i < end && p[i] >= 0x20 && p[i] != 0x7f) i++;
  while (i < end && p[i] == 0) i++;
  return i == end;
}

// A v1 HELLO ("MSGS", version 1) at the start of a legacy port's connection.
bool looks_v1_hello(const uint8_t* p, size_t n) {
  return n >= 5 && memcmp(p, "MSGS", 4) == 0 && p[4] == 1;
}
}  // namespace

struct ServiceLoop::Conn {
  ServiceLoop* owner;
  int fd;
  uint32_t slot;
  uint32_t gen;
  State state = State::kHello;
  bool reading = true;
  bool dirty = false;
  bool closed = false;        // freed by flush_dirty (it was on the dirty list)
  bool writing = false;       // write event armed
  bool shut = false;          // shutdown(SHUT_WR) done
  uint8_t err_code = 0;
  uint8_t run_status = 0;
  uint32_t client_id = 0;
  uint32_t run_count = 0;     // ACK run being coalesced
  uint64_t run_last = 0;
  event* ev_read = nullptr;
  event* ev_write = nullptr;
  uint64_t last_activity_ms = 0;
  uint64_t accepted_ms = 0;
  uint64_t frame_started_ms = 0;
  uint64_t linger_until_ms = 0;
  uint64_t acks_owed = 0;     // parsed, waiting for the writer
  uint64_t inflight_bytes = 0;// bytes of those messages (maxInflightBytesPerConnection)
  uint64_t messages = 0;
  uint64_t id = 0;            // engine-wide, for connection events
  const char* err_reason = nullptr;
  size_t need_total = 0;      // size of the partial frame, once known
  uint8_t* in = nullptr;      // partial frame carried between reads
  size_t in_len = 0, in_cap = 0;
  uint8_t* out = nullptr;     // bytes the socket did not take yet
  size_t out_len = 0, out_cap = 0;
};

namespace {

void grow(uint8_t** buf, size_t* cap, size_t need) {
  if (*cap >= need) return;
  size_t ncap = *cap ? *cap : 64;
  while (ncap < need) ncap *= 2;
  void* p = std::realloc(*buf, ncap);
  if (!p) throw std::bad_alloc();
  *buf = static_cast<uint8_t*>(p);
  *cap = ncap;
}

// "127.0.0.1:53412" or "[::1]:53412", for connection events.
std::string format_address(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return "unknown";
}

std::string peer_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "unknown";
  return format_address(ss);
}

}  // namespace

ServiceLoop::ServiceLoop(const Config& cfg, const LiveSettings& live, uint32_t index, SharedQueue& queue,
                         Events& events, std::atomic<uint32_t>& open_connections)
    : cfg_(cfg),
      live_(live),
      index_(index),
      queue_(queue),
      events_(events),
      open_connections_(open_connections),
      producer_(queue.add_producer(notifier_)),
      legacy_(cfg.protocol == Protocol::kLegacy) {
  base_ = event_base_new();
  if (!base_) throw std::runtime_error("event_base_new failed");
  notify_event_ = event_new(base_, notifier_.fd(), EV_READ | EV_PERSIST, on_notify_cb, this);
  event_add(notify_event_, nullptr);
  sweep_event_ = event_new(base_, -1, EV_PERSIST, on_sweep_cb, this);
  timeval tv{0, kSweepIntervalUs};
  event_add(sweep_event_, &tv);
  batch_ = fresh_batch();
}

ServiceLoop::~ServiceLoop() {
  join();
  for (Slot& s : slots_) {
    if (s.conn) close_conn(s.conn, "server stopped");
  }
  for (Conn* c : dirty_) {
    if (c->closed) delete c;
  }
  while (MpscNode* n = handoffs_.pop()) {
    HandOff* h = static_cast<HandOff*>(n);
    close(h->fd);
    open_connections_.fetch_sub(1, std::memory_order_relaxed);
    delete h;
  }
  while (MpscNode* n = completions_.pop()) delete static_cast<Batch*>(n);
  for (Batch* b : pool_) delete b;
  delete batch_;
  event_free(notify_event_);
  event_free(sweep_event_);
  event_base_free(base_);
}

void ServiceLoop::start() {
  thread_ = std::thread([this] { run(); });
  std::string name = "msgs-svc-" + std::to_string(index_);
  set_thread_name(thread_, name.c_str());
}

void ServiceLoop::join() {
  if (thread_.joinable()) thread_.join();
}

void ServiceLoop::hand_off(int fd, const sockaddr* addr, socklen_t len) {
  HandOff* h = new HandOff;
  h->fd = fd;
  h->len = std::min<socklen_t>(len, sizeof h->addr);
  memcpy(&h->addr, addr, h->len);
  handoffs_.push(h);
  notifier_.notify();
}

void ServiceLoop::request_drain(uint64_t deadline_ms) {
  drain_deadline_ms_ = deadline_ms;
  // release: publishes drain_deadline_ms_ to the service thread.
  drain_requested_.store(true, std::memory_order_release);
  notifier_.signal();
}

// ---------------------------------------------------------------------------
// The loop

void ServiceLoop::run() {
  while (!done_) {
    process_mailbox();
    flush_dirty();  // ACKs for completions picked up just now: never sleep on them
    if (done_) break;
    if (!draining_ && queue_.full()) {
      wait_for_queue_space();
      continue;
    }
    // A completion is due for a batch in flight: a short spin saves the wake-up (spin_wait.h).
    if (batches_out_ > 0 && spin_until([this] { return !completions_.empty(); }, kServiceSpinNs)) continue;
    // Sleep in epoll only when no work was posted meanwhile; posts after
    // prepare_sleep() write the eventfd, which wakes the loop.
    notifier_.prepare_sleep();
    // acquire: see drain_deadline_ms_ if the flag is set.
    bool work = !handoffs_.empty() || !completions_.empty() ||
                (!draining_ && drain_requested_.load(std::memory_order_acquire));
    event_base_loop(base_, work ? EVLOOP_NONBLOCK : EVLOOP_ONCE);
    notifier_.cancel_sleep();
    flush_batch();
    flush_dirty();
  }
  flush_batch();  // the writer stores it even though nobody waits for the ACK
  flush_dirty();
}

// The shared queue is full: stop reading sockets (TCP back-pressure) until the
// writer has taken enough (the handshake is SharedQueue::pause()). ACKs for
// completed batches still go out.
void ServiceLoop::wait_for_queue_space() {
  stats.paused.add();
  queue_.pause(producer_, kPauseCheckMs, [this] {
    // acquire: see drain_deadline_ms_ if the flag is set.
    return !handoffs_.empty() || !completions_.empty() || drain_requested_.load(std::memory_order_acquire);
  });
  process_mailbox();
  flush_dirty();
}

void ServiceLoop::process_mailbox() {
  while (MpscNode* n = handoffs_.pop()) add_connection(static_cast<HandOff*>(n));
  while (MpscNode* n = completions_.pop()) on_completion(static_cast<Batch*>(n));
  if (!draining_ && drain_requested_.load(std::memory_order_acquire)) begin_drain();
  if (draining_ && drain_finished()) done_ = true;
}

void ServiceLoop::on_notify_cb(evutil_socket_t, short, void* arg) {
  ServiceLoop* self = static_cast<ServiceLoop*>(arg);
  self->notifier_.drain();
  self->process_mailbox();
}

void ServiceLoop::on_sweep_cb(evutil_socket_t, short, void* arg) {
  static_cast<ServiceLoop*>(arg)->sweep();
}

// ---------------------------------------------------------------------------
// Connections

void ServiceLoop::add_connection(HandOff* h) {
  int fd = h->fd;
  sockaddr_storage addr = h->addr;
  delete h;
  if (draining_) {
    close(fd);
    open_connections_.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  Conn* c = new Conn;
  c->owner = this;
  c->fd = fd;
  if (free_slots_.empty()) {
    c->slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(Slot{});
  } else {
    c->slot = free_slots_.back();
    free_slots_.pop_back();
  }
  slots_[c->slot].conn = c;
  c->gen = slots_[c->slot].gen;
  c->accepted_ms = c->last_activity_ms = monotonic_ms();
  if (legacy_) c->state = State::kOpen;  // no handshake
  c->ev_read = event_new(base_, fd, EV_READ | EV_PERSIST, on_read_cb, c);
  event_add(c->ev_read, nullptr);
  c->id = events_.next_connection_id();
  if (events_.connection_events()) events_.emit(ConnectionEvent{c->id, format_address(addr), index_});
  stats.accepted.add();
  stats.connections.add();
}

ServiceLoop::Conn* ServiceLoop::lookup(uint32_t slot, uint32_t gen) {
  const Slot& s = slots_[slot];
  return s.gen == gen ? s.conn : nullptr;
}

void ServiceLoop::set_reading(Conn* c, bool on) {
  if (c->reading == on) return;
  c->reading = on;
  if (on) {
    event_add(c->ev_read, nullptr);
  } else {
    event_del(c->ev_read);
  }
}

void ServiceLoop::close_conn(Conn* c, const char* reason) {
  if (draining_ && c->acks_owed > 0) {
    unacked_closed_++;
    unacked_messages_ += c->acks_owed;
  }
  if (events_.connection_events()) events_.emit(DisconnectEvent{c->id, reason, c->messages, c->acks_owed});
  event_free(c->ev_read);
  if (c->ev_write) event_free(c->ev_write);
  close(c->fd);
  Slot& s = slots_[c->slot];
  s.conn = nullptr;
  s.gen++;  // batches still in flight now miss this connection
  free_slots_.push_back(c->slot);
  open_connections_.fetch_sub(1, std::memory_order_relaxed);
  stats.connections.sub();
  std::free(c->in);
  std::free(c->out);
  if (c->dirty) {
    c->closed = true;  // flush_dirty() deletes it
  } else {
    delete c;
  }
}

// ---------------------------------------------------------------------------
// Reading and parsing

void ServiceLoop::on_read_cb(evutil_socket_t, short, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  c->owner->on_read(c);
}

void ServiceLoop::on_read(Conn* c) {
  if (c->state == State::kLinger) {
    uint8_t sink[16384];
    ssize_t n = recv(c->fd, sink, sizeof sink, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) close_conn(c, c->err_reason);
    return;
  }
  if (c->state == State::kFailing) return;
  // Over the bound: leave the bytes in the socket; run() pauses this thread.
  if (queue_.full()) return;
  if (c->out_len > kMaxOutBytes) {  // the client does not read its ACKs
    set_reading(c, false);
    return;
  }
  if (c->inflight_bytes >= live_.max_inflight_bytes_per_connection.load(std::memory_order_relaxed)) {
    // This client alone must not fill the shared queue: wait for its ACKs.
    stats.inflight_pauses.add();
    set_reading(c, false);
    return;
  }
  c->last_activity_ms = monotonic_ms();
  if (c->in_len > 0 && c->need_total >= kLargeFrame) {
    read_large_frame(c);
    return;
  }
  size_t carry = c->in_len;
  size_t want = kReadChunk;
  if (c->need_total > carry) want = std::max(want, c->need_total - carry);
  if (batch_->used > 0 && batch_->used + carry + want > kMaxBlock) flush_batch();
  batch_->reserve(carry + want);
  if (batch_->msgs.empty()) batch_->time_us = realtime_us();
  uint8_t* base = batch_->data + batch_->used;
  if (carry) memcpy(base, c->in, carry);
  ssize_t n = recv(c->fd, base + carry, want, 0);
  stats.read_calls.add();
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    close_conn(c, n == 0 ? "closed by client" : "reset by client");
    return;
  }
  stats.bytes_in.add(static_cast<uint64_t>(n));
  size_t avail = carry + static_cast<size_t>(n);
  size_t used = parse(c, base, avail);
  batch_->used += used;
  keep_partial(c, base + used, avail - used);
}

// A frame too big to copy around on every read: gather it in the
// connection's own buffer, then move it into the batch once, whole.
bool ServiceLoop::read_large_frame(Conn* c) {
  grow(&c->in, &c->in_cap, c->need_total);
  ssize_t n = recv(c->fd, c->in + c->in_len, c->need_total - c->in_len, 0);
  stats.read_calls.add();
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    close_conn(c, n == 0 ? "closed by client" : "reset by client");
    return false;
  }
  stats.bytes_in.add(static_cast<uint64_t>(n));
  c->in_len += static_cast<size_t>(n);
  if (c->in_len < c->need_total) return false;
  size_t size = c->in_len;
  if (batch_->used > 0 && batch_->used + size > kMaxBlock) flush_batch();
  batch_->reserve(size);
  if (batch_->msgs.empty()) batch_->time_us = realtime_us();
  uint8_t* base = batch_->data + batch_->used;
  memcpy(base, c->in, size);
  size_t used = parse(c, base, size);
  batch_->used += used;
  keep_partial(c, base + used, size - used);
  return true;
}

// Parses what `base` holds for connection c; returns the bytes consumed by
// complete frames (they stay in the batch block, referenced by MsgRefs).
size_t ServiceLoop::parse(Conn* c, uint8_t* base, size_t avail) {
  if (legacy_) return parse_legacy(c, base, avail);
  size_t pos = 0;
  if (c->state == State::kHello) {
    wire::ErrCode err;
    switch (wire::parse_hello(base, avail, &c->client_id, &err)) {
      case wire::Parse::kNeedMore:
        return 0;
      case wire::Parse::kError:
        if (err == wire::kErrBadMagic && looks_legacy(base, avail)) {
          if (t_hint_log.allow(monotonic_ms())) {
            events_.log(LogLevel::kWarn, "connection from " + peer_address(c->fd) +
                                             " sent what looks like a legacy 1160-byte struct, but this server "
                                             "speaks protocol: 'v1' (refused with ERR BAD_MAGIC): serve legacy "
                                             "clients with protocol: 'legacy' (--protocol legacy)");
          }
          fail(c, err, kLegacyOnV1Reason);
          return 0;
        }
        fail(c, err, err == wire::kErrBadMagic     ? "bad magic: expected \"MSGS\" HELLO"
                     : err == wire::kErrBadVersion ? "unsupported protocol version (server speaks 1)"
                                                   : "bad HELLO: flags and reserved must be zero");
        return 0;
      case wire::Parse::kOk:
        break;
    }
    c->state = State::kOpen;
    uint8_t ok[wire::kHelloSize];
    append_out(c, ok, wire::encode_hello_ok(ok, 0, cfg_.limits.max_message_bytes));
    mark_dirty(c);
    pos = wire::kHelloSize;
  }
  while (c->state == State::kOpen && pos < avail) {
    wire::Frame f;
    wire::ErrCode err;
    size_t need = 0;
    wire::Parse r = wire::parse_frame(base + pos, avail - pos, cfg_.limits.max_message_bytes, &f, &err, &need);
    if (r == wire::Parse::kNeedMore) {
      c->need_total = need;
      break;
    }
    if (r == wire::Parse::kError) {
      fail(c, err, err == wire::kErrFrameTooLarge ? "frame length over the limit"
                   : err == wire::kErrUnknownType ? "unknown frame type"
                                                  : "malformed frame");
      break;
    }
    add_message(c, c->client_id, f.name_len, f.msg_id, f.payload_len, static_cast<size_t>(f.name - batch_->data), 0);
    pos += f.size;
    c->need_total = 0;
  }
  return pos;
}

// The original protocol: back-to-back fixed-size structs, no handshake, no
// error frames (any 1160 bytes are a message).
size_t ServiceLoop::parse_legacy(Conn* c, uint8_t* base, size_t avail) {
  // A v1 client waits for a HELLO_OK this protocol never sends: say why.
  if (c->messages == 0 && looks_v1_hello(base, avail) && t_hint_log.allow(monotonic_ms())) {
    events_.log(LogLevel::kWarn, "connection from " + peer_address(c->fd) +
                                     " sent a protocol v1 HELLO, but this server speaks protocol: 'legacy' "
                                     "(1160-byte structs, no HELLO_OK): connect v1 clients to a server with "
                                     "protocol: 'v1' (--protocol v1), or use a legacy client (msgclient --legacy)");
  }
  size_t pos = 0;
  legacy::Frame f;
  while (c->state == State::kOpen && legacy::parse_frame(base + pos, avail - pos, &f) == wire::Parse::kOk) {
    size_t name_offset = static_cast<size_t>(f.name - batch_->data);
    uint16_t gap = static_cast<uint16_t>(f.text - f.name - f.name_len);
    add_message(c, f.client_id, f.name_len, f.msg_id, f.text_len, name_offset, gap);
    pos += legacy::kFrameSize;
  }
  c->need_total = legacy::kFrameSize;
  return pos;
}

void ServiceLoop::add_message(Conn* c, uint32_t client_id, uint8_t name_len, uint64_t msg_id, uint32_t payload_len,
                              size_t name_offset, uint16_t payload_gap) {
  uint8_t status = payload_len > cfg_.limits.max_message_bytes ? uint8_t{wire::kAckTooLarge} : kPending;
  batch_->msgs.push_back(MsgRef{c->slot, c->gen, static_cast<uint32_t>(name_offset), payload_len, msg_id, client_id,
                                name_len, status, payload_gap});
  stats.messages_in.add();
  c->messages++;
  if (cfg_.ack_mode == AckMode::kReceived) {
    ack(c, status == kPending ? uint8_t{wire::kAckOk} : status, msg_id);
  } else {
    c->acks_owed++;
    c->inflight_bytes += name_len + payload_len;
  }
}

void ServiceLoop::keep_partial(Conn* c, const uint8_t* p, size_t n) {
  if (c->state != State::kHello && c->state != State::kOpen) n = 0;
  if (n == 0) {
    c->in_len = 0;
    c->frame_started_ms = 0;
    if (c->in_cap > kKeepInBuffer) {
      std::free(c->in);
      c->in = nullptr;
      c->in_cap = 0;
    }
    return;
  }
  if (p != c->in) {
    grow(&c->in, &c->in_cap, n);
    memmove(c->in, p, n);
  }
  if (c->in_len == 0) c->frame_started_ms = monotonic_ms();
  c->in_len = n;
}

// ---------------------------------------------------------------------------
// Batches

Batch* ServiceLoop::fresh_batch() {
  if (!pool_.empty()) {
    Batch* b = pool_.back();
    pool_.pop_back();
    return b;
  }
  Batch* b = new Batch;
  b->owner = index_;
  b->msgs.reserve(1024);
  return b;
}

void ServiceLoop::recycle(Batch* b) {
  if (pool_.size() >= kPoolSize) {
    delete b;
    return;
  }
  if (b->cap > kMaxBlock) {  // one huge frame: do not keep its block around
    std::free(b->data);
    b->data = nullptr;
    b->cap = 0;
  }
  b->reset();
  pool_.push_back(b);
}

void ServiceLoop::flush_batch() {
  if (batch_->msgs.empty()) {
    batch_->used = 0;
    return;
  }
  queue_.push(batch_);
  stats.batches_pushed.add();
  batches_out_++;
  batch_ = fresh_batch();
}

void ServiceLoop::on_completion(Batch* b) {
  batches_out_--;
  if (cfg_.ack_mode != AckMode::kReceived) {
    for (const MsgRef& m : b->msgs) {
      Conn* c = lookup(m.conn_slot, m.conn_gen);
      if (c) settle(c, m);  // else closed meanwhile: nobody to tell
    }
  }
  recycle(b);
}

// The writer is done with one of c's messages: ACK it, and resume reading a
// connection that waited for its in-flight bytes to drain.
void ServiceLoop::settle(Conn* c, const MsgRef& m) {
  c->acks_owed--;
  c->inflight_bytes -= m.name_len + m.payload_len;
  ack(c, m.status == kPending ? uint8_t{wire::kAckWriteFailed} : m.status, m.msg_id);
  if (!c->reading && c->state == State::kOpen && !draining_ && c->out_len <= kMaxOutBytes &&
      c->inflight_bytes < live_.max_inflight_bytes_per_connection.load(std::memory_order_relaxed)) {
    set_reading(c, true);
  }
}

// ---------------------------------------------------------------------------
// ACKs and output

void ServiceLoop::ack(Conn* c, uint8_t status, uint64_t msg_id) {
  if (legacy_) {
    // "ack" per message. The original protocol cannot say "failed", and an
    // "ack" must never be a lie: on any other status the connection closes.
    // After a failure no later "ack" may be sent: the client would take it
    // for the failed message's.
    if (c->state == State::kLinger || (c->state == State::kFailing && c->err_code == wire::kErrInternal)) return;
    if (status < kAckStatuses) stats.acks[status].add();
    if (status == wire::kAckOk) {
      append_out(c, legacy::kAck, legacy::kAckSize);
      mark_dirty(c);
    } else {
      fail(c, wire::kErrInternal, "message could not be stored");
    }
    return;
  }
  if (c->run_count > 0 && (c->run_status != status || c->run_count == UINT32_MAX)) emit_ack_run(c);
  c->run_status = status;
  c->run_count++;
  c->run_last = msg_id;
  mark_dirty(c);
}

void ServiceLoop::emit_ack_run(Conn* c) {
  if (c->run_count == 0) return;
  uint8_t f[wire::kAckFrameSize];
  append_out(c, f, wire::encode_ack(f, c->run_status, c->run_count, c->run_last));
  if (c->run_status < kAckStatuses) stats.acks[c->run_status].add(c->run_count);
  stats.ack_frames.add();
  c->run_count = 0;
}

void ServiceLoop::mark_dirty(Conn* c) {
  if (c->dirty) return;
  c->dirty = true;
  dirty_.push_back(c);
}

// One write per touched connection per pass, however many ACKs it got.
void ServiceLoop::flush_dirty() {
  for (size_t i = 0; i < dirty_.size(); i++) {
    Conn* c = dirty_[i];
    c->dirty = false;
    if (c->closed) {
      delete c;
      continue;
    }
    emit_ack_run(c);
    if (c->state == State::kFailing && c->acks_owed == 0) {
      finish_failing(c);
    } else {
      write_out(c);
    }
  }
  dirty_.clear();
}

void ServiceLoop::append_out(Conn* c, const uint8_t* p, size_t n) {
  grow(&c->out, &c->out_cap, c->out_len + n);
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
}

// Returns false when the connection was closed.
bool ServiceLoop::write_out(Conn* c) {
  size_t off = 0;
  while (off < c->out_len) {
    ssize_t n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    close_conn(c, "reset by client");
    return false;
  }
  if (off > 0) {
    memmove(c->out, c->out + off, c->out_len - off);
    c->out_len -= off;
  }
  if (c->out_len > 0) {
    if (!c->ev_write) c->ev_write = event_new(base_, c->fd, EV_WRITE | EV_PERSIST, on_write_cb, c);
    if (!c->writing) {
      event_add(c->ev_write, nullptr);
      c->writing = true;
    }
    return true;
  }
  if (c->writing) {
    event_del(c->ev_write);
    c->writing = false;
  }
  if (c->state == State::kLinger && !c->shut) {
    shutdown(c->fd, SHUT_WR);  // the ERR is out: tell the client we are done
    c->shut = true;
  }
  if (c->state == State::kOpen && !c->reading && !draining_) set_reading(c, true);
  return true;
}

void ServiceLoop::on_write_cb(evutil_socket_t, short, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  c->owner->write_out(c);
}

// A connection-fatal error: stop reading; once the ACKs owed for what was
// already parsed are sent, send ERR and close (finish_failing).
void ServiceLoop::fail(Conn* c, uint8_t code, const char* reason) {
  if (c->state == State::kFailing || c->state == State::kLinger) return;
  c->state = State::kFailing;
  c->err_code = code;
  c->err_reason = reason;
  c->in_len = 0;
  set_reading(c, false);
  mark_dirty(c);
}

void ServiceLoop::finish_failing(Conn* c) {
  if (!legacy_) {  // the original protocol has no error frame: just close
    uint8_t f[wire::kMaxErrFrameSize];
    append_out(c, f, wire::encode_err(f, c->err_code, c->err_reason, strlen(c->err_reason)));
  }
  if (c->err_code < kErrCodes) stats.errors[c->err_code].add();
  start_linger(c, draining_ ? kDrainLingerMs : kLingerMs);
  write_out(c);
}

// After an ERR: keep reading (and discarding) until the client closes, so
// that our close does not turn into a reset that could destroy the ERR.
void ServiceLoop::start_linger(Conn* c, uint64_t linger_ms) {
  c->state = State::kLinger;
  c->linger_until_ms = monotonic_ms() + linger_ms;
  set_reading(c, true);
}

// ---------------------------------------------------------------------------
// Timers and shutdown

void ServiceLoop::sweep() {
  // Read once per sweep: server.reconfigure() may change them.
  struct {
    uint32_t handshake_timeout_ms, idle_timeout_ms, frame_timeout_ms;
  } cfg{live_.handshake_timeout_ms.load(std::memory_order_relaxed),
        live_.idle_timeout_ms.load(std::memory_order_relaxed), live_.frame_timeout_ms.load(std::memory_order_relaxed)};
  uint64_t now = monotonic_ms();
  for (const Slot& s : slots_) {
    Conn* c = s.conn;
    if (!c) continue;
    switch (c->state) {
      case State::kHello:
        if (cfg.handshake_timeout_ms && now - c->accepted_ms >= cfg.handshake_timeout_ms)
          fail(c, wire::kErrHandshakeTimeout, "no complete HELLO in time");
        break;
      case State::kOpen:
        if (cfg.idle_timeout_ms && now - c->last_activity_ms >= cfg.idle_timeout_ms) {
          fail(c, wire::kErrIdleTimeout, "idle timeout");
        } else if (cfg.frame_timeout_ms && c->in_len > 0 && now - c->frame_started_ms >= cfg.frame_timeout_ms) {
          fail(c, wire::kErrSlowFrame, "frame not completed in time");
        }
        break;
      case State::kFailing:
        break;
      case State::kLinger:
        if (now >= c->linger_until_ms) close_conn(c, c->err_reason);
        break;
    }
  }
  if (draining_ && now >= drain_deadline_ms_) {
    for (const Slot& s : slots_) {
      if (s.conn) close_conn(s.conn, "shutdown timeout");
    }
  }
  flush_dirty();
  if (draining_ && drain_finished()) done_ = true;
  if (done_) event_base_loopbreak(base_);
}

void ServiceLoop::begin_drain() {
  draining_ = true;
  for (const Slot& s : slots_) {
    Conn* c = s.conn;
    if (!c) continue;
    if (c->state == State::kHello || c->state == State::kOpen) {
      fail(c, wire::kErrShuttingDown, "server shutting down");
    }
  }
}

bool ServiceLoop::drain_finished() {
  if (stats.connections.get() > 0 || !batch_->msgs.empty()) return false;
  return batches_out_ == 0 || monotonic_ms() >= drain_deadline_ms_;
}

}  // namespace msgs
