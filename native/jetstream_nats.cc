#include "jetstream_nats.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "batch.h"
#include "codec.h"
#include "notifier.h"
#include "record.h"
#include "time_util.h"

namespace msgs {

namespace {

constexpr uint64_t kStreamCheckEveryMs = 1000;
constexpr int64_t kFlushWaitMs = 2;

size_t ring_size(uint32_t max_pending) {
  size_t n = 1;
  while (n < max_pending) n <<= 1;
  return n;
}

void append_number(std::string& s, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  s.append(buf, r.ptr);
}

bool contains(const char* data, int len, const char* what) {
  return len > 0 && memmem(data, static_cast<size_t>(len), what, strlen(what)) != nullptr;
}

// The publish ack is JSON such as {"stream":"S", "seq":5,"duplicate": true}
// (nats-server writes it by hand, spacing included): true when "duplicate"
// is followed by true.
bool duplicate(const char* data, int len) {
  if (len <= 0) return false;
  const char* key = "\"duplicate\"";
  const char* end = data + len;
  const char* p = static_cast<const char*>(memmem(data, static_cast<size_t>(len), key, strlen(key)));
  if (!p) return false;
  p += strlen(key);
  while (p < end && (*p == ' ' || *p == ':')) p++;
  return end - p >= 4 && memcmp(p, "true", 4) == 0;
}

}  // namespace

// A callback's stay inside the gate: sink() is null once close() has begun.
class NatsJetStreamSink::Entered {
 public:
  explicit Entered(void* closure) : gate_(static_cast<Gate*>(closure)) {
    gate_->active.fetch_add(1, std::memory_order_seq_cst);  // seq_cst: see Gate
    sink_ = gate_->sink.load(std::memory_order_seq_cst);
  }
  // release: everything the callback did happens before close() sees active == 0.
  ~Entered() { gate_->active.fetch_sub(1, std::memory_order_release); }
  NatsJetStreamSink* sink() const { return sink_; }

 private:
  Gate* gate_;
  NatsJetStreamSink* sink_;
};

NatsJetStreamSink::NatsJetStreamSink(const Config& cfg, Events& events, Notifier& writer_wake)
    : events_(events),
      wake_(writer_wake),
      cfg_(cfg.jetstream),
      ack_mode_(cfg.ack_mode),
      dedupe_(cfg.protocol != Protocol::kLegacy),
      gate_(new Gate(this)) {}

NatsJetStreamSink::~NatsJetStreamSink() { close(); }

std::unique_ptr<JetStreamSink> make_jetstream_sink(const Config& cfg, Events& events, Notifier& writer_wake) {
  return std::make_unique<NatsJetStreamSink>(cfg, events, writer_wake);
}

std::string nats_availability() {
  std::string why;
  return load_nats(&why) ? "available" : why;
}

void NatsJetStreamSink::open() {
  std::string why;
  api_ = load_nats(&why);
  if (!api_) throw std::runtime_error(why);
  const NatsApi& n = *api_;
  ring_ = std::vector<Slot>(ring_size(cfg_.max_pending));
  mask_ = ring_.size() - 1;

  auto check = [&](natsStatus s, const char* what) {
    if (s != NATS_OK) throw std::runtime_error(std::string("jetstream: ") + what + ": " + n.natsStatus_GetText(s));
  };
  check(n.natsOptions_Create(&opts_), "cannot create NATS options");
  std::vector<const char*> urls;
  for (const std::string& u : cfg_.servers) urls.push_back(u.c_str());
  check(n.natsOptions_SetServers(opts_, urls.data(), static_cast<int>(urls.size())), "bad jetstream.servers");
  n.natsOptions_SetName(opts_, "msgserver");
  n.natsOptions_SetMaxReconnect(opts_, -1);  // a production sink never gives up on its cluster
  n.natsOptions_SetReconnectWait(opts_, 250);
  n.natsOptions_SetTimeout(opts_, 2000);
  // A node that vanished without closing the socket is noticed in ~10 s.
  n.natsOptions_SetPingInterval(opts_, 5000);
  n.natsOptions_SetMaxPingsOut(opts_, 2);
  n.natsOptions_SetDisconnectedCB(opts_, on_disconnected, gate_);
  n.natsOptions_SetReconnectedCB(opts_, on_reconnected, gate_);
  n.natsOptions_SetErrorHandler(opts_, on_error, gate_);
  // Connect in the background when the cluster is down at start.
  n.natsOptions_SetRetryOnFailedConnect(opts_, true, on_connected, gate_);

  check(n.natsInbox_Create(&inbox_), "cannot create an inbox");
  reply_prefix_ = std::string(inbox_) + ".";

  natsStatus s = n.natsConnection_Connect(&nc_, opts_);
  if (s == NATS_OK) {
    connected_.store(true, std::memory_order_release);
  } else if (s != NATS_NOT_YET_CONNECTED) {
    check(s, "cannot connect to NATS");
  } else {
    events_.log(LogLevel::kWarn, "jetstream: no NATS server reachable yet; retrying in the background "
                        "(messages are answered REPLICATION_FAILED or kept in the file meanwhile)");
  }
  check(n.natsConnection_Subscribe(&sub_, nc_, (reply_prefix_ + "*").c_str(), on_ack, gate_),
        "cannot subscribe to publish acknowledgements");
  // Never drop an acknowledgement: the ring already bounds how many can come.
  n.natsSubscription_SetPendingLimits(sub_, static_cast<int>(ring_.size()) * 2, 1 << 30);
  jsOptions jo;
  n.jsOptions_Init(&jo);
  jo.Wait = std::min<int64_t>(cfg_.ack_timeout_ms, 2000);  // stream look-ups block the writer
  check(n.natsConnection_JetStream(&js_, nc_, &jo), "cannot create a JetStream context");
  // The first look-up runs here, before the server takes messages, so the
  // first batches find the stream ready; later ones run on the checker thread.
  if (connected_.load(std::memory_order_relaxed)) {
    stream_state_.store(ensure_stream() ? kStreamOk : kStreamUnknown, std::memory_order_relaxed);
    next_stream_check_ms_ = monotonic_ms() + kStreamCheckEveryMs;
  }
}

// ---- libnats threads ----------------------------------------------------------

void NatsJetStreamSink::on_ack(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  Entered in(closure);
  NatsJetStreamSink* self = in.sink();
  const NatsApi* api = load_nats(nullptr);  // the same table; loaded before any callback exists
  if (!self) {
    api->natsMsg_Destroy(msg);
    return;
  }
  const NatsApi& n = *api;
  const char* subj = n.natsMsg_GetSubject(msg);
  const char* dot = strrchr(subj, '.');
  uint64_t id = 0;
  if (dot) std::from_chars(dot + 1, subj + strlen(subj), id);
  const char* data = n.natsMsg_GetData(msg);
  int len = n.natsMsg_GetDataLength(msg);
  Outcome out;
  if (len == 0) {
    out = kNoStream;  // "no responders": no stream listens on the subject
  } else if (contains(data, len, "\"error\"")) {
    out = kRefused;
  } else if (duplicate(data, len)) {
    out = kDuplicate;
  } else if (contains(data, len, "\"seq\"")) {
    out = kStored;
  } else {
    out = kRefused;
  }
  n.natsMsg_Destroy(msg);
  if (id != 0) self->ack(id, out);
}

void NatsJetStreamSink::ack(uint64_t n, Outcome outcome) {
  Slot& s = ring_[n & mask_];
  uint64_t expect = n << 8;
  // acq_rel: release our outcome to the writer's reap(). Fails harmlessly for
  // a publish that already timed out (its slot holds an outcome or a newer n).
  if (!s.state.compare_exchange_strong(expect, expect | outcome, std::memory_order_acq_rel)) return;
  if (outcome == kStored || outcome == kDuplicate) {
    stats.acked.add();
    if (outcome == kDuplicate) stats.duplicates.add();
  } else {
    stats.failed.add();
    // relaxed: only a hint; the writer re-checks the stream itself.
    if (outcome == kNoStream) stream_missing_.store(true, std::memory_order_relaxed);
  }
  wake_.notify();
}

void NatsJetStreamSink::on_connected(natsConnection* nc, void* closure) {
  Entered in(closure);
  NatsJetStreamSink* self = in.sink();
  if (!self) return;
  // release: the writer that sees connected also sees the connection set up.
  self->connected_.store(true, std::memory_order_release);
  self->events_.log(LogLevel::kInfo, "jetstream: connected to " + self->connected_url(nc));
  self->wake_.notify();
}

void NatsJetStreamSink::on_disconnected(natsConnection*, void* closure) {
  Entered in(closure);
  NatsJetStreamSink* self = in.sink();
  if (!self) return;
  self->connected_.store(false, std::memory_order_release);
  self->events_.log(LogLevel::kWarn, "jetstream: disconnected from NATS; reconnecting");
}

void NatsJetStreamSink::on_reconnected(natsConnection* nc, void* closure) {
  Entered in(closure);
  NatsJetStreamSink* self = in.sink();
  if (!self) return;
  self->stats.reconnects.add();
  self->connected_.store(true, std::memory_order_release);
  self->events_.log(LogLevel::kInfo, "jetstream: reconnected to " + self->connected_url(nc));
  self->wake_.notify();
}

void NatsJetStreamSink::on_error(natsConnection*, natsSubscription*, natsStatus err, void* closure) {
  Entered in(closure);
  NatsJetStreamSink* self = in.sink();
  if (!self) return;
  self->events_.log(LogLevel::kWarn, std::string("jetstream: ") + self->api_->natsStatus_GetText(err));
}

std::string NatsJetStreamSink::connected_url(natsConnection* nc) {
  char url[256] = {0};
  if (api_->natsConnection_GetConnectedUrl(nc, url, sizeof url) != NATS_OK || url[0] == 0) return "NATS";
  return url;
}

// ---- writer thread ----------------------------------------------------------

void NatsJetStreamSink::log_unavailable(uint64_t now_ms, const std::string& why) {
  if (!unavailable_log_.allow(now_ms)) return;
  events_.log(LogLevel::kError, "jetstream: " + why + "; messages are not published until it is back");
}

bool NatsJetStreamSink::ready(uint64_t now_ms, bool wait) {
  // acquire: pairs with the connection callbacks' release.
  if (!connected_.load(std::memory_order_acquire)) {
    log_unavailable(now_ms, "not connected to any of " + std::to_string(cfg_.servers.size()) + " NATS server(s)");
    return false;
  }
  if (stream_missing_.exchange(false, std::memory_order_relaxed)) {
    int ok = kStreamOk;
    stream_state_.compare_exchange_strong(ok, kStreamUnknown, std::memory_order_relaxed);
  }
  // acquire: pairs with the checker's release of its result.
  int state = stream_state_.load(std::memory_order_acquire);
  if (state == kStreamOk) return true;
  if (state == kStreamUnknown && now_ms >= next_stream_check_ms_) {
    next_stream_check_ms_ = now_ms + kStreamCheckEveryMs;
    if (checker_.joinable()) checker_.join();  // finished: its state is not kStreamChecking
    stream_state_.store(kStreamChecking, std::memory_order_relaxed);
    state = kStreamChecking;
    checker_ = std::thread([this] { check_stream(); });
  }
  if (state == kStreamChecking && wait) {
    // In 'replicated' mode nothing can be ACKed without the stream: wait for
    // the look-up (at most its 2 s) rather than fail what it may find ready.
    checker_.join();
    return stream_state_.load(std::memory_order_acquire) == kStreamOk;
  }
  return false;
}

// The checker thread: one look-up, then the result for the writer.
void NatsJetStreamSink::check_stream() {
  bool ok = ensure_stream();
  // release: the writer that sees kStreamOk publishes after a successful look-up.
  stream_state_.store(ok ? kStreamOk : kStreamUnknown, std::memory_order_release);
  if (ok) wake_.notify();
}

// The checker thread: looks the stream up, creating it when allowed. Each
// request waits at most the context's 2 s. Logs at most once per interval
// (its own clock: the writer's log_unavailable() is the writer's alone).
bool NatsJetStreamSink::ensure_stream() {
  const NatsApi& n = *api_;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = n.js_GetStreamInfo(&si, js_, cfg_.stream.c_str(), nullptr, &jerr);
  if (s == NATS_OK) {
    n.jsStreamInfo_Destroy(si);
    return true;
  }
  auto fail = [this](const std::string& why) {
    if (!checker_log_.allow(monotonic_ms())) return false;
    events_.log(LogLevel::kError, "jetstream: " + why + "; messages are not published until it is back");
    return false;
  };
  if (jerr != JSStreamNotFoundErr && s != NATS_NOT_FOUND) {
    return fail("cannot look up stream " + cfg_.stream + ": " + n.natsStatus_GetText(s) +
                (jerr ? " (JetStream error " + std::to_string(jerr) + ")" : ""));
  }
  if (!cfg_.create_stream) {
    return fail("stream " + cfg_.stream + " does not exist (jetstream.createStream is false)");
  }
  std::string subjects = cfg_.subject_prefix + ".>";
  const char* subj[] = {subjects.c_str()};
  jsStreamConfig sc;
  n.jsStreamConfig_Init(&sc);
  sc.Name = cfg_.stream.c_str();
  sc.Subjects = subj;
  sc.SubjectsLen = 1;
  sc.Replicas = cfg_.replicas;
  sc.Storage = js_FileStorage;
  s = n.js_AddStream(&si, js_, &sc, nullptr, &jerr);
  if (s != NATS_OK) {
    return fail("cannot create stream " + cfg_.stream + ": " + n.natsStatus_GetText(s) +
                (jerr ? " (JetStream error " + std::to_string(jerr) + ")" : ""));
  }
  n.jsStreamInfo_Destroy(si);
  events_.log(LogLevel::kInfo, "jetstream: created stream " + cfg_.stream + " (subjects " + subjects + ", replicas " +
                          std::to_string(cfg_.replicas) + ")");
  return true;
}

void NatsJetStreamSink::publish(Batch* b, uint32_t i, uint64_t seq, bool decides, uint64_t now_ms,
                            const uint8_t* encoded) {
  const NatsApi& n = *api_;
  // A cluster slower than the file slows the writer down (back-pressure)
  // rather than leaving holes in the stream, in every ACK mode.
  while (tail_ - head_ >= ring_.size()) wait_for_room();
  const MsgRef& m = b->msgs[i];
  size_t size = record::record_size(m.name_len, m.payload_len);
  subject_.assign(cfg_.subject_prefix);
  subject_ += '.';
  append_number(subject_, m.client_id);
  uint64_t id = tail_;
  reply_.assign(reply_prefix_);
  append_number(reply_, id);
  msg_id_.clear();
  append_number(msg_id_, m.client_id);
  msg_id_ += '-';
  append_number(msg_id_, m.msg_id);

  Slot& s = ring_[id & mask_];
  s.batch = decides ? b : nullptr;
  s.index = i;
  s.deadline_ms = now_ms + cfg_.ack_timeout_ms;
  // relaxed would do for the ack thread (it reads only `state`); release keeps
  // the new publish number ordered after the writer's last reap of this slot.
  s.state.store(id << 8, std::memory_order_release);
  tail_++;
  if (decides) b->awaiting++;

  natsMsg* msg = nullptr;
  natsStatus st = n.natsMsg_Create(&msg, subject_.c_str(), reply_.c_str(), reinterpret_cast<const char*>(encoded),
                                   static_cast<int>(size));
  // Legacy clients number their messages from 1 on every run: a dedupe key
  // would drop a new run's messages as duplicates of the last run's.
  if (st == NATS_OK && dedupe_) st = n.natsMsgHeader_Set(msg, "Nats-Msg-Id", msg_id_.c_str());
  if (st == NATS_OK) st = n.natsConnection_PublishMsg(nc_, msg);
  if (msg) n.natsMsg_Destroy(msg);
  if (st == NATS_OK) {
    stats.published.add();
    return;
  }
  // Not sent (too large for the server's max_payload, connection lost): it fails now.
  uint64_t expect = id << 8;
  s.state.compare_exchange_strong(expect, expect | kRefused, std::memory_order_acq_rel);
  stats.unavailable.add();
  log_unavailable(now_ms, std::string("cannot publish a ") + std::to_string(size) + "-byte record: " +
                                      n.natsStatus_GetText(st));
}

// Publishes every pending message of the flush, from the writer's binary
// records (the same bytes the file holds, CRC included).
void NatsJetStreamSink::store(Flush& f) {
  if (f.status != wire::kAckOk) return;  // the file did not store them: nothing to replicate
  bool replicated = ack_mode_ == AckMode::kReplicated;
  uint64_t now_ms = monotonic_ms();
  bool publish_now = ready(now_ms, replicated);
  uint64_t seq = f.first_seq;
  const uint8_t* rec = f.records;
  for (const Span& s : *f.spans) {
    for (uint32_t i = s.begin; i < s.end; i++) {
      MsgRef& m = s.batch->msgs[i];
      if (m.status != kPending) continue;
      const uint8_t* encoded = rec;
      rec += record::record_size(m.name_len, m.payload_len);
      if (publish_now) {
        publish(s.batch, i, seq, replicated, now_ms, encoded);
        if (replicated) m.status = kDecidedLater;  // its acknowledgement decides
      } else {
        stats.unavailable.add();
        if (replicated) m.status = wire::kAckReplicationFailed;
      }
      seq++;
    }
  }
  if (publish_now && replicated) flush();  // the ACKs wait for these publishes: send them now
}

void NatsJetStreamSink::flush() {
  // The PONG is not what matters (the publishes' acknowledgements are): a
  // short wait bounds the writer's stall when NATS is slow or unreachable.
  if (nc_) api_->natsConnection_FlushTimeout(nc_, kFlushWaitMs);
}

void NatsJetStreamSink::settle(Slot& s, uint8_t outcome) {
  if (!s.batch) return;
  MsgRef& m = s.batch->msgs[s.index];
  m.status = outcome == kStored || outcome == kDuplicate ? uint8_t{wire::kAckOk} : uint8_t{wire::kAckReplicationFailed};
  s.batch->awaiting--;
  s.batch = nullptr;
}

int NatsJetStreamSink::reap(uint64_t now_ms) {
  uint64_t failed = 0;
  while (head_ != tail_) {
    Slot& s = ring_[head_ & mask_];
    // acquire: pairs with ack()'s release of the outcome.
    uint64_t st = s.state.load(std::memory_order_acquire);
    uint8_t out = static_cast<uint8_t>(st & 0xff);
    if (out == kNone) {
      if (now_ms < s.deadline_ms) break;
      uint64_t expect = head_ << 8;
      if (s.state.compare_exchange_strong(expect, expect | kTimedOut, std::memory_order_acq_rel)) {
        out = kTimedOut;
        stats.timeouts.add();
      } else {
        out = static_cast<uint8_t>(expect & 0xff);  // the ack came in just now
      }
    }
    if (out != kStored && out != kDuplicate) failed++;
    settle(s, out);
    head_++;
  }
  if (failed > 0) {
    log_unavailable(now_ms, std::to_string(failed) + " publish(es) not acknowledged by stream " + cfg_.stream +
                                " (refused or timed out after " + std::to_string(cfg_.ack_timeout_ms) + " ms)");
  }
  if (head_ == tail_) return -1;
  uint64_t deadline = ring_[head_ & mask_].deadline_ms;
  return deadline > now_ms ? static_cast<int>(deadline - now_ms) : 0;
}

bool NatsJetStreamSink::head_settled() const {
  if (head_ == tail_) return false;
  // seq_cst: this is the re-check after Notifier::prepare_sleep()'s seq_cst
  // store; an acquire load could be ordered before it and miss a wake-up.
  return (ring_[head_ & mask_].state.load(std::memory_order_seq_cst) & 0xff) != kNone;
}

void NatsJetStreamSink::wait_for_room() {
  int timeout = reap(monotonic_ms());
  if (tail_ - head_ < ring_.size()) return;
  wake_.prepare_sleep();
  // Re-check after arming: an ack that landed before prepare_sleep() did not signal.
  if (head_settled()) {
    wake_.cancel_sleep();
    return;
  }
  wake_.wait(timeout);
}

void NatsJetStreamSink::close() {
  if (!api_) return;
  const NatsApi& n = *api_;
  if (checker_.joinable()) checker_.join();  // bounded by the context's 2 s wait
  // The service threads have exited: no ACK waits any more. What has no
  // outcome yet is settled as timed out (it may still be stored).
  reap(monotonic_ms());
  while (!idle()) {
    Slot& s = ring_[head_ & mask_];
    uint64_t expect = head_ << 8;
    uint8_t out = kTimedOut;
    if (s.state.compare_exchange_strong(expect, expect | kTimedOut, std::memory_order_acq_rel)) {
      stats.timeouts.add();
    } else {
      out = static_cast<uint8_t>(expect & 0xff);
    }
    settle(s, out);
    head_++;
  }
  // Late acknowledgements are not wanted: every slot is settled.
  if (sub_) n.natsSubscription_Unsubscribe(sub_);
  // From here on every callback returns at once; wait out any still inside.
  gate_->sink.store(nullptr, std::memory_order_seq_cst);  // seq_cst: see Gate
  // acquire: pairs with Entered's release, so the callbacks' writes are done.
  while (gate_->active.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  if (js_) n.jsCtx_Destroy(js_);
  js_ = nullptr;
  if (nc_) n.natsConnection_Close(nc_);
  if (sub_) n.natsSubscription_Destroy(sub_);
  sub_ = nullptr;
  if (nc_) n.natsConnection_Destroy(nc_);
  nc_ = nullptr;
  if (inbox_) n.natsInbox_Destroy(inbox_);
  inbox_ = nullptr;
  if (opts_) n.natsOptions_Destroy(opts_);
  opts_ = nullptr;
  api_ = nullptr;
}

}  // namespace msgs
