// Service thread: one libevent loop (epoll) owning its connections. Reads
// straight into the current batch block, parses every complete frame, pushes
// the pass's batch onto the shared queue with one push, and sends coalesced
// ACK frames: at parse time (ackMode received) or when the writer hands the
// batch back (written, durable).
#pragma once
#include <event2/event.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "auth.h"
#include "batch.h"
#include "config.h"
#include "events.h"
#include "mpsc_queue.h"
#include "notifier.h"
#include "shared_queue.h"
#include "spin_wait.h"
#include "stats.h"

namespace msgs {

class ServiceLoop {
 public:
  // `open_connections` is shared with the listener, which counts a
  // connection in before handing it off; this thread counts it out.
  // `live`: the timeouts and maxInflightBytesPerConnection, which
  // server.reconfigure() can change while the thread runs.
  // `credentials`: the TLS context and auth table, taken once per new
  // connection (server.reload() swaps them). `partial_bytes`: the bytes all
  // service threads hold in unfinished frames (limits.maxPartialFrameBytes).
  ServiceLoop(const Config& cfg, const LiveSettings& live, uint32_t index, SharedQueue& queue, Events& events,
              std::atomic<uint32_t>& open_connections, const Credentials& credentials,
              std::atomic<uint64_t>& partial_bytes);
  ~ServiceLoop();
  ServiceLoop(const ServiceLoop&) = delete;
  ServiceLoop& operator=(const ServiceLoop&) = delete;

  void start();
  void join();

  // Listener thread: give this thread a freshly accepted socket.
  void hand_off(int fd, const sockaddr* addr, socklen_t len);
  // Wiring for the writer's way back (completion_route.h): batches whose
  // messages are stored (or failed) come back through this queue, and the
  // writer wakes the thread through this notifier.
  MpscQueue& completions() { return completions_; }
  Notifier& wake() { return notifier_; }
  // Node thread (through Engine::stop): stop reading, finish, close.
  void request_drain(uint64_t deadline_ms);
  uint64_t unacked_closed() const { return unacked_closed_; }
  uint64_t unacked_messages() const { return unacked_messages_; }

  ServiceStats stats;

 private:
  struct Conn;
  struct HandOff : MpscNode {
    int fd;
    sockaddr_storage addr;
    socklen_t len;
  };
  // kTls: the TLS handshake (TLS ports only), then kHello; kAuth: the HELLO
  // announced an AUTH frame that has not arrived yet.
  enum class State : uint8_t { kTls, kHello, kAuth, kOpen, kFailing, kLinger };

  void run();
  void wait_for_queue_space();
  void process_mailbox();
  void add_connection(HandOff* h);
  void settle(Conn* c, const MsgRef& m);
  static void on_read_cb(evutil_socket_t, short, void* arg);
  static void on_write_cb(evutil_socket_t, short, void* arg);
  static void on_notify_cb(evutil_socket_t, short, void* arg);
  static void on_sweep_cb(evutil_socket_t, short, void* arg);
  void on_read(Conn* c);
  void handshake_step(Conn* c);
  void handshake_failed(Conn* c, const std::string& why);
  ssize_t conn_recv(Conn* c, uint8_t* buf, size_t len);
  ssize_t conn_send(Conn* c, const uint8_t* buf, size_t len);
  void arm_write(Conn* c);
  size_t parse_hello(Conn* c, uint8_t* base, size_t avail);
  size_t parse_auth(Conn* c, uint8_t* base, size_t avail, size_t pos);
  bool admit(Conn* c, const Principal* principal);
  void refuse(Conn* c, uint8_t code, const char* principal);
  bool over_budget() const;
  bool charge_partial(Conn* c, size_t bytes, bool force);
  bool charge_tls(Conn* c, size_t bytes, bool force);
  bool after_tls_read(Conn* c);
  void read_next_pass(Conn* c);
  void rearm_reads();
  void wait_for_budget(Conn* c);
  void resume_budget_waiters();
  bool read_large_frame(Conn* c);
  size_t parse(Conn* c, uint8_t* base, size_t avail);
  size_t parse_legacy(Conn* c, uint8_t* base, size_t avail);
  void add_message(Conn* c, uint32_t client_id, uint8_t name_len, uint64_t msg_id, uint32_t payload_len,
                   size_t name_offset, uint16_t payload_gap);
  void keep_partial(Conn* c, const uint8_t* p, size_t n);
  bool completion_due() const;
  void on_completion(Batch* b);
  void ack(Conn* c, uint8_t status, uint64_t msg_id);
  void emit_ack_run(Conn* c);
  void mark_dirty(Conn* c);
  void flush_dirty();
  void append_out(Conn* c, const uint8_t* p, size_t n);
  bool write_out(Conn* c);
  void fail(Conn* c, uint8_t code, const char* reason);
  void finish_failing(Conn* c);
  void start_linger(Conn* c, uint64_t linger_ms);
  void set_reading(Conn* c, bool on);
  void close_conn(Conn* c, const char* reason);
  Conn* lookup(uint32_t slot, uint32_t gen);
  void flush_batch();
  Batch* fresh_batch();
  void recycle(Batch* b);
  void sweep();
  void begin_drain();
  bool drain_finished();

  const Config& cfg_;
  const LiveSettings& live_;
  const uint32_t index_;
  SharedQueue& queue_;
  Events& events_;
  std::atomic<uint32_t>& open_connections_;
  const Credentials& credentials_;
  std::atomic<uint64_t>& partial_bytes_;
  const uint64_t partial_budget_;
  uint32_t producer_;      // this thread's place in the shared queue's handshake
  const bool legacy_;      // protocol 'legacy': fixed structs, "ack" replies
  event_base* base_ = nullptr;
  event* notify_event_ = nullptr;
  event* sweep_event_ = nullptr;
  Notifier notifier_;
  MpscQueue handoffs_;     // listener -> this thread
  MpscQueue completions_;  // writer -> this thread
  std::thread thread_;

  struct Slot {
    Conn* conn = nullptr;
    uint32_t gen = 0;
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<Conn*> dirty_;
  Batch* batch_ = nullptr;             // the pass's batch being filled
  std::vector<Batch*> pool_;           // batches back from the writer
  uint64_t batches_out_ = 0;           // pushed and not yet completed
  bool writer_awake_ = false;          // the writer needed no wake-up for the last push
  SpinPolicy completion_spin_{kServiceSpinNs};  // spin for a completion? (spin_wait.h)
  uint64_t now_ms_ = 0;
  uint32_t handshake_budget_ = 0;      // handshake steps left in this loop pass
  uint32_t handshakes_deferred_ = 0;   // handshake steps put off in this pass
  std::vector<std::pair<uint32_t, uint32_t>> read_again_;  // (slot, gen): TLS bytes OpenSSL holds, read next pass
  std::vector<std::pair<uint32_t, uint32_t>> budget_waiters_;  // (slot, gen) waiting for partial-frame budget

  // release/acquire: the deadline written before the flag is read after it.
  std::atomic<bool> drain_requested_{false};
  uint64_t drain_deadline_ms_ = 0;
  bool draining_ = false;
  bool done_ = false;
  uint64_t unacked_closed_ = 0;
  uint64_t unacked_messages_ = 0;
};

}  // namespace msgs
