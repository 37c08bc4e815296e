// Node-API binding: only translation between JS values and the engine.
// Validation and the user-facing API live in lib/ (TypeScript).
#include <napi.h>

#include <memory>
#include <string>

#include "crc32c.h"
#include "engine.h"
#include "file_writer.h"
#include "jetstream_sink.h"
#include "listener.h"
#include "nats_api.h"
#include "service_loop.h"

void InitLoadGen(Napi::Env env, Napi::Object exports);  // loadgen_binding.cc: msgbench's load engine

namespace {

using msgs::Engine;
using msgs::EngineConfig;
using msgs::EngineEvent;

std::string get_string(const Napi::Object& o, const char* key) {
  return o.Get(key).As<Napi::String>().Utf8Value();
}
double get_number(const Napi::Object& o, const char* key) {
  return o.Get(key).As<Napi::Number>().DoubleValue();
}

// The options object is lib/native.ts's NativeOptions, already validated.
EngineConfig parse_config(const Napi::Object& o) {
  EngineConfig c;
  c.host = get_string(o, "host");
  c.port = static_cast<uint16_t>(get_number(o, "port"));
  c.service_threads = static_cast<uint32_t>(get_number(o, "serviceThreads"));
  std::string ack = get_string(o, "ackMode");
  c.ack_mode = ack == "received"   ? msgs::AckMode::kReceived
             : ack == "durable"    ? msgs::AckMode::kDurable
             : ack == "replicated" ? msgs::AckMode::kReplicated
                                   : msgs::AckMode::kWritten;
  c.protocol = get_string(o, "protocol") == "legacy" ? msgs::Protocol::kLegacy : msgs::Protocol::kV1;
  c.file_enabled = o.Get("fileEnabled").ToBoolean().Value();
  c.file_path = get_string(o, "filePath");
  c.format = get_string(o, "format") == "text" ? msgs::FileFormat::kText : msgs::FileFormat::kBinary;
  c.rotate_bytes = static_cast<uint64_t>(get_number(o, "rotateBytes"));
  c.rotate_ms = static_cast<uint64_t>(get_number(o, "rotateMs"));
  std::string fsync = get_string(o, "fsync");
  c.fsync = fsync == "never" ? msgs::FsyncPolicy::kNever
          : fsync == "batch" ? msgs::FsyncPolicy::kBatch
                             : msgs::FsyncPolicy::kInterval;
  c.fsync_interval_ms = static_cast<uint32_t>(get_number(o, "fsyncIntervalMs"));
  c.repair = o.Get("repair").ToBoolean().Value();
  c.batch_max_messages = static_cast<uint32_t>(get_number(o, "batchMaxMessages"));
  c.batch_max_bytes = static_cast<uint64_t>(get_number(o, "batchMaxBytes"));
  c.batch_max_delay_ms = static_cast<uint32_t>(get_number(o, "batchMaxDelayMs"));
  c.max_message_bytes = static_cast<uint32_t>(get_number(o, "maxMessageBytes"));
  c.max_connections = static_cast<uint32_t>(get_number(o, "maxConnections"));
  c.idle_timeout_ms = static_cast<uint32_t>(get_number(o, "idleTimeoutMs"));
  c.handshake_timeout_ms = static_cast<uint32_t>(get_number(o, "handshakeTimeoutMs"));
  c.frame_timeout_ms = static_cast<uint32_t>(get_number(o, "frameTimeoutMs"));
  c.max_queue_bytes = static_cast<uint64_t>(get_number(o, "maxQueueBytes"));
  c.max_inflight_bytes_per_connection = static_cast<uint64_t>(get_number(o, "maxInflightBytesPerConnection"));
  Napi::Value js = o.Get("jetstream");
  if (js.IsObject()) {
    Napi::Object j = js.As<Napi::Object>();
    c.jetstream.enabled = true;
    Napi::Array servers = j.Get("servers").As<Napi::Array>();
    for (uint32_t i = 0; i < servers.Length(); i++) {
      c.jetstream.servers.push_back(servers.Get(i).As<Napi::String>().Utf8Value());
    }
    c.jetstream.stream = get_string(j, "stream");
    c.jetstream.subject_prefix = get_string(j, "subjectPrefix");
    c.jetstream.replicas = static_cast<uint32_t>(get_number(j, "replicas"));
    c.jetstream.create_stream = j.Get("createStream").ToBoolean().Value();
    c.jetstream.ack_timeout_ms = static_cast<uint32_t>(get_number(j, "ackTimeoutMs"));
    c.jetstream.max_pending = static_cast<uint32_t>(get_number(j, "maxPending"));
  }
  return c;
}

void set(Napi::Object& o, const char* key, uint64_t v) {
  o.Set(key, Napi::Number::New(o.Env(), static_cast<double>(v)));
}

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {InstanceMethod("start", &EngineWrap::Start), InstanceMethod("stop", &EngineWrap::Stop),
                        InstanceMethod("stats", &EngineWrap::Stats),
                        InstanceMethod("setHooks", &EngineWrap::SetHooks),
                        InstanceMethod("setConnectionEvents", &EngineWrap::SetConnectionEvents)});
  }

  EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    config_ = parse_config(info[0].As<Napi::Object>());
    on_event_ = Napi::Persistent(info[1].As<Napi::Function>());
    on_messages_ = Napi::Persistent(info[2].As<Napi::Function>());
  }

  ~EngineWrap() override { halt(); }

 private:
  // Synchronous: binding and opening the file happen here, so their errors
  // are thrown to the caller. Returns the bound port.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (engine_ && engine_->running()) {
      Napi::Error::New(env, "server is already running").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, on_event_.Value(), "msgserver-events", 0, 1);
    hook_tsfn_ = Napi::ThreadSafeFunction::New(env, on_messages_.Value(), "msgserver-hooks", 0, 1);
    hook_tsfn_.Unref(env);  // hooks alone never keep the process alive
    engine_ = std::make_unique<Engine>(config_, [this](EngineEvent&& ev) { post(std::move(ev)); });
    engine_->hooks().set_sink([this](msgs::HookBatch* b) { return post_messages(b); });
    engine_->hooks().configure(hooks_enabled_, hooks_block_, hooks_max_bytes_);
    engine_->set_connection_events(connection_events_);
    try {
      engine_->start();
    } catch (const std::exception& e) {
      engine_.reset();
      tsfn_.Release();
      hook_tsfn_.Release();
      Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Ref();  // a running server is not garbage, even if JS drops it
    napi_add_env_cleanup_hook(env, &EngineWrap::cleanup_hook, this);
    return Napi::Number::New(env, engine_->port());
  }

  // Drains and joins on a worker thread; resolves with the stop report.
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t timeout = info[0].As<Napi::Number>().Uint32Value();
    auto deferred = Napi::Promise::Deferred::New(env);
    if (!engine_ || !engine_->running()) {
      deferred.Resolve(env.Undefined());
      return deferred.Promise();
    }
    auto* worker = new StopWorker(this, timeout, deferred);
    worker->Queue();
    return deferred.Promise();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) { return stats_object(info.Env()); }

  // setHooks(enabled, block, maxBytes): kept for the next start too.
  Napi::Value SetHooks(const Napi::CallbackInfo& info) {
    hooks_enabled_ = info[0].ToBoolean().Value();
    hooks_block_ = info[1].ToBoolean().Value();
    hooks_max_bytes_ = static_cast<uint64_t>(info[2].As<Napi::Number>().DoubleValue());
    if (engine_) engine_->hooks().configure(hooks_enabled_, hooks_block_, hooks_max_bytes_);
    return info.Env().Undefined();
  }

  Napi::Value SetConnectionEvents(const Napi::CallbackInfo& info) {
    connection_events_ = info[0].ToBoolean().Value();
    if (engine_) engine_->set_connection_events(connection_events_);
    return info.Env().Undefined();
  }

  Napi::Object stats_object(Napi::Env env) {
    Napi::Object o = Napi::Object::New(env);
    if (!engine_) return o;
    Engine& e = *engine_;
    uint64_t conns = 0, msgs_in = 0, bytes_in = 0, frames = 0, pushed = 0, paused = 0, reads = 0, inflight = 0;
    uint64_t acks[msgs::kAckStatuses] = {0}, errs[msgs::kErrCodes] = {0};
    Napi::Array threads = Napi::Array::New(env, e.service_count());
    for (uint32_t i = 0; i < e.service_count(); i++) {
      const msgs::ServiceStats& s = e.service(i).stats;
      conns += s.connections.get();
      msgs_in += s.messages_in.get();
      bytes_in += s.bytes_in.get();
      frames += s.ack_frames.get();
      pushed += s.batches_pushed.get();
      paused += s.paused.get();
      reads += s.read_calls.get();
      inflight += s.inflight_pauses.get();
      for (int k = 0; k < msgs::kAckStatuses; k++) acks[k] += s.acks[k].get();
      for (int k = 0; k < msgs::kErrCodes; k++) errs[k] += s.errors[k].get();
      Napi::Object t = Napi::Object::New(env);
      set(t, "connections", s.connections.get());
      set(t, "accepted", s.accepted.get());
      set(t, "messagesIn", s.messages_in.get());
      set(t, "bytesIn", s.bytes_in.get());
      set(t, "batchesPushed", s.batches_pushed.get());
      threads.Set(i, t);
    }
    set(o, "connections", conns);
    set(o, "connectionsAccepted", e.listener().stats.accepted.get());
    set(o, "connectionsRejected", e.listener().stats.rejected_busy.get());
    set(o, "acceptErrors", e.listener().stats.accept_errors.get());
    set(o, "messagesIn", msgs_in);
    set(o, "bytesIn", bytes_in);
    Napi::Array ack_arr = Napi::Array::New(env, msgs::kAckStatuses);
    for (int k = 0; k < msgs::kAckStatuses; k++) ack_arr.Set(k, Napi::Number::New(env, double(acks[k])));
    o.Set("acks", ack_arr);
    Napi::Array err_arr = Napi::Array::New(env, msgs::kErrCodes);
    for (int k = 0; k < msgs::kErrCodes; k++) err_arr.Set(k, Napi::Number::New(env, double(errs[k])));
    o.Set("errors", err_arr);
    set(o, "ackFrames", frames);
    set(o, "batchesPushed", pushed);
    set(o, "readCalls", reads);
    set(o, "pausedForQueue", paused);
    set(o, "inflightPauses", inflight);
    set(o, "queueBytes", e.queue_bytes().load(std::memory_order_relaxed));
    set(o, "queueBatches", e.queue_batches().load(std::memory_order_relaxed));
    const msgs::WriterStats& w = e.writer().stats;
    set(o, "writerBatches", w.batches.get());
    set(o, "writes", w.writes.get());
    set(o, "recordsWritten", w.records.get());
    set(o, "bytesWritten", w.bytes.get());
    set(o, "fsyncs", w.fsyncs.get());
    set(o, "syncedRecords", w.synced_records.get());
    set(o, "writeErrors", w.write_errors.get());
    set(o, "failedRecords", w.failed_records.get());
    set(o, "lastSeq", w.last_seq.get());
    set(o, "tornBytesCut", w.torn_bytes_cut.get());
    set(o, "rotations", w.rotations.get());
    Napi::Array lat = Napi::Array::New(env, msgs::WriterStats::kLatencyBuckets);
    for (int k = 0; k < msgs::WriterStats::kLatencyBuckets; k++) {
      lat.Set(k, Napi::Number::New(env, double(w.write_latency[k].get())));
    }
    o.Set("writeLatencyUs", lat);
#if MSGS_HAVE_NATS
    if (const msgs::JetStreamSink* js = e.writer().jetstream()) {
      Napi::Object j = Napi::Object::New(env);
      set(j, "published", js->stats.published.get());
      set(j, "acked", js->stats.acked.get());
      set(j, "duplicates", js->stats.duplicates.get());
      set(j, "failed", js->stats.failed.get());
      set(j, "timeouts", js->stats.timeouts.get());
      set(j, "unavailable", js->stats.unavailable.get());
      set(j, "reconnects", js->stats.reconnects.get());
      j.Set("connected", Napi::Boolean::New(env, js->connected()));
      o.Set("jetstream", j);
    }
#endif
    set(o, "hookDelivered", e.hooks().delivered.get());
    set(o, "hookDropped", e.hooks().dropped.get());
    set(o, "hookBlocked", e.hooks().blocked.get());
    o.Set("threads", threads);
    return o;
  }

  class StopWorker : public Napi::AsyncWorker {
   public:
    StopWorker(EngineWrap* self, uint32_t timeout, Napi::Promise::Deferred d)
        : Napi::AsyncWorker(self->Env()), self_(self), timeout_(timeout), deferred_(d) {}
    void Execute() override { report_ = self_->engine_->stop(timeout_); }
    void OnOK() override {
      Napi::Object r = Napi::Object::New(Env());
      set(r, "unackedConnections", report_.unacked_closed);
      set(r, "unackedMessages", report_.unacked_messages);
      r.Set("timedOut", Napi::Boolean::New(Env(), report_.timed_out));
      r.Set("stats", self_->stats_object(Env()));  // the final counters
      self_->after_stop();
      deferred_.Resolve(r);
    }
    void OnError(const Napi::Error& e) override {
      self_->after_stop();
      deferred_.Reject(e.Value());
    }

   private:
    EngineWrap* self_;
    uint32_t timeout_;
    Napi::Promise::Deferred deferred_;
    msgs::StopReport report_;
  };

  // Frees the stopped engine's sockets, event bases and file at once rather
  // than whenever the garbage collector gets to this object.
  void after_stop() {
    engine_.reset();
    napi_remove_env_cleanup_hook(Env(), &EngineWrap::cleanup_hook, this);
    tsfn_.Release();
    hook_tsfn_.Release();
    Unref();
  }

  // Environment teardown without close(): stop threads so none outlives the
  // isolate. Nothing more can reach JS by then.
  static void cleanup_hook(void* arg) { static_cast<EngineWrap*>(arg)->halt(); }
  void halt() {
    if (engine_ && engine_->running()) engine_->stop(0);
  }

  // Engine threads -> JS thread. Never blocks the engine: if the JS side is
  // far behind, the call fails and the event is dropped.
  void post(EngineEvent&& ev) {
    auto* data = new EngineEvent(std::move(ev));
    napi_status st = tsfn_.NonBlockingCall(data, [](Napi::Env env, Napi::Function fn, EngineEvent* e) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("type", e->type);
      o.Set("level", e->level);
      o.Set("message", e->message);
      o.Set("detail", e->detail);
      set(o, "a", e->a);
      set(o, "b", e->b);
      set(o, "c", e->c);
      delete e;
      fn.Call({o});
    });
    if (st != napi_ok) delete data;
  }

  // Writer thread -> JS: one call per HookBatch. The batch's bytes become one
  // external Buffer (no copy); per message, 5 u64s describe it:
  // seq, time_us, msg_id, client_id << 32 | name_len, offset << 32 | payload_len.
  // The hooks' budget is released when the JS callback returns.
  bool post_messages(msgs::HookBatch* b) {
    std::shared_ptr<msgs::HookChannel> channel = engine_->hooks_ptr();
    napi_status st = hook_tsfn_.NonBlockingCall(b, [channel](Napi::Env env, Napi::Function fn, msgs::HookBatch* hb) {
      uint64_t budget = hb->budget;
      struct Release {  // however the JS call ends, the budget comes back
        msgs::HookChannel& ch;
        uint64_t bytes;
        ~Release() { ch.release(bytes); }
      } release{*channel, budget};
      size_t n = hb->msgs.size();
      Napi::Buffer<uint8_t> data = Napi::Buffer<uint8_t>::New(
          env, hb->data.data(), hb->data.size(), [](Napi::Env, uint8_t*, msgs::HookBatch* owner) { delete owner; }, hb);
      Napi::ArrayBuffer meta_buf = Napi::ArrayBuffer::New(env, n * 5 * sizeof(uint64_t));
      uint64_t* meta = static_cast<uint64_t*>(meta_buf.Data());
      for (size_t i = 0; i < n; i++) {
        const msgs::HookMessage& m = hb->msgs[i];
        meta[i * 5 + 0] = m.seq;
        meta[i * 5 + 1] = m.time_us;
        meta[i * 5 + 2] = m.msg_id;
        meta[i * 5 + 3] = uint64_t(m.client_id) << 32 | m.name_len;
        meta[i * 5 + 4] = uint64_t(m.offset) << 32 | m.payload_len;
      }
      napi_value meta_arr;
      napi_create_typedarray(env, napi_biguint64_array, n * 5, meta_buf, 0, &meta_arr);
      fn.Call({data, Napi::Value(env, meta_arr)});
    });
    return st == napi_ok;
  }

  EngineConfig config_;
  Napi::FunctionReference on_event_;
  Napi::FunctionReference on_messages_;
  Napi::ThreadSafeFunction tsfn_;
  Napi::ThreadSafeFunction hook_tsfn_;
  bool hooks_enabled_ = false;
  bool hooks_block_ = false;
  uint64_t hooks_max_bytes_ = 64ull << 20;
  bool connection_events_ = false;
  std::unique_ptr<Engine> engine_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", EngineWrap::Define(env));
  exports.Set("sourceHash", Napi::String::New(env, MSGS_SOURCE_HASH));
  exports.Set("crc32cHardware", Napi::Boolean::New(env, msgs::crc32c_hardware()));
  // "available", or why the jetstream option cannot work here (loads libnats on first call).
  exports.Set("jetstreamAvailability", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), msgs::nats_availability());
  }));
  InitLoadGen(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(msgserver, Init)
