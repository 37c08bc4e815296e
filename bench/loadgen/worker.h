// One load thread: its connections (every `threads`-th of the run, from its
// id on), its epoll instance, and the loop that drives them.
//
// The loop, each turn: start the connections whose ramp time has come; at a
// duration run's deadline stop sending; every kSweepNs fail the connections
// that stalled; publish progress; then wait for socket events and hand each
// to its connection: connect done, data to read (ACKs: refill the window and
// write), room to write. The send and receive sides are send.h and recv.h;
// this file has the connection's life (conn.h) and the schedule.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <memory>
#include <string>

#include "conn.h"
#include "loadgen.h"
#include "net.h"
#include "poller.h"
#include "recv.h"
#include "send.h"
#include "stats.h"
#include "tls.h"

namespace loadgen {

// What all the workers of a run share: read-only while they run, but for the samples.
struct Shared {
  const LoadConfig* cfg = nullptr;
  Address addr;
  int64_t t0 = 0;  // the run's start: set before the threads start
  ErrorSamples samples;
  const TlsContext* tls = nullptr;  // a TLS run's client context (shared: SSL_new is thread-safe)
};

// When things happen in a run, from one worker's view.
class RunPlan {
 public:
  RunPlan(const LoadConfig& cfg, int64_t t0, uint32_t worker_id, uint32_t nthreads);
  // When its connection k starts: connection i of the run at ramp_ms * i / connections.
  int64_t due(uint32_t k) const;

  int64_t t0;
  int64_t deadline;  // when a duration run stops sending; never for a message count
  int64_t stall_ns;  // no ACK progress for this long fails a connection

 private:
  uint32_t ramp_ms_, connections_, worker_id_, nthreads_;
};

class Worker {
 public:
  Worker(Shared& sh, uint32_t id, uint32_t nthreads);
  ~Worker();
  void run();

  WorkerStats stats;  // read after join
  LiveProgress live;  // read while it runs

 private:
  // The loop's steps.
  void start_due(const RunPlan& plan, int64_t now);
  void stop_sending(int64_t now);
  void sweep_stalled(const RunPlan& plan, int64_t now);
  int wait_ms(const RunPlan& plan, int64_t now, int64_t next_sweep) const;
  void dispatch(const epoll_event& ev);
  bool all_finished() const { return open_ == 0 && next_start_ >= count_; }

  // A connection's life.
  void start(Conn& c, int64_t now);
  void on_connect_event(Conn& c, uint32_t events);
  void on_tcp_connected(Conn& c, int64_t now);
  void handshake(Conn& c);
  void on_connected(Conn& c, int64_t now);
  void on_readable(Conn& c);
  void flush(Conn& c);
  void maybe_done(Conn& c, int64_t now);
  void finish(Conn& c, int64_t now);
  void fail(Conn& c, ErrorKind kind, const std::string& why, int64_t now);
  void close_conn(Conn& c, State to, int64_t now);

  Shared& sh_;
  const LoadConfig& cfg_;
  const uint32_t id_, nthreads_, count_;  // count_: connections it owns
  Sender sender_;
  Receiver receiver_;
  Poller poller_;
  std::unique_ptr<Conn[]> conns_;
  uint32_t open_ = 0;        // connections started and not finished
  uint32_t next_start_ = 0;  // next connection (local index) to start
  bool stop_sending_ = false;
};

}  // namespace loadgen
