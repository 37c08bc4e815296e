#include "service_loop.h"

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
#include "event_pass.h"
#include "time_util.h"
#include "tls.h"

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
// TLS handshake steps (each may cost a signature) per loop pass: the rest
// wait for the next pass, so a burst of new connections cannot starve the
// open ones of this thread.
constexpr uint32_t kHandshakesPerPass = 16;
// Partial-frame bytes a connection holds without drawing on
// limits.maxPartialFrameBytes: the HELLO and AUTH fit, and so does the tail
// of a read of small frames (part of the documented per-connection overhead).
constexpr size_t kPartialAllowance = 4096;
// What a connection in the TLS handshake may make OpenSSL allocate, drawn
// from limits.maxPartialFrameBytes before its first handshake step: the read
// buffer (64 KiB, tls.cc), a ClientHello as large as OpenSSL accepts
// (CLIENT_HELLO_MAX_LENGTH, 128 KiB + 324; SSL_CTX_set_max_cert_list bounds
// only the client's Certificate message) and the session's own state.
constexpr size_t kHandshakeCharge = 208 * 1024;
// What a TLS connection holding an unfinished record may hold in OpenSSL's
// read buffer (64 KiB, tls.cc, plus the record overhead).
constexpr size_t kRecordBufferCharge = 68 * 1024;

// The protocol-mismatch hints are logged at most once per interval by each
// service thread (the thread that parses is the one that logs).
thread_local RateLimit t_hint_log{kHintIntervalMs};
// Refused TLS handshakes and credentials: one line per thread per interval.
thread_local RateLimit t_tls_log{kHintIntervalMs};
thread_local RateLimit t_auth_log{kHintIntervalMs};
// Failed polls of the thread's event loop (event_pass.h).
thread_local RateLimit t_loop_log{kHintIntervalMs};

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

const char kTlsOnPlainReason[] =
    "bad magic: this looks like a TLS ClientHello (0x16 0x03): this port speaks plaintext";

// A TLS record header (handshake, version 3.x) where a HELLO should be.
bool looks_tls(const uint8_t* p, size_t n) {
  return n >= 2 && p[0] == 0x16 && p[1] == 0x03;
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
  bool read_wants_write = false;  // TLS: a read waits for the socket to be writable
  bool write_wants_read = false;  // TLS: a write waits for the socket to be readable
  bool budget_wait = false;       // waiting for limits.maxPartialFrameBytes
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
  size_t charged = 0;         // bytes drawn from limits.maxPartialFrameBytes
  size_t tls_charged = 0;     // drawn for OpenSSL's buffers: a handshake, or an unfinished record
  bool record_held = false;   // TLS: OpenSSL holds part of a record after the last read
  bool tls_closed = false;    // TLS: the last read also saw close_notify/EOF (act after parsing)
  bool tls_failed = false;    // TLS: the last read also saw an error (act after parsing)
  uint64_t record_started_ms = 0;  // when record_held last became true (frameTimeoutMs)
  std::shared_ptr<const Security> sec;  // the credentials it was accepted with
  std::unique_ptr<TlsSession> tls;      // null on a plaintext port
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
                         Events& events, std::atomic<uint32_t>& open_connections, const Credentials& credentials,
                         std::atomic<uint64_t>& partial_bytes)
    : cfg_(cfg),
      live_(live),
      index_(index),
      queue_(queue),
      events_(events),
      open_connections_(open_connections),
      credentials_(credentials),
      partial_bytes_(partial_bytes),
      partial_budget_(cfg.limits.max_partial_frame_bytes),
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
    // A completion is due any moment: a short spin saves the wake-up (spin_wait.h).
    if (completion_due() && completion_spin_.spin([this] { return !completions_.empty(); })) continue;
    // Sleep in epoll only when no work was posted meanwhile; posts after
    // prepare_sleep() write the eventfd, which wakes the loop.
    notifier_.prepare_sleep();
    // acquire: see drain_deadline_ms_ if the flag is set.
    bool work = !handoffs_.empty() || !completions_.empty() ||
                (!draining_ && drain_requested_.load(std::memory_order_acquire));
    handshake_budget_ = kHandshakesPerPass;
    handshakes_deferred_ = 0;
    rearm_reads();  // active events: the loop below does not sleep
    if (event_pass(base_, !work) < 0) pass_failed("service thread", errno, stats.loop_errors, t_loop_log, events_);
    stats.handshakes_waiting.set(handshakes_deferred_);
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
  c->sec = credentials_.get();  // once per connection: a reload affects new ones only
  if (c->sec && c->sec->tls) {
    c->tls = std::make_unique<TlsSession>(c->sec->tls->ctx(), fd);
    c->state = State::kTls;
  }
  c->ev_read = event_new(base_, fd, EV_READ | EV_PERSIST, on_read_cb, c);
  event_add(c->ev_read, nullptr);
  c->id = events_.next_connection_id();
  if (events_.connection_events()) events_.emit(ConnectionEvent{c->id, format_address(addr), index_});
  stats.accepted.add();
  stats.connections.add();
  if (c->tls && !c->tls->ssl()) handshake_failed(c, "cannot create a TLS session (out of memory)");
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
    // Bytes OpenSSL already holds will not wake epoll.
    if (c->tls && c->tls->ssl() && c->tls->has_pending()) event_active(c->ev_read, EV_READ, 0);
  } else if (!c->write_wants_read) {
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
  c->tls.reset();
  c->sec.reset();
  charge_partial(c, 0, true);
  charge_tls(c, 0, true);
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
  if (c->write_wants_read) {  // TLS: the pending write waited for this
    c->write_wants_read = false;
    if (!write_out(c)) return;
    if (!c->reading) {
      // The write may want the socket readable again: keep the event then.
      if (!c->write_wants_read) event_del(c->ev_read);
      return;
    }
  }
  if (c->state == State::kTls) {
    handshake_step(c);
    return;
  }
  if (c->state == State::kLinger) {
    uint8_t sink[16384];
    ssize_t n = conn_recv(c, sink, sizeof sink);
    if (n < 0 || c->tls_closed || c->tls_failed) close_conn(c, c->err_reason);
    return;
  }
  if (c->state == State::kFailing) return;
  // Over the bound: leave the bytes in the socket; run() pauses this thread.
  // Bytes OpenSSL already holds will not wake epoll: come back for them.
  if (queue_.full()) {
    if (c->tls && c->tls->has_pending()) read_next_pass(c);
    return;
  }
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
  // A TLS read may leave an unfinished record in OpenSSL's read buffer,
  // charged after the read: with the budget spent, wait for room first.
  if (c->tls && c->tls_charged == 0 && over_budget()) {
    wait_for_budget(c);
    return;
  }
  size_t carry = c->in_len;
  size_t want = kReadChunk;
  if (c->need_total > carry) want = std::max(want, c->need_total - carry);
  if (over_budget()) {
    // The budget is spent: read only what leaves at most the allowance
    // unfinished, so small frames still get through and nothing is charged.
    if (carry >= kPartialAllowance) {
      wait_for_budget(c);
      return;
    }
    want = kPartialAllowance - carry;
  }
  if (batch_->used > 0 && batch_->used + carry + want > kMaxBlock) flush_batch();
  batch_->reserve(carry + want);
  if (batch_->msgs.empty()) batch_->time_us = realtime_us();
  uint8_t* base = batch_->data + batch_->used;
  if (carry) memcpy(base, c->in, carry);
  ssize_t n = conn_recv(c, base + carry, want);
  stats.read_calls.add();
  if (n <= 0) {
    if (n < 0) close_conn(c, n == -1 ? "closed by client" : "reset by client");
    else after_tls_read(c);  // nothing decrypted: OpenSSL may hold part of a record
    return;
  }
  stats.bytes_in.add(static_cast<uint64_t>(n));
  size_t avail = carry + static_cast<size_t>(n);
  size_t used = parse(c, base, avail);
  batch_->used += used;
  keep_partial(c, base + used, avail - used);
  after_tls_read(c);
}

// A frame too big to copy around on every read: gather it in the
// connection's own buffer, then move it into the batch once, whole. The
// whole frame is drawn from the partial-frame budget before the buffer
// grows; without room the connection waits (TCP back-pressure) and, past
// frameTimeoutMs, gets SLOW_FRAME.
bool ServiceLoop::read_large_frame(Conn* c) {
  if (!charge_partial(c, c->need_total, false)) {
    wait_for_budget(c);
    return false;
  }
  c->budget_wait = false;
  grow(&c->in, &c->in_cap, c->need_total);
  ssize_t n = conn_recv(c, c->in + c->in_len, c->need_total - c->in_len);
  stats.read_calls.add();
  if (n <= 0) {
    if (n < 0) close_conn(c, n == -1 ? "closed by client" : "reset by client");
    else after_tls_read(c);
    return false;
  }
  stats.bytes_in.add(static_cast<uint64_t>(n));
  c->in_len += static_cast<size_t>(n);
  if (c->in_len < c->need_total) return after_tls_read(c);
  size_t size = c->in_len;
  if (batch_->used > 0 && batch_->used + size > kMaxBlock) flush_batch();
  batch_->reserve(size);
  if (batch_->msgs.empty()) batch_->time_us = realtime_us();
  uint8_t* base = batch_->data + batch_->used;
  memcpy(base, c->in, size);
  size_t used = parse(c, base, size);
  batch_->used += used;
  keep_partial(c, base + used, size - used);
  return after_tls_read(c);
}

// After a TLS read was parsed. A close or error that came with data is acted
// on now (nothing else would wake the connection for it). An unfinished
// record left in OpenSSL's read buffer is part of a frame in progress: it is
// charged to limits.maxPartialFrameBytes and frameTimeoutMs runs from when it
// was first held. Returns false when c was closed.
bool ServiceLoop::after_tls_read(Conn* c) {
  if (!c->tls) return true;
  if (c->tls_closed || c->tls_failed) {
    close_conn(c, c->tls_closed ? "closed by client" : "reset by client");
    return false;
  }
  bool held = c->record_held && (c->state == State::kHello || c->state == State::kAuth || c->state == State::kOpen);
  if (!held) {
    c->record_started_ms = 0;
    charge_tls(c, 0, true);
    return true;
  }
  if (c->record_started_ms == 0) c->record_started_ms = monotonic_ms();
  charge_tls(c, kRecordBufferCharge, true);  // already read
  return true;
}

// c's read event runs again in the next loop pass (not in this one: one
// connection takes at most kReadChunk per pass), or once the shared queue
// has room again.
void ServiceLoop::read_next_pass(Conn* c) {
  read_again_.emplace_back(c->slot, c->gen);
}

void ServiceLoop::rearm_reads() {
  if (read_again_.empty()) return;
  std::vector<std::pair<uint32_t, uint32_t>> list;
  list.swap(read_again_);
  for (const auto& w : list) {
    Conn* c = lookup(w.first, w.second);
    if (c && c->reading) event_active(c->ev_read, EV_READ, 0);
  }
}

// ---------------------------------------------------------------------------
// Transport: plaintext or TLS, one read path. Both return the bytes moved
// (> 0), 0 when the socket would block, -1 when the peer closed, -2 on an
// error.

ssize_t ServiceLoop::conn_recv(Conn* c, uint8_t* buf, size_t len) {
  if (!c->tls) {
    ssize_t n = recv(c->fd, buf, len, 0);
    if (n > 0) return n;
    if (n == 0) return -1;
    return errno == EAGAIN || errno == EINTR ? 0 : -2;
  }
  size_t n = 0;
  switch (c->tls->read(buf, len, &n)) {
    case TlsIo::kOk:
      // Stopped with the buffer full: what OpenSSL still holds will not wake
      // epoll, so come back for it in the next pass.
      c->record_held = false;
      if (c->tls->has_pending()) read_next_pass(c);
      break;
    case TlsIo::kWantRead:
      // What OpenSSL holds now is part of a record it cannot decrypt yet.
      c->record_held = c->tls->holds_partial_record();
      break;
    case TlsIo::kWantWrite:
      c->read_wants_write = true;
      arm_write(c);
      break;
    case TlsIo::kClosed:
      if (n == 0) return -1;
      c->tls_closed = true;  // after_tls_read() closes once the data is parsed
      break;
    case TlsIo::kError:
      if (n == 0) return -2;
      c->tls_failed = true;
      break;
  }
  return static_cast<ssize_t>(n);
}

ssize_t ServiceLoop::conn_send(Conn* c, const uint8_t* buf, size_t len) {
  if (!c->tls) {
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    if (n > 0) return n;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    return -2;
  }
  size_t n = 0;
  switch (c->tls->write(buf, len, &n)) {
    case TlsIo::kOk:
    case TlsIo::kWantWrite:
      break;
    case TlsIo::kWantRead:
      // The write goes on when the socket is readable: on_read retries it.
      c->write_wants_read = true;
      event_add(c->ev_read, nullptr);
      break;
    case TlsIo::kClosed:
    case TlsIo::kError:
      if (n == 0) return -2;
      break;
  }
  return static_cast<ssize_t>(n);
}

void ServiceLoop::arm_write(Conn* c) {
  if (!c->ev_write) c->ev_write = event_new(base_, c->fd, EV_WRITE | EV_PERSIST, on_write_cb, c);
  if (!c->writing) {
    event_add(c->ev_write, nullptr);
    c->writing = true;
  }
}

// One step of the TLS handshake, at most kHandshakesPerPass per loop pass.
void ServiceLoop::handshake_step(Conn* c) {
  if (handshake_budget_ == 0) {
    // Level-triggered: the socket is still readable (or writable) next pass.
    handshakes_deferred_++;
    stats.handshake_waits.add();
    return;
  }
  // Before OpenSSL reads anything of this connection: without room in the
  // budget it is not read (its bytes wait in the kernel) until the sweep
  // finds room, or handshakeTimeoutMs closes it.
  if (c->tls_charged == 0 && !charge_tls(c, kHandshakeCharge, false)) {
    wait_for_budget(c);
    return;
  }
  c->budget_wait = false;
  handshake_budget_--;
  switch (c->tls->handshake()) {
    case TlsIo::kOk:
      stats.tls_handshakes.add();
      charge_tls(c, 0, true);  // OpenSSL freed the handshake buffers
      c->state = State::kHello;
      c->accepted_ms = monotonic_ms();  // handshakeTimeoutMs again for the HELLO
      if (c->writing && c->out_len == 0) {
        event_del(c->ev_write);
        c->writing = false;
      }
      // The client's HELLO may have come with its last handshake flight.
      event_active(c->ev_read, EV_READ, 0);
      return;
    case TlsIo::kWantRead:
      if (c->writing) {
        event_del(c->ev_write);
        c->writing = false;
      }
      return;
    case TlsIo::kWantWrite:
      arm_write(c);
      return;
    case TlsIo::kClosed:
      handshake_failed(c, "connection closed during the handshake");
      return;
    case TlsIo::kError:
      handshake_failed(c, tls_error_reason());
      return;
  }
}

// No ERR frame can reach a peer that does not speak TLS: count, log (at most
// once per interval), close.
void ServiceLoop::handshake_failed(Conn* c, const std::string& why) {
  stats.tls_failures.add();
  if (t_tls_log.allow(monotonic_ms())) {
    events_.log(LogLevel::kWarn, "TLS handshake with " + peer_address(c->fd) + " failed: " + why +
                                     " (a plaintext client on a TLS port, a certificate the server does not "
                                     "trust, or no common protocol version; further failures counted in "
                                     "tlsHandshakeFailures)");
  }
  close_conn(c, "TLS handshake failed");
}

// ---------------------------------------------------------------------------
// The partial-frame budget (limits.maxPartialFrameBytes). One counter shared
// by every service thread; relaxed is enough: each thread's own additions
// are exact (atomic read-modify-write), nothing else is published through
// it, and a value read a moment stale only lets one more read through or
// makes one connection wait for the next retry.

bool ServiceLoop::over_budget() const {
  return partial_bytes_.load(std::memory_order_relaxed) >= partial_budget_;
}

// Sets c's charge for holding `bytes` of an unfinished frame (the allowance
// is free). Without `force`, fails when the budget has no room; with it (the
// bytes are already read), always succeeds.
bool ServiceLoop::charge_partial(Conn* c, size_t bytes, bool force) {
  size_t want = bytes > kPartialAllowance ? bytes - kPartialAllowance : 0;
  if (want <= c->charged) {
    if (want < c->charged) partial_bytes_.fetch_sub(c->charged - want, std::memory_order_relaxed);
    c->charged = want;
    return true;
  }
  size_t delta = want - c->charged;
  uint64_t before = partial_bytes_.fetch_add(delta, std::memory_order_relaxed);
  if (!force && before + delta > partial_budget_) {
    partial_bytes_.fetch_sub(delta, std::memory_order_relaxed);
    return false;
  }
  c->charged = want;
  return true;
}

// Sets c's charge for OpenSSL's buffers (a handshake in progress, or an
// unfinished record in the read buffer); same rules as charge_partial.
bool ServiceLoop::charge_tls(Conn* c, size_t bytes, bool force) {
  if (bytes <= c->tls_charged) {
    if (bytes < c->tls_charged) partial_bytes_.fetch_sub(c->tls_charged - bytes, std::memory_order_relaxed);
    c->tls_charged = bytes;
    return true;
  }
  size_t delta = bytes - c->tls_charged;
  uint64_t before = partial_bytes_.fetch_add(delta, std::memory_order_relaxed);
  if (!force && before + delta > partial_budget_) {
    partial_bytes_.fetch_sub(delta, std::memory_order_relaxed);
    return false;
  }
  c->tls_charged = bytes;
  return true;
}

// Stop reading c until the sweep finds room again (it retries every waiter).
void ServiceLoop::wait_for_budget(Conn* c) {
  if (!c->budget_wait) {
    c->budget_wait = true;
    stats.partial_waits.add();
  }
  set_reading(c, false);
  budget_waiters_.emplace_back(c->slot, c->gen);
}

void ServiceLoop::resume_budget_waiters() {
  std::vector<std::pair<uint32_t, uint32_t>> waiters;
  waiters.swap(budget_waiters_);
  for (const auto& w : waiters) {
    Conn* c = lookup(w.first, w.second);
    if (c && c->state != State::kFailing && c->state != State::kLinger && !draining_) set_reading(c, true);
  }
}

// Parses what `base` holds for connection c; returns the bytes consumed by
// complete frames (they stay in the batch block, referenced by MsgRefs).
size_t ServiceLoop::parse(Conn* c, uint8_t* base, size_t avail) {
  if (legacy_) return parse_legacy(c, base, avail);
  size_t pos = 0;
  if (c->state == State::kHello) {
    pos = parse_hello(c, base, avail);
    if (pos == 0) return 0;
  }
  if (c->state == State::kAuth) {
    pos = parse_auth(c, base, avail, pos);
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
      if (err == wire::kErrUnknownType && base[pos + wire::kLengthSize] == wire::kTypeAuth) {
        refuse(c, wire::kErrUnauthenticated, nullptr);  // AUTH not announced in the HELLO
        break;
      }
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

// The HELLO; returns the bytes it took (0: not complete, or refused).
size_t ServiceLoop::parse_hello(Conn* c, uint8_t* base, size_t avail) {
  wire::ErrCode err;
  uint8_t flags = 0;
  switch (wire::parse_hello_flags(base, avail, &c->client_id, &flags, &err)) {
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
      if (err == wire::kErrBadMagic && !c->tls && looks_tls(base, avail)) {
        if (t_hint_log.allow(monotonic_ms())) {
          events_.log(LogLevel::kWarn, "connection from " + peer_address(c->fd) +
                                           " sent what looks like a TLS ClientHello, but this port speaks "
                                           "plaintext (refused with ERR BAD_MAGIC): configure tls on the server "
                                           "(--tls-cert, --tls-key) or connect without TLS");
        }
        fail(c, err, kTlsOnPlainReason);
        return 0;
      }
      fail(c, err, err == wire::kErrBadMagic     ? "bad magic: expected \"MSGS\" HELLO"
                   : err == wire::kErrBadVersion ? "unsupported protocol version (server speaks 1)"
                                                 : "bad HELLO: flags other than bit 0 (AUTH follows) and reserved must be zero");
      return 0;
    case wire::Parse::kOk:
      break;
  }
  if (flags & wire::kHelloFlagAuth) {
    c->state = State::kAuth;
  } else if (!admit(c, nullptr)) {
    return 0;
  }
  return wire::kHelloSize;
}

// The AUTH frame at base + pos; returns the bytes taken up to its end (pos
// when it is not complete yet: nothing after it is looked at before then).
size_t ServiceLoop::parse_auth(Conn* c, uint8_t* base, size_t avail, size_t pos) {
  wire::Auth a;
  wire::ErrCode err;
  size_t need = 0;
  switch (wire::parse_auth(base + pos, avail - pos, &a, &err, &need)) {
    case wire::Parse::kNeedMore:
      c->need_total = need;
      return pos;
    case wire::Parse::kError:
      if (err == wire::kErrUnauthenticated) {
        refuse(c, err, nullptr);
      } else {
        fail(c, err, "malformed AUTH frame (token of 1..1024 bytes expected)");
      }
      return pos;
    case wire::Parse::kOk:
      break;
  }
  c->need_total = 0;
  const Principal* p = nullptr;
  if (a.mechanism == wire::kAuthToken && c->sec && c->sec->auth_enabled) {
    p = c->sec->auth.check_token(a.token, a.token_len);
  }
  if (!p) {
    refuse(c, wire::kErrUnauthenticated, nullptr);
    return pos;
  }
  if (!admit(c, p)) return pos;
  return pos + a.size;
}

// Decides whether c may write as its HELLO's client id: `principal` is the
// token's holder (null without a token); a verified client certificate names
// one too. On success the connection is open and HELLO_OK is queued.
bool ServiceLoop::admit(Conn* c, const Principal* principal) {
  bool certificate_any = false;  // a verified certificate, no auth.principals map
  if (!principal && c->tls) {
    std::string cn;
    if (!c->tls->peer_common_name(&cn)) {
      // A certificate whose CN is ambiguous names nobody: refused, never
      // taken for an anonymous client.
      refuse(c, wire::kErrUnauthenticated, "(certificate CN: more than one, empty, over 255 bytes or with a NUL)");
      return false;
    }
    if (!cn.empty()) {
      if (c->sec->auth_enabled && c->sec->auth.certificate_map()) {
        principal = c->sec->auth.find_certificate(cn);
        if (!principal) {
          refuse(c, wire::kErrForbidden, cn.c_str());
          return false;
        }
      } else {
        certificate_any = true;
      }
    }
  }
  if (c->sec && c->sec->auth_enabled) {
    if (principal) {
      if (!principal->allows(c->client_id)) {
        refuse(c, wire::kErrForbidden, principal->name.c_str());
        return false;
      }
    } else if (!certificate_any) {
      if (c->sec->auth_required) {
        refuse(c, wire::kErrUnauthenticated, nullptr);
        return false;
      }
      // Not required: an anonymous client may use only ids no principal owns.
      if (c->sec->auth.claimed(c->client_id)) {
        refuse(c, wire::kErrForbidden, nullptr);
        return false;
      }
    }
  }
  if (principal || certificate_any) stats.auth_accepted.add();
  c->state = State::kOpen;
  uint8_t ok[wire::kHelloSize];
  append_out(c, ok, wire::encode_hello_ok(ok, 0, cfg_.limits.max_message_bytes));
  mark_dirty(c);
  return true;
}

// Credentials refused: the reply says only which of the two codes, never
// whether a token was close or which principal exists.
void ServiceLoop::refuse(Conn* c, uint8_t code, const char* principal) {
  if (t_auth_log.allow(monotonic_ms())) {
    std::string who = principal ? std::string(" (principal '") + principal + "')" : std::string(" (no accepted credentials)");
    events_.log(LogLevel::kWarn, "connection from " + peer_address(c->fd) + " refused with " +
                                     wire::err_code_name(code) + " for client id " + std::to_string(c->client_id) +
                                     who + "; further refusals counted in errors." + wire::err_code_name(code));
  }
  fail(c, code, code == wire::kErrForbidden ? "client id not permitted" : "authentication required or failed");
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
  if (c->state != State::kHello && c->state != State::kAuth && c->state != State::kOpen) n = 0;
  if (n == 0) {
    c->in_len = 0;
    c->frame_started_ms = 0;
    c->budget_wait = false;
    charge_partial(c, 0, true);
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
  // Already read: charged even past the budget (over_budget() keeps what a
  // read may leave unfinished within the allowance once the budget is spent).
  charge_partial(c, n, true);
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
  writer_awake_ = !queue_.push(batch_);
  stats.batches_pushed.add();
  batches_out_++;
  batch_ = fresh_batch();
}

// Whether the writer's completion of a batch in flight is due within a spin:
// only while the writer was awake when the last batch went out (why: spin_wait.h).
bool ServiceLoop::completion_due() const { return batches_out_ > 0 && writer_awake_; }

void ServiceLoop::on_completion(Batch* b) {
  completion_spin_.arrived();
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
    ssize_t n = conn_send(c, c->out + off, c->out_len - off);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) break;
    close_conn(c, "reset by client");
    return false;
  }
  if (off > 0) {
    memmove(c->out, c->out + off, c->out_len - off);
    c->out_len -= off;
  }
  if (c->out_len > 0) {
    if (!c->write_wants_read) arm_write(c);  // else on_read retries it
    return true;
  }
  if (c->writing && !c->read_wants_write) {
    event_del(c->ev_write);
    c->writing = false;
  }
  if (c->state == State::kLinger && !c->shut) {
    if (c->tls) c->tls->shutdown();  // close_notify, then the TCP FIN
    shutdown(c->fd, SHUT_WR);  // the ERR is out: tell the client we are done
    c->shut = true;
  }
  if (c->state == State::kOpen && !c->reading && !draining_) set_reading(c, true);
  return true;
}

void ServiceLoop::on_write_cb(evutil_socket_t, short, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  ServiceLoop* self = c->owner;
  if (c->state == State::kTls) {
    self->handshake_step(c);
    return;
  }
  if (c->read_wants_write) {  // TLS: the pending read waited for this
    c->read_wants_write = false;
    if (c->out_len == 0 && c->writing) {
      event_del(c->ev_write);
      c->writing = false;
    }
    event_active(c->ev_read, EV_READ, 0);
    if (c->out_len == 0) return;
  }
  self->write_out(c);
}

// A connection-fatal error: stop reading; once the ACKs owed for what was
// already parsed are sent, send ERR and close (finish_failing).
void ServiceLoop::fail(Conn* c, uint8_t code, const char* reason) {
  if (c->state == State::kFailing || c->state == State::kLinger) return;
  c->state = State::kFailing;
  c->err_code = code;
  c->err_reason = reason;
  c->in_len = 0;
  charge_partial(c, 0, true);
  c->record_held = false;
  c->record_started_ms = 0;
  charge_tls(c, 0, true);
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
      case State::kTls:
        if (cfg.handshake_timeout_ms && now - c->accepted_ms >= cfg.handshake_timeout_ms)
          handshake_failed(c, "no complete TLS handshake within limits.handshakeTimeoutMs");
        break;
      case State::kHello:
      case State::kAuth:
        if (cfg.handshake_timeout_ms && now - c->accepted_ms >= cfg.handshake_timeout_ms)
          fail(c, wire::kErrHandshakeTimeout, "no complete HELLO in time");
        break;
      case State::kOpen:
        if (cfg.idle_timeout_ms && now - c->last_activity_ms >= cfg.idle_timeout_ms) {
          fail(c, wire::kErrIdleTimeout, "idle timeout");
        } else if (cfg.frame_timeout_ms && c->in_len > 0 && now - c->frame_started_ms >= cfg.frame_timeout_ms) {
          fail(c, wire::kErrSlowFrame, "frame not completed in time");
        } else if (cfg.frame_timeout_ms && c->record_started_ms && now - c->record_started_ms >= cfg.frame_timeout_ms) {
          fail(c, wire::kErrSlowFrame, "TLS record not completed in time");
        }
        break;
      case State::kFailing:
        break;
      case State::kLinger:
        if (now >= c->linger_until_ms) close_conn(c, c->err_reason);
        break;
    }
  }
  resume_budget_waiters();
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
    if (c->state == State::kTls) {
      close_conn(c, "server shutting down");  // no ERR frame before TLS is up
    } else if (c->state == State::kHello || c->state == State::kAuth || c->state == State::kOpen) {
      fail(c, wire::kErrShuttingDown, "server shutting down");
    }
  }
}

bool ServiceLoop::drain_finished() {
  if (stats.connections.get() > 0 || !batch_->msgs.empty()) return false;
  return batches_out_ == 0 || monotonic_ms() >= drain_deadline_ms_;
}

}  // namespace msgs
