// msgbench.node: the Node-API module of the load engine (loadgen.h). Exports
//   runLoad(options) -> Promise<result>
//   sourceHash: MSGS_BENCH_SOURCE_HASH (CMakeLists.txt), the hash of the
//               sources it was built from (bench/loadgen/ and msgs_format)
// The run happens on a libuv worker thread (which starts the load threads);
// options.onProgress, when given, is called on the JS thread with the latest
// progress every options.progressIntervalMs. Validation of user input is done
// in lib/bench/bench.ts; this file only translates.
#include <napi.h>

#include <string>

#include "loadgen.h"

namespace {

using loadgen::LoadConfig;
using loadgen::LoadGen;
using loadgen::LoadResult;
using loadgen::Progress;

double num(const Napi::Object& o, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : dflt;
}

std::string str(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

LoadConfig parse(const Napi::Object& o) {
  LoadConfig c;
  Napi::Value host = o.Get("host");
  if (host.IsString()) c.host = host.As<Napi::String>().Utf8Value();
  c.port = uint16_t(num(o, "port", c.port));
  Napi::Value proto = o.Get("protocol");
  if (proto.IsString()) {
    std::string p = proto.As<Napi::String>().Utf8Value();
    if (p == "legacy") {
      c.protocol = loadgen::Protocol::kLegacy;
    } else if (p != "v1") {
      throw std::runtime_error("protocol must be 'v1' or 'legacy'");
    }
  }
  c.connections = uint32_t(num(o, "connections", c.connections));
  c.messages = uint64_t(num(o, "messages", 0));
  c.duration_ms = uint32_t(num(o, "durationMs", 0));
  c.payload_min = uint32_t(num(o, "payloadMin", c.payload_min));
  c.payload_max = uint32_t(num(o, "payloadMax", c.payload_min));
  c.window = uint32_t(num(o, "window", c.window));
  c.threads = uint32_t(num(o, "threads", c.threads));
  c.ramp_ms = uint32_t(num(o, "rampMs", 0));
  Napi::Value name = o.Get("name");
  if (name.IsString()) c.name = name.As<Napi::String>().Utf8Value();
  c.client_id_base = uint32_t(num(o, "clientIdBase", c.client_id_base));
  c.stall_timeout_ms = uint32_t(num(o, "stallTimeoutMs", c.stall_timeout_ms));
  c.seed = uint64_t(num(o, "seed", double(c.seed)));
  c.progress_interval_ms = uint32_t(num(o, "progressIntervalMs", c.progress_interval_ms));
  c.tls = o.Get("tls").ToBoolean().Value();
  c.tls_ca = str(o, "tlsCa");
  c.tls_cert = str(o, "tlsCert");
  c.tls_key = str(o, "tlsKey");
  c.tls_servername = str(o, "tlsServername");
  Napi::Value token = o.Get("token");
  if (token.IsBuffer()) {
    auto b = token.As<Napi::Buffer<uint8_t>>();
    c.token.assign(reinterpret_cast<const char*>(b.Data()), b.Length());
  } else if (token.IsString()) {
    c.token = token.As<Napi::String>().Utf8Value();
  }
  return c;
}

void set(Napi::Object& o, const char* key, double v) { o.Set(key, Napi::Number::New(o.Env(), v)); }

class LoadWorker : public Napi::AsyncProgressWorker<Progress> {
 public:
  LoadWorker(Napi::Env env, LoadConfig cfg, Napi::Function on_progress)
      : Napi::AsyncProgressWorker<Progress>(env, "msgbench-load"),
        cfg_(std::move(cfg)),
        deferred_(Napi::Promise::Deferred::New(env)) {
    if (!on_progress.IsEmpty()) on_progress_ = Napi::Persistent(on_progress);
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    try {
      bool want = !on_progress_.IsEmpty();
      result_ = LoadGen::run(cfg_, [&](const Progress& p) {
        if (want) progress.Send(&p, 1);
      });
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnProgress(const Progress* p, size_t count) override {
    if (on_progress_.IsEmpty() || count == 0 || p == nullptr) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Object o = Napi::Object::New(env);
    set(o, "elapsedMs", p->elapsed_ms);
    set(o, "sent", double(p->sent));
    set(o, "acked", double(p->acked));
    set(o, "errors", double(p->errors));
    set(o, "connectionsOpen", p->connections_open);
    on_progress_.Call({o});
  }

  void OnOK() override {
    Napi::Env env = Env();
    const LoadResult& r = result_;
    Napi::Object o = Napi::Object::New(env);
    set(o, "elapsedMs", r.elapsed_ms);
    set(o, "messagesSent", double(r.messages_sent));
    set(o, "messagesAcked", double(r.messages_acked));
    set(o, "wireBytesSent", double(r.wire_bytes_sent));
    set(o, "payloadBytesAcked", double(r.payload_bytes_acked));
    set(o, "ackFrames", double(r.ack_frames));
    set(o, "msgsPerSec", r.msgs_per_sec);
    set(o, "wireMBPerSec", r.wire_mb_per_sec);
    set(o, "payloadMBPerSec", r.payload_mb_per_sec);
    Napi::Object lat = Napi::Object::New(env);
    set(lat, "count", double(r.latency.count));
    set(lat, "minUs", r.latency.min_us);
    set(lat, "meanUs", r.latency.mean_us);
    set(lat, "p50Us", r.latency.p50_us);
    set(lat, "p90Us", r.latency.p90_us);
    set(lat, "p99Us", r.latency.p99_us);
    set(lat, "p999Us", r.latency.p999_us);
    set(lat, "maxUs", r.latency.max_us);
    o.Set("latency", lat);
    set(o, "connectionsOk", r.connections_ok);
    set(o, "connectionsFailed", r.connections_failed);
    set(o, "errors", double(r.errors));
    Napi::Object e = Napi::Object::New(env);
    set(e, "connect", double(r.connect_errors));
    set(e, "ackMismatch", double(r.ack_mismatches));
    set(e, "badStatus", double(r.bad_status));
    set(e, "serverError", double(r.server_errors));
    set(e, "closedEarly", double(r.closed_early));
    set(e, "timeout", double(r.timeouts));
    o.Set("errorsByKind", e);
    set(o, "messagesUnacked", double(r.messages_unacked));
    Napi::Array samples = Napi::Array::New(env, r.error_samples.size());
    for (size_t i = 0; i < r.error_samples.size(); i++) samples.Set(uint32_t(i), r.error_samples[i]);
    o.Set("errorSamples", samples);
    deferred_.Resolve(o);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  LoadConfig cfg_;
  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference on_progress_;
  LoadResult result_;
};

Napi::Value RunLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    Napi::TypeError::New(env, "runLoad(options): options must be an object").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = info[0].As<Napi::Object>();
  LoadConfig cfg;
  try {
    cfg = parse(o);
  } catch (const std::exception& e) {
    Napi::TypeError::New(env, e.what()).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Value cb = o.Get("onProgress");
  Napi::Function fn = cb.IsFunction() ? cb.As<Napi::Function>() : Napi::Function();
  auto* worker = new LoadWorker(env, std::move(cfg), fn);
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

#ifndef MSGS_BENCH_SOURCE_HASH
#error "MSGS_BENCH_SOURCE_HASH is defined by CMakeLists.txt (the msgbench target)"
#endif

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("runLoad", Napi::Function::New(env, RunLoad, "runLoad"));
  exports.Set("sourceHash", Napi::String::New(env, MSGS_BENCH_SOURCE_HASH));
  return exports;
}

}  // namespace

NODE_API_MODULE(msgbench, Init)
