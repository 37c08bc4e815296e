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
#include "pub_ack.h"
#include "record.h"
#include "time_util.h"

namespace msgs {

namespace {

// How often an unusable stream is probed again, and how long a message that
// failed fast (no responders, a 503 reply, not sent) waits before its resend,
// as NATS's own clients do (RetryWait).
constexpr uint64_t kStreamCheckEveryMs = 250;
constexpr uint64_t kRetryWaitMs = 250;
constexpr int64_t kFlushWaitMs = 2;
// The probe's expected last sequence: no stream reaches it, so JetStream
// answers "wrong last sequence" (err_code 10071) and stores nothing.
constexpr const char* kProbeLastSeq = "9223372036854775807";
constexpr const char* kWrongLastSeq = "10071";
// A created stream's duplicate window: NATS's default of 2 minutes, longer
// when retryMs + ackTimeoutMs would not fit twice in it.
constexpr int64_t kDefaultDuplicatesMs = 120000;

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

// The shorter of two waits, where -1 means none.
int sooner_ms(int a, int b) {
  if (a < 0) return b;
  if (b < 0) return a;
  return std::min(a, b);
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
      retry_ms_(cfg.ack_mode == AckMode::kReplicated ? cfg.jetstream.retry_ms : 0),
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
  held_ = std::vector<Held>(ring_.size());

  auto check = [&](natsStatus s, const char* what) {
    if (s == NATS_OK) return;
    std::string why = n.natsStatus_GetText(s);
    // A connection libnats closed says why only here: the server's -ERR
    // (an authorization violation twice in a row, say).
    const char* last = nullptr;
    if (nc_ && s == NATS_CONNECTION_CLOSED && n.natsConnection_GetLastError(nc_, &last) != NATS_OK && last && *last) {
      why += std::string(" (") + last + ")";
    }
    throw std::runtime_error(std::string("jetstream: ") + what + ": " + why);
  };
  check(n.natsOptions_Create(&opts_), "cannot create NATS options");
  std::vector<const char*> urls;
  for (const std::string& u : cfg_.servers) urls.push_back(u.c_str());
  check(n.natsOptions_SetServers(opts_, urls.data(), static_cast<int>(urls.size())), "bad jetstream.servers");
  secure(check);
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
    const char* last = n.nats_GetLastError(nullptr);  // why: refused, a TLS handshake, credentials
    events_.log(LogLevel::kWarn, std::string("jetstream: no NATS server reachable yet") +
                                     (last && *last ? std::string(" (") + last + ")" : "") +
                                     "; retrying in the background "
                        "(in ackMode 'replicated' messages wait up to jetstream.retryMs, then REPLICATION_FAILED)");
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
  if (connected_.load(std::memory_order_relaxed)) check_stream();
  next_stream_check_ms_ = monotonic_ms() + kStreamCheckEveryMs;
}

// TLS and credentials toward NATS (jetstream.tls, user/password, token,
// nkey, credsFile). Errors name the field and the file, never a secret.
template <typename Check>
void NatsJetStreamSink::secure(Check& check) {
  const NatsApi& n = *api_;
  const NatsTlsConfig& t = cfg_.tls;
  bool tls_url = false;
  for (const std::string& u : cfg_.servers) tls_url = tls_url || u.rfind("tls://", 0) == 0;
  auto file_check = [&](natsStatus s, const std::string& field, const std::string& file) {
    if (s == NATS_OK) return;
    const char* last = n.nats_GetLastError(nullptr);
    throw std::runtime_error("jetstream: " + field + ": cannot load " + file + ": " + n.natsStatus_GetText(s) +
                             (last && *last ? std::string(" (") + last + ")" : ""));
  };
  if (tls_url || !t.ca.empty() || !t.cert.empty()) {
    check(n.natsOptions_SetSecure(opts_, true), "cannot turn TLS on");
    if (!t.ca.empty()) file_check(n.natsOptions_LoadCATrustedCertificates(opts_, t.ca.c_str()), "tls.ca", t.ca);
    if (!t.cert.empty()) {
      file_check(n.natsOptions_LoadCertificatesChain(opts_, t.cert.c_str(), t.key.c_str()), "tls.cert/tls.key", t.cert);
    }
  }
  if (!cfg_.user.empty()) {
    check(n.natsOptions_SetUserInfo(opts_, cfg_.user.c_str(), cfg_.password.c_str()), "cannot set jetstream.user");
  }
  if (!cfg_.token.empty()) check(n.natsOptions_SetToken(opts_, cfg_.token.c_str()), "cannot set jetstream.token");
  if (!cfg_.nkey.seed_file.empty()) {
    file_check(n.natsOptions_SetNKeyFromSeed(opts_, cfg_.nkey.public_key.c_str(), cfg_.nkey.seed_file.c_str()),
               "nkey.seedFile", cfg_.nkey.seed_file);
  }
  if (!cfg_.creds_file.empty()) {
    file_check(n.natsOptions_SetUserCredentialsFromFiles(opts_, cfg_.creds_file.c_str(), nullptr), "credsFile",
               cfg_.creds_file);
  }
}

// ---- libnats threads ----------------------------------------------------------

NatsJetStreamSink::Outcome NatsJetStreamSink::outcome_of(PubAck a) {
  switch (a) {
    case PubAck::kNoResponders: return kNoStream;
    case PubAck::kStored: return kStored;
    case PubAck::kDuplicate: return kDuplicate;
    case PubAck::kInProcess: return kInProcess;
    case PubAck::kUnavailable: return kUnavailable;
    case PubAck::kRefused: break;
  }
  return kRefused;
}

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
  int len = n.natsMsg_GetDataLength(msg);
  Outcome out = outcome_of(parse_pub_ack(n.natsMsg_GetData(msg), len > 0 ? static_cast<size_t>(len) : 0));
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
  } else if (outcome == kInProcess) {
    stats.in_process.add();  // not stored, not refused: sent again after a wait
  } else {
    stats.failed.add();
    // relaxed: only a hint; the writer re-checks the stream itself.
    if (outcome == kNoStream || outcome == kUnavailable) stream_missing_.store(true, std::memory_order_relaxed);
  }
  wake_.notify();
}

void NatsJetStreamSink::on_connected(natsConnection* nc, void* closure) {
  Entered in(closure);
  NatsJetStreamSink* self = in.sink();
  if (!self) return;
  self->came_up();
  self->events_.log(LogLevel::kInfo, "jetstream: connected to " + self->connected_url(nc));
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
  self->came_up();
  self->events_.log(LogLevel::kInfo, "jetstream: reconnected to " + self->connected_url(nc));
}

// libnats's connection-event thread: the writer must look (the stream
// look-up starts from its poll()), whether it sleeps now or is about to.
void NatsJetStreamSink::came_up() {
  // release: the writer that sees connected also sees the connection set up.
  connected_.store(true, std::memory_order_release);
  connection_news_.store(true, std::memory_order_seq_cst);  // seq_cst: see connection_news_
  wake_.notify();
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

bool NatsJetStreamSink::usable(uint64_t now_ms, bool wait) {
  if (closing_) return false;  // no new look-up once close() has joined the checker
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

// The checker thread (or open()): one look-up and probe, then the result
// for the writer. The first success is the sink's readiness.
void NatsJetStreamSink::check_stream() {
  bool ok = ensure_stream() && probe();
  // release: the writer that sees kStreamOk publishes after a successful probe.
  stream_state_.store(ok ? kStreamOk : kStreamUnknown, std::memory_order_release);
  if (!ok) return;
  if (!announced_ready_) {
    announced_ready_ = true;
    events_.log(LogLevel::kInfo, "jetstream: stream " + cfg_.stream + " is ready (it answered a publish)");
    events_.emit(JetStreamReadyEvent{cfg_.stream});
  }
  wake_.notify();
}

// The checker thread: a publish JetStream answers without storing it (its
// expected last sequence is one no stream reaches). An answer proves the
// stream has a leader that takes publishes on our subjects; no responders
// or a timeout mean it does not, yet.
bool NatsJetStreamSink::probe() {
  const NatsApi& n = *api_;
  std::string subject = cfg_.subject_prefix + ".0";
  natsMsg* msg = nullptr;
  natsMsg* reply = nullptr;
  natsStatus s = n.natsMsg_Create(&msg, subject.c_str(), nullptr, nullptr, 0);
  if (s == NATS_OK) s = n.natsMsgHeader_Set(msg, "Nats-Expected-Stream", cfg_.stream.c_str());
  if (s == NATS_OK) s = n.natsMsgHeader_Set(msg, "Nats-Expected-Last-Sequence", kProbeLastSeq);
  if (s == NATS_OK) s = n.natsConnection_RequestMsg(&reply, nc_, msg, std::min<int64_t>(cfg_.ack_timeout_ms, 2000));
  bool ok = false;
  std::string why = s == NATS_OK ? "" : n.natsStatus_GetText(s);
  if (reply) {
    const char* data = n.natsMsg_GetData(reply);
    int len = n.natsMsg_GetDataLength(reply);
    ok = contains(data, len, kWrongLastSeq);
    if (!ok) why = std::string(data ? data : "", static_cast<size_t>(std::max(len, 0)));
    n.natsMsg_Destroy(reply);
  }
  if (msg) n.natsMsg_Destroy(msg);
  if (!ok && checker_log_.allow(monotonic_ms())) {
    events_.log(LogLevel::kWarn, "jetstream: stream " + cfg_.stream + " does not take publishes yet (" + why +
                                     "); messages wait up to jetstream.retryMs");
  }
  return ok;
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
    int64_t dup_ms = si->Config ? si->Config->Duplicates / 1000000 : 0;
    n.jsStreamInfo_Destroy(si);
    // A resend after the duplicate window would be stored twice.
    if (retry_ms_ > 0 && dup_ms > 0 && static_cast<uint64_t>(dup_ms) <= retry_ms_ + cfg_.ack_timeout_ms &&
        checker_log_.allow(monotonic_ms())) {
      events_.log(LogLevel::kWarn, "jetstream: stream " + cfg_.stream + " keeps duplicates for " +
                                       std::to_string(dup_ms) + " ms, not longer than jetstream.retryMs + ackTimeoutMs (" +
                                       std::to_string(retry_ms_ + cfg_.ack_timeout_ms) +
                                       " ms): a resend late in the budget may be stored twice");
    }
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
  int64_t dup_ms = std::max<int64_t>(kDefaultDuplicatesMs, 2 * static_cast<int64_t>(retry_ms_ + cfg_.ack_timeout_ms));
  sc.Duplicates = dup_ms * 1000000;  // nanoseconds
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
  // A cluster slower than the file slows the writer down (back-pressure)
  // rather than leaving holes in the stream, in every ACK mode.
  while (outstanding() >= ring_.size()) wait_for_room();
  // Behind messages waiting for a resend: wait with them, in order.
  if (decides && held_head_ != held_tail_) return hold(b, i, seq, now_ms, now_ms);
  send(b, i, seq, decides, now_ms, now_ms, encoded);
}

void NatsJetStreamSink::send(Batch* b, uint32_t i, uint64_t seq, bool decides, uint64_t now_ms, uint64_t first_ms,
                         const uint8_t* encoded) {
  const NatsApi& n = *api_;
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
  s.seq = seq;
  s.first_ms = first_ms;
  s.deadline_ms = now_ms + cfg_.ack_timeout_ms;
  // relaxed would do for the ack thread (it reads only `state`); release keeps
  // the new publish number ordered after the writer's last reap of this slot.
  s.state.store(id << 8, std::memory_order_release);
  tail_++;
  // A message still kPending is on its first attempt: counted once, here or in hold().
  if (decides && m.status == kPending) b->awaiting++;

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
  // Not sent (connection closed, reconnect buffer full, too large for the
  // server's max_payload): reap() resends it while its budget lasts.
  uint64_t expect = id << 8;
  s.state.compare_exchange_strong(expect, expect | kNotSent, std::memory_order_acq_rel);
  stats.unavailable.add();
  log_unavailable(now_ms, std::string("cannot publish a ") + std::to_string(size) + "-byte record: " +
                                      n.natsStatus_GetText(st));
}

void NatsJetStreamSink::hold(Batch* b, uint32_t i, uint64_t seq, uint64_t first_ms, uint64_t due_ms) {
  if (b->msgs[i].status == kPending) b->awaiting++;  // not attempted yet: counted once, here or in send()
  held_[held_tail_ & mask_] = Held{b, i, seq, first_ms, due_ms};
  held_tail_++;
  stats.held.add();
}

int NatsJetStreamSink::resend(uint64_t now_ms) {
  // Whose budget is spent: REPLICATION_FAILED (it may still be stored: a
  // client that sends it again with the same msgId gets it stored once).
  uint64_t failed = 0;
  while (held_head_ != held_tail_) {
    Held& h = held_[held_head_ & mask_];
    if (now_ms < h.first_ms + retry_ms_) break;
    settle_message(h.batch, h.index, false);
    held_head_++;
    stats.held.sub();
    stats.retry_exhausted.add();
    failed++;
  }
  if (failed > 0) {
    log_unavailable(now_ms, std::to_string(failed) + " message(s) not acknowledged by stream " + cfg_.stream +
                                " within jetstream.retryMs (" + std::to_string(retry_ms_) +
                                " ms): answered REPLICATION_FAILED");
  }
  if (held_head_ == held_tail_) return -1;
  if (now_ms < held_[held_head_ & mask_].due_ms) {
    const Held& h = held_[held_head_ & mask_];
    return static_cast<int>(std::min(h.due_ms, h.first_ms + retry_ms_) - now_ms);
  }
  if (!usable(now_ms, false)) return static_cast<int>(kRetryWaitMs);
  bool sent = false;
  while (held_head_ != held_tail_) {
    Held h = held_[held_head_ & mask_];
    if (now_ms < h.due_ms) break;
    held_head_++;
    stats.held.sub();
    const MsgRef& m = h.batch->msgs[h.index];
    size_t size = record::record_size(m.name_len, m.payload_len);
    if (scratch_.size() < size) scratch_.resize(size);
    record::encode(scratch_.data(), h.seq, h.batch->time_us, m.client_id, m.msg_id, h.batch->data + m.offset,
                   m.name_len, h.batch->data + m.payload_offset(), m.payload_len);
    send(h.batch, h.index, h.seq, true, now_ms, h.first_ms, scratch_.data());
    sent = true;
  }
  if (sent) flush();
  return held_head_ == held_tail_ ? -1 : static_cast<int>(kRetryWaitMs);
}

// Publishes every pending message of the flush, from the writer's binary
// records (the same bytes the file holds, CRC included).
void NatsJetStreamSink::store(Flush& f) {
  if (f.status != wire::kAckOk) return;  // the file did not store them: nothing to replicate
  bool replicated = ack_mode_ == AckMode::kReplicated;
  uint64_t now_ms = monotonic_ms();
  bool publish_now = usable(now_ms, replicated && retry_ms_ == 0);
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
      } else if (replicated && retry_ms_ > 0) {
        // Not usable yet (starting, reconnecting, an election): the message
        // waits within its budget for the stream.
        while (outstanding() >= ring_.size()) wait_for_room();
        hold(s.batch, i, seq, now_ms, now_ms);
        m.status = kDecidedLater;
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
  settle_message(s.batch, s.index, outcome == kStored || outcome == kDuplicate);
  s.batch = nullptr;
}

void NatsJetStreamSink::settle_message(Batch* b, uint32_t i, bool ok) {
  b->msgs[i].status = ok ? uint8_t{wire::kAckOk} : uint8_t{wire::kAckReplicationFailed};
  b->awaiting--;
}

int NatsJetStreamSink::reap(uint64_t now_ms) {
  // Connected but the stream not usable yet (no traffic may come to ask):
  // keep the look-ups going. A connection that comes up later sets
  // connection_news_, which wakes the writer into this poll again.
  // acquire: a news flag read as set makes its connected_ store visible.
  connection_news_.exchange(false, std::memory_order_acquire);
  bool probing = connected() && !usable_now();
  if (probing) usable(now_ms, false);
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
    if (out != kStored && out != kDuplicate && s.batch && retryable(out) && retry_ms_ > 0) {
      if (now_ms < s.first_ms + retry_ms_) {
        // Again with the same Nats-Msg-Id: the duplicate window keeps one
        // copy if the first attempt was stored after all. A timeout already
        // waited; a fast failure waits a little before trying again.
        uint64_t due = out == kTimedOut ? now_ms : now_ms + kRetryWaitMs;
        hold(s.batch, s.index, s.seq, s.first_ms, due);
        stats.retries.add();
        s.batch = nullptr;
        head_++;
        continue;
      }
      stats.retry_exhausted.add();
    }
    if (out != kStored && out != kDuplicate) failed++;
    if (out == kInProcess) stats.failed.add();  // not retried: the stream may never store it
    settle(s, out);
    head_++;
  }
  if (failed > 0) {
    log_unavailable(now_ms, std::to_string(failed) + " publish(es) not acknowledged by stream " + cfg_.stream +
                                " (refused, still in process, or timed out after " + std::to_string(cfg_.ack_timeout_ms) +
                                " ms)");
  }
  int next = resend(now_ms);
  if (probing) next = sooner_ms(next, static_cast<int>(kStreamCheckEveryMs));
  if (head_ == tail_) return next;
  uint64_t deadline = ring_[head_ & mask_].deadline_ms;
  return sooner_ms(next, deadline > now_ms ? static_cast<int>(deadline - now_ms) : 0);
}

bool NatsJetStreamSink::head_settled() const {
  if (head_ == tail_) return false;
  // seq_cst: this is the re-check after Notifier::prepare_sleep()'s seq_cst
  // store; an acquire load could be ordered before it and miss a wake-up.
  return (ring_[head_ & mask_].state.load(std::memory_order_seq_cst) & 0xff) != kNone;
}

void NatsJetStreamSink::wait_for_room() {
  int timeout = reap(monotonic_ms());
  if (outstanding() < ring_.size()) return;
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
  closing_ = true;
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
  while (held_head_ != held_tail_) {  // no time is left for their resends
    settle_message(held_[held_head_ & mask_].batch, held_[held_head_ & mask_].index, false);
    held_head_++;
    stats.held.sub();
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
