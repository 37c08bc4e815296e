// Node-API binding: the module and its Engine class. Translation only; the
// parts are named by file: addon_config.cc (config in), addon_stats.cc
// (counters out), addon_events.cc (events and hook batches out).
#include <memory>
#include <string>

#include "addon.h"
#include "jetstream_sink.h"
#include "system_error.h"

namespace msgs::binding {

namespace {

// A failed bind or open as Node shapes its system errors: errno (negative),
// syscall, and address/port or path (lib names the errno: code).
Napi::Error start_error(Napi::Env env, const SystemError& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  Napi::Object o = err.Value();
  if (e.err != 0) o.Set("errno", Napi::Number::New(env, -e.err));
  if (!e.code.empty()) o.Set("code", Napi::String::New(env, e.code));
  if (!e.syscall.empty()) o.Set("syscall", Napi::String::New(env, e.syscall));
  if (!e.address.empty()) o.Set("address", Napi::String::New(env, e.address));
  if (e.port >= 0) o.Set("port", Napi::Number::New(env, e.port));
  if (!e.path.empty()) o.Set("path", Napi::String::New(env, e.path));
  return err;
}

// Events waiting for the JS thread; past it, new ones are dropped rather
// than queued without bound (connection events under a storm of connects).
constexpr size_t kMaxQueuedEvents = 65536;

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {InstanceMethod("start", &EngineWrap::Start), InstanceMethod("stop", &EngineWrap::Stop),
                        InstanceMethod("stats", &EngineWrap::Stats), InstanceMethod("setHooks", &EngineWrap::SetHooks),
                        InstanceMethod("setConnectionEvents", &EngineWrap::SetConnectionEvents),
                        InstanceMethod("reconfigure", &EngineWrap::Reconfigure),
                        InstanceMethod("reload", &EngineWrap::Reload),
                        InstanceMethod("segmentArchived", &EngineWrap::SegmentArchived)});
  }

  // new Engine(resolvedConfig, onEvent(event), onMessages(data, meta))
  EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    config_ = config_from_js(info[0].As<Napi::Object>());
    on_event_ = Napi::Persistent(info[1].As<Napi::Function>());
    on_messages_ = Napi::Persistent(info[2].As<Napi::Function>());
  }

  ~EngineWrap() override { halt(); }

 private:
  // ---- lifecycle ----

  // start(principals): synchronous: loading the TLS files, binding and
  // opening the file happen here, so their errors are thrown to the caller.
  // Returns the bound port.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<Principal> principals = principals_from_js(info[0]);
    if (engine_ && engine_->running()) {
      Napi::Error::New(env, "server is already running").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, on_event_.Value(), "msgserver-events", kMaxQueuedEvents, 1);
    hook_tsfn_ = Napi::ThreadSafeFunction::New(env, on_messages_.Value(), "msgserver-hooks", 0, 1);
    hook_tsfn_.Unref(env);  // hooks alone never keep the process alive
    try {  // the engine's constructor can fail too (eventfd: out of descriptors)
      engine_ = std::make_unique<Engine>(config_, [this](Event&& ev) { return post(std::move(ev)); });
      engine_->hooks()->set_sink([this](HookBatch* b) { return post_messages(b); });
      engine_->hooks()->configure(hooks_.enabled, hooks_.block, hooks_.max_bytes);
      engine_->events().set_connection_events(connection_events_);
      engine_->start(std::move(principals));
    } catch (const SystemError& e) {
      engine_.reset();
      tsfn_.Release();
      hook_tsfn_.Release();
      start_error(env, e).ThrowAsJavaScriptException();
      return env.Undefined();
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
    (new StopWorker(this, timeout, deferred))->Queue();
    return deferred.Promise();
  }

  class StopWorker : public Napi::AsyncWorker {
   public:
    StopWorker(EngineWrap* self, uint32_t timeout, Napi::Promise::Deferred d)
        : Napi::AsyncWorker(self->Env()), self_(self), timeout_(timeout), deferred_(d) {}
    void Execute() override { report_ = self_->engine_->stop(timeout_); }
    void OnOK() override {
      Napi::Object r = Napi::Object::New(Env());
      set_count(r, "unackedConnections", report_.unacked_closed);
      set_count(r, "unackedMessages", report_.unacked_messages);
      r.Set("timedOut", Napi::Boolean::New(Env(), report_.timed_out));
      r.Set("stats", stats_to_js(Env(), *self_->engine_));  // the final counters
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
    StopReport report_;
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

  // ---- what JS asks for ----

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    if (!engine_) return Napi::Object::New(info.Env());
    return stats_to_js(info.Env(), *engine_);
  }

  // setHooks(enabled, block, maxBytes): kept for the next start too.
  Napi::Value SetHooks(const Napi::CallbackInfo& info) {
    hooks_.enabled = info[0].ToBoolean().Value();
    hooks_.block = info[1].ToBoolean().Value();
    hooks_.max_bytes = static_cast<uint64_t>(info[2].As<Napi::Number>().DoubleValue());
    if (engine_) engine_->hooks()->configure(hooks_.enabled, hooks_.block, hooks_.max_bytes);
    return info.Env().Undefined();
  }

  // Connection events cost the engine a string per connection: only while JS listens.
  Napi::Value SetConnectionEvents(const Napi::CallbackInfo& info) {
    connection_events_ = info[0].ToBoolean().Value();
    if (engine_) engine_->events().set_connection_events(connection_events_);
    return info.Env().Undefined();
  }

  // reconfigure(resolvedConfig): the live fields take effect (lib decides
  // which fields changed and which need a restart). Kept for the next start.
  Napi::Value Reconfigure(const Napi::CallbackInfo& info) {
    Config c = config_from_js(info[0].As<Napi::Object>());
    config_ = c;
    if (engine_) engine_->reconfigure(c);
    return info.Env().Undefined();
  }

  // reload(principals): '' when the new credentials are in use, else why not
  // (the old ones stay). lib turns the reason into an error with a code.
  // A string in place of the principals: lib could not load them (the
  // tokens file); counted as a failed reload, nothing changes.
  Napi::Value Reload(const Napi::CallbackInfo& info) {
    if (!engine_ || !engine_->running()) return Napi::String::New(info.Env(), "the server is not running");
    if (info[0].IsString()) {
      engine_->reload_failed();
      return info[0];
    }
    std::vector<Principal> principals = principals_from_js(info[0]);
    return Napi::String::New(info.Env(), engine_->reload(std::move(principals)));
  }

  // segmentArchived(path, ok): every archive hook resolved for the segment
  // (ok), or one rejected (counted; the segment is kept).
  Napi::Value SegmentArchived(const Napi::CallbackInfo& info) {
    std::string path = info[0].As<Napi::String>().Utf8Value();
    bool ok = info[1].ToBoolean().Value();
    if (engine_) {
      if (ok) {
        engine_->segment_archived(path);
      } else {
        engine_->archive_failed();
      }
    }
    return info.Env().Undefined();
  }

  // ---- engine threads -> JS ----

  // Never blocks the engine: if the JS side is far behind, the call fails,
  // the event is dropped and counted (stats().eventsDropped).
  bool post(Event&& ev) {
    auto* data = new Event(std::move(ev));
    napi_status st = tsfn_.NonBlockingCall(data, [](Napi::Env env, Napi::Function fn, Event* e) {
      Napi::Object o = event_to_js(env, *e);
      delete e;
      fn.Call({o});
    });
    if (st == napi_ok) return true;
    delete data;
    return false;
  }

  // Writer thread -> JS: one call per HookBatch. The hooks' budget is
  // released when the JS callback returns, however it ends.
  bool post_messages(HookBatch* b) {
    std::shared_ptr<HookChannel> channel = engine_->hooks();
    napi_status st = hook_tsfn_.NonBlockingCall(b, [channel](Napi::Env env, Napi::Function fn, HookBatch* hb) {
      struct Release {
        HookChannel& ch;
        uint64_t bytes;
        ~Release() { ch.release(bytes); }
      } release{*channel, hb->budget};
      Napi::Value data, meta;
      hook_batch_to_js(env, hb, &data, &meta);
      fn.Call({data, meta});
    });
    return st == napi_ok;
  }

  struct HookSettings {
    bool enabled = false;
    bool block = false;
    uint64_t max_bytes = 0;  // set by lib before the first start
  };

  Config config_;
  Napi::FunctionReference on_event_;
  Napi::FunctionReference on_messages_;
  Napi::ThreadSafeFunction tsfn_;
  Napi::ThreadSafeFunction hook_tsfn_;
  HookSettings hooks_;
  bool connection_events_ = false;
  std::unique_ptr<Engine> engine_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", EngineWrap::Define(env));
  exports.Set("sourceHash", Napi::String::New(env, MSGS_SOURCE_HASH));
  exports.Set("statsSchema", stats_schema(env));
  // "available", or why the jetstream option cannot work here (loads libnats on first call).
  exports.Set("jetstreamAvailability", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return Napi::String::New(info.Env(), nats_availability());
              }));
  return exports;
}

}  // namespace

}  // namespace msgs::binding

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return msgs::binding::Init(env, exports); }

NODE_API_MODULE(msgserver, InitModule)
