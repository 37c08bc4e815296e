#include "listener.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "codec.h"
#include "event_pass.h"
#include "system_error.h"
#include "time_util.h"

namespace msgs {

namespace {

const char* errno_code(int e) {
  switch (e) {
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    default: return "ERROR";
  }
}

// Accept errors that mean "out of descriptors": pausing is the cure, retrying
// at once would spin.
bool fd_exhausted(int e) { return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM; }

constexpr int kListenBacklog = 4096;          // the kernel caps it at net.core.somaxconn
constexpr long kAcceptPauseUs = 100 * 1000;   // out of descriptors: wait this long before accepting again

}  // namespace

Listener::Listener(const Config& cfg, const LiveSettings& live, std::vector<ServiceLoop*> services, Events& events,
                   std::atomic<uint32_t>& open_connections)
    : cfg_(cfg), live_(live), services_(std::move(services)), events_(events), open_connections_(open_connections) {}

Listener::~Listener() {
  stop();
  if (fd_ >= 0 && !listener_) close(fd_);
}

void Listener::bind() {
  const Config& cfg = cfg_;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(cfg.port);
  int gai = getaddrinfo(cfg.host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0) {
    SystemError e = SystemError::net("listen " + cfg.host + ":" + port + ": cannot resolve host: " + gai_strerror(gai),
                                     gai == EAI_SYSTEM ? errno : 0, "getaddrinfo", cfg.host, cfg.port);
    if (gai != EAI_SYSTEM) e.code = gai == EAI_AGAIN ? "EAI_AGAIN" : "ENOTFOUND";  // as Node's dns names them
    throw e;
  }
  int err = 0;
  const char* failed = "socket";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) { err = errno; failed = "socket"; continue; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      failed = "bind";
    } else if (listen(fd, kListenBacklog) != 0) {
      failed = "listen";
    } else {
      fd_ = fd;
      break;
    }
    err = errno;
    close(fd);
  }
  freeaddrinfo(res);
  if (fd_ < 0) {
    std::string what = std::string("listen ") + errno_code(err) + " " + cfg.host + ":" + port + ": " + strerror(err);
    throw SystemError::net(what, err, failed, cfg.host, cfg.port);
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                         : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

void Listener::start() {
  base_ = event_base_new();
  if (!base_) throw std::runtime_error("event_base_new failed");
  // Backlog 0: fd_ already listens with kListenBacklog. (-1 would make
  // libevent call listen() again with 128, and a burst of connections would
  // overflow that queue into SYN retransmits a second or more apart.)
  listener_ = evconnlistener_new(base_, on_accept, this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd_);
  if (!listener_) throw std::runtime_error("evconnlistener_new failed");
  evconnlistener_set_error_cb(listener_, on_accept_error);
  stop_event_ = event_new(base_, stop_notifier_.fd(), EV_READ, on_stop, this);
  event_add(stop_event_, nullptr);
  resume_event_ = evtimer_new(base_, on_resume, this);
  thread_ = std::thread([this] { run(); });
  set_thread_name(thread_, "msgs-listener");
}

// Listener thread. The loop returns 0 once on_stop() breaks it, -1 when its
// poll failed: then it goes on after pass_failed()'s wait, unless stopping
// (a poll that keeps failing never sees the stop event).
void Listener::run() {
  while (event_base_dispatch(base_) < 0) {
    pass_failed("listener", errno, stats.loop_errors, loop_log_, events_);
    // acquire: pairs with stop()'s release; nothing else is read after it.
    if (stopping_.load(std::memory_order_acquire)) break;
  }
}

void Listener::stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true, std::memory_order_release);
  stop_notifier_.signal();
  thread_.join();
  evconnlistener_free(listener_);  // closes the listening socket
  listener_ = nullptr;
  fd_ = -1;
  event_free(stop_event_);
  event_free(resume_event_);
  event_base_free(base_);
  base_ = nullptr;
}

void Listener::on_stop(evutil_socket_t, short, void* arg) {
  event_base_loopbreak(static_cast<Listener*>(arg)->base_);
}

void Listener::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg) {
  static_cast<Listener*>(arg)->accept_one(fd, addr, len);
}

void Listener::accept_one(int fd, sockaddr* addr, int len) {
  stats.accepted.add();
  // relaxed: the limit is a bound, not a synchronisation point; a few
  // connections over it for a moment are harmless.
  uint32_t open = open_connections_.fetch_add(1, std::memory_order_relaxed);
  if (open >= live_.max_connections.load(std::memory_order_relaxed)) {
    open_connections_.fetch_sub(1, std::memory_order_relaxed);
    stats.rejected_busy.add();
    reject(fd, "too many connections");
    return;
  }
  if (not_ready_gate_ && !not_ready_gate_->ready()) {
    open_connections_.fetch_sub(1, std::memory_order_relaxed);
    stats.rejected_not_ready.add();
    reject(fd, "not ready: the JetStream stream does not answer publishes yet; try again later");
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ServiceLoop* svc = services_[next_service_];
  next_service_ = (next_service_ + 1) % static_cast<uint32_t>(services_.size());
  svc->hand_off(fd, addr, static_cast<socklen_t>(len));
}

void Listener::reject(int fd, const char* reason) {
  // Read what the client already sent, so that close() does not answer with
  // a reset (which could destroy the ERR, where one is sent, before the
  // client reads it).
  uint8_t sink[4096];
  while (read(fd, sink, sizeof sink) > 0) {
  }
  // Legacy clients know no ERR frame, and a TLS client reads only TLS
  // records: a plaintext ERR would reach it as a corrupt record ("wrong
  // version number"), so both get a plain close. A handshake just to refuse
  // would spend the CPU an overloaded server is short of.
  if (cfg_.protocol == Protocol::kV1 && !cfg_.tls.enabled) {
    uint8_t frame[wire::kMaxErrFrameSize];
    size_t n = wire::encode_err(frame, wire::kErrBusy, reason, strlen(reason));
    ssize_t w = send(fd, frame, n, MSG_NOSIGNAL);
    (void)w;
  }
  shutdown(fd, SHUT_WR);
  close(fd);
}

void Listener::on_accept_error(evconnlistener* l, void* arg) {
  Listener* self = static_cast<Listener*>(arg);
  int e = EVUTIL_SOCKET_ERROR();
  self->stats.accept_errors.add();
  if (self->error_log_.allow(monotonic_ms())) {  // once per interval, not per failure
    self->events_.log(LogLevel::kError, std::string("accept failed: ") + strerror(e) +
                                            (fd_exhausted(e) ? "; pausing accepts for 100 ms" : ""));
  }
  if (fd_exhausted(e)) {
    evconnlistener_disable(l);
    timeval tv{0, kAcceptPauseUs};
    evtimer_add(self->resume_event_, &tv);
  }
}

void Listener::on_resume(evutil_socket_t, short, void* arg) {
  evconnlistener_enable(static_cast<Listener*>(arg)->listener_);
}

}  // namespace msgs
