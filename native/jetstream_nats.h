// The JetStream sink over libnats: the writer thread publishes each record
// to a NATS JetStream stream (docs/scale-out.md). Publishing is pipelined: the writer publishes a
// whole buffer's messages without waiting, each with its own reply subject
// `<inbox>.<n>`; libnats's subscription thread records each acknowledgement
// in slot n of a ring; the writer applies them (in publish order) and times
// out the ones that never come. No JS runs on this path.
//
// In 'replicated' mode a publish that failed for a reason that can pass (no
// responders, a 503 reply, no acknowledgement in time, not connected, an
// earlier attempt with the same id still in process) is
// sent again, with the same Nats-Msg-Id, until it is acknowledged or
// jetstream.retryMs since its first attempt is spent. Messages waiting for
// a resend (or for the stream to become usable) wait in a FIFO beside the
// ring; the two together hold at most maxPending messages, and a full
// window stops the writer (back-pressure to the shared queue and the
// sockets) instead of growing.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "config.h"
#include "events.h"
#include "jetstream_sink.h"
#include "nats_api.h"
#include "notifier.h"
#include "pub_ack.h"

namespace msgs {

class NatsJetStreamSink final : public JetStreamSink {
 public:
  NatsJetStreamSink(const Config& cfg, Events& events, Notifier& writer_wake);
  ~NatsJetStreamSink() override;
  NatsJetStreamSink(const NatsJetStreamSink&) = delete;
  NatsJetStreamSink& operator=(const NatsJetStreamSink&) = delete;

  // Node thread, before the writer starts: loads libnats and connects. A
  // cluster that is down is not an error: libnats keeps trying in the
  // background and messages are answered REPLICATION_FAILED meanwhile.
  // Throws runtime_error for what retrying cannot fix (no libnats, bad URL).
  void open() override;

  // --- writer thread ---
  // Publishes the flush's records (after the file stored them). In
  // 'replicated' mode each message's status waits for its acknowledgement
  // (kDecidedLater); without a usable stream it is REPLICATION_FAILED.
  void store(Flush& f) override;
  // Applies the acknowledgements that arrived and the timeouts that passed.
  // Returns ms until the oldest publish times out, or -1 with none in flight.
  int poll(uint64_t now_ms) override { return reap(now_ms); }
  // The oldest publish in flight has its outcome, or the connection came
  // up: poll() has work.
  bool has_news() const override {
    return head_settled() || connection_news_.load(std::memory_order_seq_cst);
  }
  // Settles what is in flight (what has no outcome yet counts as timed out:
  // the service threads are gone, no ACK waits for it) and closes.
  void drain() override { close(); }
  // acquire: pairs with the connection callbacks' release.
  bool connected() const override { return connected_.load(std::memory_order_acquire); }
  // acquire: pairs with the checker's release of a probe that passed.
  bool ready() const override {
    return connected() && stream_state_.load(std::memory_order_acquire) == kStreamOk;
  }

 private:
  // Connected, and the stream exists (created when createStream). The look-up
  // runs on a checker thread; with `wait` (ackMode 'replicated') the writer
  // waits for a look-up in progress instead of answering without the stream.
  bool usable(uint64_t now_ms, bool wait);
  // Publishes message i of b as record `seq`. With `decides`, the message's
  // status is left pending and set when the acknowledgement arrives (or
  // times out), and b->awaiting counts it. Otherwise its status is already
  // final and the outcome is only counted. A full ring makes the writer wait
  // in both cases. `encoded` is its binary record.
  void publish(Batch* b, uint32_t i, uint64_t seq, bool decides, uint64_t now_ms, const uint8_t* encoded);
  // One attempt: takes the next publish number and hands the record to
  // libnats. `first_ms` is the message's first attempt (its retry budget).
  void send(Batch* b, uint32_t i, uint64_t seq, bool decides, uint64_t now_ms, uint64_t first_ms,
            const uint8_t* encoded);
  // Keeps a message (of a held batch) for a later attempt at due_ms.
  void hold(Batch* b, uint32_t i, uint64_t seq, uint64_t first_ms, uint64_t due_ms);
  // Expires held messages whose budget is spent and sends the due ones
  // when the stream is usable. Returns ms until the next is due, or -1.
  int resend(uint64_t now_ms);
  // acquire: pairs with the checker's release of its result.
  bool usable_now() const { return stream_state_.load(std::memory_order_acquire) == kStreamOk; }
  uint64_t outstanding() const { return (tail_ - head_) + (held_tail_ - held_head_); }
  // After a buffer's publishes in 'replicated' mode: has libnats write them
  // out now instead of after its flusher's 1 ms gathering delay. One write
  // (and a PING) per buffer; waits at most kFlushWaitMs for the PONG.
  void flush();
  int reap(uint64_t now_ms);
  bool idle() const { return head_ == tail_; }
  bool head_settled() const;
  void close();

  // One publish in flight. `state` packs the publish number and its outcome
  // so a late acknowledgement for a reused slot cannot touch the new publish.
  struct Slot {
    std::atomic<uint64_t> state{0};  // (n << 8) | outcome; outcome 0 = none yet
    Batch* batch = nullptr;          // null: the outcome only counts
    uint32_t index = 0;
    uint64_t seq = 0;                // the record's sequence number (to encode it again)
    uint64_t first_ms = 0;           // the message's first attempt
    uint64_t deadline_ms = 0;
  };
  // A message waiting for its next attempt (its batch is held meanwhile).
  struct Held {
    Batch* batch;
    uint32_t index;
    uint64_t seq, first_ms, due_ms;
  };
  // kNoStream (no responders), kUnavailable (a 503 error reply), kTimedOut
  // and kNotSent can pass with an election or a reconnection, and
  // kInProcess (an earlier attempt still being proposed, pub_ack.h) once it
  // is stored or lost: retried.
  enum Outcome : uint8_t {
    kNone = 0, kStored = 1, kDuplicate = 2, kRefused = 3, kNoStream = 4, kTimedOut = 5, kUnavailable = 6, kNotSent = 7,
    kInProcess = 8
  };
  static bool retryable(uint8_t o) {
    return o == kNoStream || o == kTimedOut || o == kUnavailable || o == kNotSent || o == kInProcess;
  }

  // What libnats's callbacks get as their closure. libnats offers no point
  // after which it will not call back any more, so the sink is reached only
  // through this gate: close() clears `sink` and waits until no callback is
  // inside, and the gate itself (16 bytes) is never freed.
  struct Gate {
    // seq_cst (both): a callback raises `active` then reads `sink`; close()
    // clears `sink` then reads `active`. One of them sees the other.
    std::atomic<NatsJetStreamSink*> sink;
    std::atomic<int> active{0};
    explicit Gate(NatsJetStreamSink* s) : sink(s) {}
  };
  class Entered;  // a callback's stay inside the gate

  static void on_ack(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);
  static void on_disconnected(natsConnection* nc, void* closure);
  static void on_connected(natsConnection* nc, void* closure);
  static void on_reconnected(natsConnection* nc, void* closure);
  void came_up();  // the connection is up: tell the writer
  static void on_error(natsConnection* nc, natsSubscription* sub, natsStatus err, void* closure);
  static Outcome outcome_of(PubAck a);
  void ack(uint64_t n, Outcome outcome);
  void settle(Slot& s, uint8_t outcome);
  static void settle_message(Batch* b, uint32_t i, bool ok);
  bool ensure_stream();
  bool probe();
  template <typename Check>
  void secure(Check& check);
  void check_stream();
  void wait_for_room();
  void log_unavailable(uint64_t now_ms, const std::string& why);
  std::string connected_url(natsConnection* nc);

  Events& events_;
  Notifier& wake_;
  const JetStreamConfig& cfg_;
  const AckMode ack_mode_;
  const NatsApi* api_ = nullptr;
  natsOptions* opts_ = nullptr;
  natsConnection* nc_ = nullptr;
  natsSubscription* sub_ = nullptr;
  jsCtx* js_ = nullptr;
  natsInbox* inbox_ = nullptr;
  std::string reply_prefix_;           // "<inbox>."
  const bool dedupe_;                  // set Nats-Msg-Id (not for legacy: its ids restart per run)

  std::vector<Slot> ring_;             // power of two >= max_pending
  uint64_t mask_ = 0;
  uint64_t head_ = 1, tail_ = 1;       // publish numbers: [head_, tail_) in flight; 0 is never used
  std::vector<Held> held_;             // as large as ring_: [held_head_, held_tail_) wait, in order
  uint64_t held_head_ = 0, held_tail_ = 0;
  std::vector<uint8_t> scratch_;       // a held message's record, encoded again for its resend
  const uint64_t retry_ms_;
  std::string subject_, reply_, msg_id_;

  // release/acquire: set by libnats's connection-event thread, read by the writer.
  std::atomic<bool> connected_{false};
  // The connection came up (connected or reconnected) and the writer has not
  // looked since: has_news() says so. Without it, a connection that comes up
  // after the writer's last poll() (not connected: no timer) and before its
  // prepare_sleep() would find the writer not armed, notify() would not
  // signal, and the writer would sleep with no timeout: no stream look-up,
  // never ready, until traffic came (none does with whileNotReady 'refuse').
  // seq_cst store and load: the Dekker pair with the writer's prepare_sleep(),
  // as head_settled().
  std::atomic<bool> connection_news_{false};
  // relaxed: a hint from the ack thread that the stream vanished; the writer re-checks.
  std::atomic<bool> stream_missing_{false};
  // The stream look-up (and creation) blocks on NATS requests, so it runs on
  // its own short-lived thread, never on the writer's.
  enum StreamState : int { kStreamUnknown, kStreamChecking, kStreamOk };
  // release/acquire: the checker's result, read by the writer.
  std::atomic<int> stream_state_{kStreamUnknown};
  std::thread checker_;
  uint64_t next_stream_check_ms_ = 0;
  bool announced_ready_ = false;       // checker thread: the first passed probe was reported
  bool closing_ = false;               // writer (or the Node thread once it has stopped): close() began
  // A dead cluster fails every batch: log once per interval. The checker
  // thread has its own (one checker runs at a time, joined in between).
  static constexpr uint64_t kLogEveryMs = 5000;
  RateLimit checker_log_{kLogEveryMs};
  RateLimit unavailable_log_{kLogEveryMs};

  Gate* gate_ = nullptr;
};

}  // namespace msgs
