// Listener thread: one libevent loop with an evconnlistener. It accepts,
// enforces maxConnections and the not-ready gate (ERR BUSY, then close; a
// plain close on a TLS port or with the legacy protocol), makes the socket
// non-blocking with TCP_NODELAY, and hands it to the next service thread in
// round-robin order.
#pragma once
#include <event2/event.h>
#include <event2/listener.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "config.h"
#include "events.h"
#include "jetstream_sink.h"
#include "notifier.h"
#include "service_loop.h"
#include "stats.h"

namespace msgs {

class Listener {
 public:
  static constexpr uint64_t kErrorLogIntervalMs = 10000;
  // Hands accepted sockets to `services` in turn; counts them into
  // `open_connections` (each service thread counts its own out).
  // `live`: maxConnections, which server.reconfigure() can change.
  Listener(const Config& cfg, const LiveSettings& live, std::vector<ServiceLoop*> services, Events& events,
           std::atomic<uint32_t>& open_connections);
  ~Listener();

  // Node thread, before start(): creates, binds and listens. Throws
  // runtime_error("listen EADDRINUSE 127.0.0.1:9000") style messages.
  void bind();
  uint16_t port() const { return port_; }
  void start();
  // jetstream.whileNotReady 'refuse': until `sink` is ready, connections get
  // ERR BUSY saying so. Node thread, before start().
  void refuse_until_ready(const JetStreamSink* sink) { not_ready_gate_ = sink; }
  // Any thread: closes the listening socket and joins the thread.
  void stop();

  ListenerStats stats;

 private:
  static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg);
  static void on_accept_error(evconnlistener*, void* arg);
  static void on_stop(evutil_socket_t, short, void* arg);
  static void on_resume(evutil_socket_t, short, void* arg);
  void run();
  void accept_one(int fd, sockaddr* addr, int len);
  void reject(int fd, const char* reason);

  const Config& cfg_;
  const LiveSettings& live_;
  std::vector<ServiceLoop*> services_;
  Events& events_;
  std::atomic<uint32_t>& open_connections_;
  RateLimit error_log_{kErrorLogIntervalMs};  // accept errors
  RateLimit loop_log_{kErrorLogIntervalMs};   // failed polls (listener thread)
  std::atomic<bool> stopping_{false};
  event_base* base_ = nullptr;
  evconnlistener* listener_ = nullptr;
  event* stop_event_ = nullptr;
  event* resume_event_ = nullptr;
  Notifier stop_notifier_;
  std::thread thread_;
  int fd_ = -1;
  uint16_t port_ = 0;
  uint32_t next_service_ = 0;
  const JetStreamSink* not_ready_gate_ = nullptr;
};

}  // namespace msgs
