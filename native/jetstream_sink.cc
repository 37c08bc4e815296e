#include "jetstream_sink.h"

#if MSGS_HAVE_NATS

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "batch.h"
#include "codec.h"
#include "engine.h"
#include "notifier.h"
#include "record.h"
#include "time_util.h"

namespace msgs {

namespace {

constexpr uint64_t kLogEveryMs = 5000;     // a dead cluster fails every batch: log once per interval
constexpr uint64_t kStreamCheckEveryMs = 1000;
constexpr int64_t kCloseWaitMs = 2000;

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

JetStreamSink::JetStreamSink(Engine& engine, Notifier& writer_wake)
    : engine_(engine), wake_(writer_wake), cfg_(engine.config().jetstream) {}

JetStreamSink::~JetStreamSink() { close(); }

void JetStreamSink::open() {
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
  n.natsOptions_SetDisconnectedCB(opts_, on_disconnected, this);
  n.natsOptions_SetReconnectedCB(opts_, on_reconnected, this);
  n.natsOptions_SetClosedCB(opts_, on_closed, this);
  n.natsOptions_SetErrorHandler(opts_, on_error, this);
  // Connect in the background when the cluster is down at start.
  n.natsOptions_SetRetryOnFailedConnect(opts_, true, on_connected, this);

  check(n.natsInbox_Create(&inbox_), "cannot create an inbox");
  reply_prefix_ = std::string(inbox_) + ".";

  natsStatus s = n.natsConnection_Connect(&nc_, opts_);
  if (s == NATS_OK) {
    connected_.store(true, std::memory_order_release);
    stats.connected.v.store(1, std::memory_order_relaxed);
  } else if (s != NATS_NOT_YET_CONNECTED) {
    check(s, "cannot connect to NATS");
  } else {
    engine_.log("warn", "jetstream: no NATS server reachable yet; retrying in the background "
                        "(messages are answered REPLICATION_FAILED or kept in the file meanwhile)");
  }
  check(n.natsConnection_Subscribe(&sub_, nc_, (reply_prefix_ + "*").c_str(), on_ack, this),
        "cannot subscribe to publish acknowledgements");
  // Never drop an acknowledgement: the ring already bounds how many can come.
  n.natsSubscription_SetPendingLimits(sub_, static_cast<int>(ring_.size()) * 2, 1 << 30);
  jsOptions jo;
  n.jsOptions_Init(&jo);
  jo.Wait = std::min<int64_t>(cfg_.ack_timeout_ms, 2000);  // stream look-ups block the writer
  check(n.natsConnection_JetStream(&js_, nc_, &jo), "cannot create a JetStream context");
}

// ---- libnats threads ----------------------------------------------------------

void JetStreamSink::on_ack(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* self = static_cast<JetStreamSink*>(closure);
  const NatsApi& n = *self->api_;
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

void JetStreamSink::ack(uint64_t n, Outcome outcome) {
  Slot& s = ring_[n & mask_];
  uint64_t expect = n << 8;
  // acq_rel: acquire the writer's publish of this slot; release our outcome to
  // its reap(). Fails harmlessly for a publish that already timed out.
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

void JetStreamSink::on_connected(natsConnection* nc, void* closure) {
  auto* self = static_cast<JetStreamSink*>(closure);
  // release: the writer that sees connected also sees the connection set up.
  self->connected_.store(true, std::memory_order_release);
  self->stats.connected.v.store(1, std::memory_order_relaxed);
  if (!self->closing_.load(std::memory_order_relaxed)) {
    self->engine_.log("info", "jetstream: connected to " + self->connected_url());
  }
  self->wake_.notify();
}

void JetStreamSink::on_disconnected(natsConnection*, void* closure) {
  auto* self = static_cast<JetStreamSink*>(closure);
  self->connected_.store(false, std::memory_order_release);
  self->stats.connected.v.store(0, std::memory_order_relaxed);
  if (!self->closing_.load(std::memory_order_relaxed)) {
    self->engine_.log("warn", "jetstream: disconnected from NATS; reconnecting");
  }
}

void JetStreamSink::on_reconnected(natsConnection*, void* closure) {
  auto* self = static_cast<JetStreamSink*>(closure);
  self->stats.reconnects.add();
  self->connected_.store(true, std::memory_order_release);
  self->stats.connected.v.store(1, std::memory_order_relaxed);
  if (!self->closing_.load(std::memory_order_relaxed)) {
    self->engine_.log("info", "jetstream: reconnected to " + self->connected_url());
  }
  self->wake_.notify();
}

void JetStreamSink::on_closed(natsConnection*, void* closure) {
  auto* self = static_cast<JetStreamSink*>(closure);
  std::lock_guard<std::mutex> lock(self->closed_mu_);
  self->closed_ = true;
  self->closed_cv_.notify_all();
}

void JetStreamSink::on_error(natsConnection*, natsSubscription*, natsStatus err, void* closure) {
  auto* self = static_cast<JetStreamSink*>(closure);
  if (self->closing_.load(std::memory_order_relaxed)) return;
  self->engine_.log("warn", std::string("jetstream: ") + self->api_->natsStatus_GetText(err));
}

std::string JetStreamSink::connected_url() {
  char url[256] = {0};
  if (api_->natsConnection_GetConnectedUrl(nc_, url, sizeof url) != NATS_OK || url[0] == 0) return "NATS";
  return url;
}

// ---- writer thread ----------------------------------------------------------

void JetStreamSink::log_unavailable(uint64_t now_ms, const std::string& why) {
  if (now_ms - last_unavailable_log_ms_ < kLogEveryMs && last_unavailable_log_ms_ != 0) return;
  last_unavailable_log_ms_ = now_ms;
  engine_.log("error", "jetstream: " + why + "; messages are not published until it is back");
}

bool JetStreamSink::ready(uint64_t now_ms) {
  // acquire: pairs with the connection callbacks' release.
  if (!connected_.load(std::memory_order_acquire)) {
    log_unavailable(now_ms, "not connected to any of " + std::to_string(cfg_.servers.size()) + " NATS server(s)");
    return false;
  }
  if (stream_missing_.exchange(false, std::memory_order_relaxed)) stream_ok_ = false;
  if (stream_ok_) return true;
  if (now_ms < next_stream_check_ms_) return false;
  next_stream_check_ms_ = now_ms + kStreamCheckEveryMs;
  stream_ok_ = ensure_stream();
  return stream_ok_;
}

// Looks the stream up, creating it when allowed. Blocks for at most the
// context's wait (2 s) per request, and runs at most once a second.
bool JetStreamSink::ensure_stream() {
  const NatsApi& n = *api_;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = n.js_GetStreamInfo(&si, js_, cfg_.stream.c_str(), nullptr, &jerr);
  if (s == NATS_OK) {
    n.jsStreamInfo_Destroy(si);
    return true;
  }
  uint64_t now = monotonic_ms();
  if (jerr != JSStreamNotFoundErr && s != NATS_NOT_FOUND) {
    log_unavailable(now, "cannot look up stream " + cfg_.stream + ": " + n.natsStatus_GetText(s) +
                             (jerr ? " (JetStream error " + std::to_string(jerr) + ")" : ""));
    return false;
  }
  if (!cfg_.create_stream) {
    log_unavailable(now, "stream " + cfg_.stream + " does not exist (jetstream.createStream is false)");
    return false;
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
    log_unavailable(now, "cannot create stream " + cfg_.stream + ": " + n.natsStatus_GetText(s) +
                             (jerr ? " (JetStream error " + std::to_string(jerr) + ")" : ""));
    return false;
  }
  n.jsStreamInfo_Destroy(si);
  engine_.log("info", "jetstream: created stream " + cfg_.stream + " (subjects " + subjects + ", replicas " +
                          std::to_string(cfg_.replicas) + ")");
  return true;
}

void JetStreamSink::publish(Batch* b, uint32_t i, uint64_t seq, bool decides) {
  const NatsApi& n = *api_;
  while (tail_ - head_ >= ring_.size()) wait_for_room();
  const MsgRef& m = b->msgs[i];
  size_t size = record::record_size(m.name_len, m.payload_len);
  if (record_.size() < size) record_.resize(size);
  record::encode(record_.data(), seq, b->time_us, m.client_id, m.msg_id, b->data + m.offset, m.name_len,
                 b->data + m.payload_offset(), m.payload_len);
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
  s.deadline_ms = monotonic_ms() + cfg_.ack_timeout_ms;
  // release: the slot's fields are set before the ack thread can match it.
  s.state.store(id << 8, std::memory_order_release);
  tail_++;
  if (decides) b->awaiting++;

  natsMsg* msg = nullptr;
  natsStatus st = n.natsMsg_Create(&msg, subject_.c_str(), reply_.c_str(), reinterpret_cast<const char*>(record_.data()),
                                   static_cast<int>(size));
  if (st == NATS_OK) st = n.natsMsgHeader_Set(msg, "Nats-Msg-Id", msg_id_.c_str());
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
  log_unavailable(monotonic_ms(), std::string("cannot publish a ") + std::to_string(size) + "-byte record: " +
                                      n.natsStatus_GetText(st));
}

void JetStreamSink::settle(Slot& s, uint8_t outcome) {
  if (!s.batch) return;
  MsgRef& m = s.batch->msgs[s.index];
  m.status = outcome == kStored || outcome == kDuplicate ? uint8_t{wire::kAckOk} : uint8_t{wire::kAckReplicationFailed};
  s.batch->awaiting--;
  s.batch = nullptr;
}

int JetStreamSink::reap(uint64_t now_ms) {
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

bool JetStreamSink::head_settled() const {
  if (head_ == tail_) return false;
  // acquire: pairs with ack()'s release of the outcome.
  return (ring_[head_ & mask_].state.load(std::memory_order_acquire) & 0xff) != kNone;
}

void JetStreamSink::wait_for_room() {
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

void JetStreamSink::close() {
  if (!api_) return;
  const NatsApi& n = *api_;
  // Settle what is in flight (each publish times out at the latest).
  while (!idle()) {
    int timeout = reap(monotonic_ms());
    if (idle()) break;
    wake_.prepare_sleep();
    if (head_settled()) {
      wake_.cancel_sleep();
      continue;
    }
    wake_.wait(timeout);
  }
  closing_.store(true, std::memory_order_relaxed);
  if (sub_) {
    // Drain: once complete, on_ack is never running or called again.
    if (n.natsSubscription_Drain(sub_) == NATS_OK) {
      n.natsSubscription_WaitForDrainCompletion(sub_, kCloseWaitMs);
    } else {
      n.natsSubscription_Unsubscribe(sub_);
    }
  }
  if (js_) n.jsCtx_Destroy(js_);
  js_ = nullptr;
  if (nc_) {
    n.natsConnection_Close(nc_);
    // The closed callback is libnats's last call into this object.
    std::unique_lock<std::mutex> lock(closed_mu_);
    closed_cv_.wait_for(lock, std::chrono::milliseconds(kCloseWaitMs), [this] { return closed_; });
  }
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

#endif
