// One load thread: see worker.h.
#include "worker.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "clock.h"

namespace loadgen {

constexpr int kMaxEvents = 512;                  // epoll events per wait
constexpr int64_t kSweepNs = 100 * kNsPerMs;     // how often stalled connections are looked for
// Full read buffers taken from one connection per event before its window is
// refilled: ACKs are small, so more than one buffer means a backlog, and the
// other connections are waiting too.
constexpr int kReadRounds = 4;

// The connections of a run that worker `id` owns: id, id + nthreads, ...
static uint32_t owned(uint32_t connections, uint32_t id, uint32_t nthreads) {
  return id < connections ? (connections - id - 1) / nthreads + 1 : 0;
}

// ---- The schedule --------------------------------------------------------

RunPlan::RunPlan(const LoadConfig& cfg, int64_t t0_, uint32_t worker_id, uint32_t nthreads)
    : t0(t0_),
      deadline(cfg.messages ? INT64_MAX : t0_ + ms_to_ns(cfg.duration_ms)),
      stall_ns(ms_to_ns(cfg.stall_timeout_ms)),
      ramp_ms_(cfg.ramp_ms),
      connections_(cfg.connections),
      worker_id_(worker_id),
      nthreads_(nthreads) {}

int64_t RunPlan::due(uint32_t k) const {
  if (ramp_ms_ == 0 || connections_ <= 1) return t0;
  uint64_t i = uint64_t(worker_id_) + uint64_t(k) * nthreads_;  // its number in the run
  return t0 + int64_t(uint64_t(ramp_ms_) * uint64_t(kNsPerMs) * i / connections_);
}

// ---- The loop ------------------------------------------------------------

Worker::Worker(Shared& sh, uint32_t id, uint32_t nthreads)
    : sh_(sh),
      cfg_(*sh.cfg),
      id_(id),
      nthreads_(nthreads),
      count_(owned(cfg_.connections, id, nthreads)),
      sender_(cfg_, id, count_, stats),
      receiver_(sender_.shape(), stats, sh.samples),
      conns_(new Conn[count_]) {
  for (uint32_t k = 0; k < count_; k++) {
    Conn& c = conns_[k];
    c.index = id + k * nthreads;
    c.target = cfg_.messages ? cfg_.messages : UINT64_MAX;
    sender_.attach(c, k);
  }
}

Worker::~Worker() {
  for (uint32_t k = 0; k < count_; k++) {
    tls_close(conns_[k].ssl, false);
    if (conns_[k].fd >= 0) close(conns_[k].fd);
  }
}

void Worker::run() {
  const RunPlan plan(cfg_, sh_.t0, id_, nthreads_);
  epoll_event events[kMaxEvents];
  int64_t next_sweep = plan.t0 + kSweepNs;
  for (;;) {
    int64_t now = now_ns();
    start_due(plan, now);
    if (!stop_sending_ && now >= plan.deadline) stop_sending(now);
    if (now >= next_sweep) {
      next_sweep = now + kSweepNs;
      sweep_stalled(plan, now);
    }
    live.publish(stats, open_);
    if (all_finished()) break;
    int n = poller_.wait(events, kMaxEvents, wait_ms(plan, now, next_sweep));
    for (int i = 0; i < n; i++) dispatch(events[i]);
  }
  if (stats.end_ns == 0) stats.end_ns = now_ns();
  live.publish(stats, open_);
  // release: pairs with LoadGen::run's acquire poll (stats.h).
  live.finished.store(true, std::memory_order_release);
}

// The connections whose ramp time has come (all at once without a ramp).
void Worker::start_due(const RunPlan& plan, int64_t now) {
  while (next_start_ < count_ && plan.due(next_start_) <= now && now < plan.deadline) {
    start(conns_[next_start_++], now);
  }
}

// A duration run's end: no new messages or connections; each connection
// finishes once the messages it sent are ACKed.
void Worker::stop_sending(int64_t now) {
  stop_sending_ = true;
  for (uint32_t k = next_start_; k < count_; k++) conns_[k].state = State::kSkipped;
  next_start_ = count_;
  for (uint32_t k = 0; k < count_; k++) maybe_done(conns_[k], now);
}

void Worker::sweep_stalled(const RunPlan& plan, int64_t now) {
  for (uint32_t k = 0; k < next_start_; k++) {
    Conn& c = conns_[k];
    if (!c.live() || now - c.last_progress <= plan.stall_ns) continue;
    fail(c, ErrorKind::kTimeout,
         c.state == State::kConnecting ? "connect timed out"
                                       : "no ACK progress for " + std::to_string(cfg_.stall_timeout_ms) + " ms (" +
                                             std::to_string(c.in_flight()) + " message(s) in flight)",
         now);
  }
}

// Until the next thing the loop must do without an event, rounded up to a
// whole ms: waking early would only spin.
int Worker::wait_ms(const RunPlan& plan, int64_t now, int64_t next_sweep) const {
  int64_t wake = next_sweep;
  if (next_start_ < count_) wake = std::min(wake, plan.due(next_start_));
  if (!stop_sending_) wake = std::min(wake, plan.deadline);
  return wake <= now ? 0 : int((wake - now + kNsPerMs - 1) / kNsPerMs);
}

void Worker::dispatch(const epoll_event& ev) {
  Conn& c = *static_cast<Conn*>(ev.data.ptr);
  if (c.state == State::kConnecting) on_connect_event(c, ev.events);
  if (c.state != State::kRunning) return;
  if (ev.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
  if (c.state == State::kRunning && (ev.events & EPOLLOUT)) flush(c);
}

// ---- A connection's life (conn.h) ----------------------------------------

void Worker::start(Conn& c, int64_t now) {
  c.last_progress = now;
  c.state = State::kConnecting;
  open_++;
  c.fd = tcp_socket(sh_.addr);
  if (c.fd < 0) {
    fail(c, ErrorKind::kConnect, std::string("socket: ") + strerror(errno), now);
    return;
  }
  Connect r = tcp_connect(c.fd, sh_.addr);
  if (r == Connect::kFailed) {
    fail(c, ErrorKind::kConnect, std::string("connect: ") + strerror(errno), now);
    return;
  }
  poller_.add(c);
  if (r == Connect::kDone) on_tcp_connected(c, now);
}

void Worker::on_connect_event(Conn& c, uint32_t events) {
  if (c.ssl != nullptr) {  // TCP is up: the TLS handshake goes on
    handshake(c);
    return;
  }
  int err = socket_error(c.fd);
  if (err != 0) {
    fail(c, ErrorKind::kConnect, std::string("connect: ") + strerror(err), now_ns());
    return;
  }
  if (events & (EPOLLOUT | EPOLLIN | EPOLLERR | EPOLLHUP)) on_tcp_connected(c, now_ns());
}

// Plaintext: running. TLS: the handshake starts (still kConnecting, so the
// stall timeout bounds it as it bounds the connect).
void Worker::on_tcp_connected(Conn& c, int64_t now) {
  if (sh_.tls == nullptr) {
    on_connected(c, now);
    return;
  }
  std::string why;
  c.ssl = sh_.tls->open(c.fd, &why);
  if (c.ssl == nullptr) {
    fail(c, ErrorKind::kConnect, why, now);
    return;
  }
  handshake(c);
}

// One step of the TLS handshake; EPOLLOUT only while OpenSSL waits to write.
void Worker::handshake(Conn& c) {
  std::string why;
  switch (tls_handshake(c.ssl, &why)) {
    case TlsStep::kDone:
      on_connected(c, now_ns());
      return;
    case TlsStep::kWantRead:
      poller_.want_out(c, false);
      return;
    case TlsStep::kWantWrite:
      poller_.want_out(c, true);
      return;
    case TlsStep::kFailed:
      fail(c, ErrorKind::kConnect, why, now_ns());
      return;
  }
}

void Worker::on_connected(Conn& c, int64_t now) {
  c.state = State::kRunning;
  c.hello_ok = !sender_.shape().v1;
  c.last_progress = now;
  flush(c);
  maybe_done(c, now);  // a duration run may have ended while it connected
}

// Reads until the socket is drained (or kReadRounds full buffers), then
// refills the window with what the ACKs freed and writes it. Drained after a
// full buffer still refills: those ACKs freed room, and with nothing in
// flight no further ACK would come to wake the connection. TLS reads on past
// kReadRounds while OpenSSL holds bytes: epoll would not signal them again.
void Worker::on_readable(Conn& c) {
  for (int round = 0; round < kReadRounds || c.ssl != nullptr; round++) {
    int64_t now = 0;
    Receiver::Result r = receiver_.read_once(c, &now);
    if (r == Receiver::Result::kInterrupted) continue;
    if (r == Receiver::Result::kDrained) break;
    if (r == Receiver::Result::kFault) {
      fail(c, receiver_.fault().kind, receiver_.fault().why, now);
      return;
    }
    maybe_done(c, now);
    if (c.state != State::kRunning) return;
    if (r == Receiver::Result::kShort) break;
  }
  flush(c);
}

// One send round (send.h); EPOLLOUT only while the socket is full.
void Worker::flush(Conn& c) {
  if (c.state != State::kRunning) return;
  int err = 0;
  Sender::Result r = sender_.round(c, stop_sending_, &err);
  if (r == Sender::Result::kFailed) {
    fail(c, ErrorKind::kClosedEarly, err == EPROTO && c.ssl != nullptr ? tls_error() : std::string("send: ") + strerror(err),
         now_ns());
    return;
  }
  poller_.want_out(c, r == Sender::Result::kBlocked);
}

void Worker::maybe_done(Conn& c, int64_t now) {
  if (c.state != State::kRunning) return;
  bool all = cfg_.messages ? c.acked >= c.target : (stop_sending_ && c.acked == c.queued);
  // v1: not before the server has accepted it (HELLO_OK), so a refusal still counts.
  if (all && (c.hello_ok || c.acked > 0 || !sender_.shape().v1)) finish(c, now);
}

void Worker::finish(Conn& c, int64_t now) {
  stats.conns_ok++;
  tls_close(c.ssl, true);  // close_notify: a clean end, not a cut connection
  c.ssl = nullptr;
  close_conn(c, State::kDone, now);
}

void Worker::fail(Conn& c, ErrorKind kind, const std::string& why, int64_t now) {
  stats.error(kind)++;
  sh_.samples.add("connection " + std::to_string(c.index) + ": " + why);
  stats.unacked += c.in_flight();
  stats.conns_failed++;
  close_conn(c, State::kFailed, now);
}

void Worker::close_conn(Conn& c, State to, int64_t now) {
  tls_close(c.ssl, false);
  c.ssl = nullptr;
  if (c.fd >= 0) close(c.fd);  // closing removes it from the epoll set
  c.fd = -1;
  c.state = to;
  open_--;
  stats.end_ns = now;
}

}  // namespace loadgen
