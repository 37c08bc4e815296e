// Engine events and hook batches, as JS values with named fields.
#include <type_traits>

#include "addon.h"

namespace msgs::binding {

namespace {

Napi::Number num(Napi::Env env, uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); }

const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "error";
}

struct ToJs {
  Napi::Env env;
  Napi::Object o;

  void operator()(const LogEvent& e) {
    o.Set("type", "log");
    o.Set("level", level_name(e.level));
    o.Set("message", e.message);
  }
  void operator()(const RecoveredEvent& e) {
    o.Set("type", "recovered");
    o.Set("message", e.message);
    o.Set("offset", num(env, e.offset));
    o.Set("bytesCut", num(env, e.bytes_cut));
    o.Set("lastSeq", num(env, e.last_seq));
  }
  void operator()(const IoErrorEvent& e) {
    o.Set("type", "ioError");
    o.Set("op", e.op);
    o.Set("path", e.path);
    o.Set("message", e.message);
    o.Set("errno", Napi::Number::New(env, e.err));
    o.Set("records", num(env, e.records));
  }
  void operator()(const RotateEvent& e) {
    o.Set("type", "rotate");
    o.Set("closed", e.closed);
    o.Set("next", e.next);
  }
  void operator()(const SegmentClosedEvent& e) {
    o.Set("type", "segmentClosed");
    o.Set("path", e.path);
    o.Set("firstSeq", num(env, e.first_seq));
    o.Set("lastSeq", num(env, e.last_seq));
    o.Set("bytes", num(env, e.bytes));
  }
  void operator()(const SegmentDeletedEvent& e) {
    o.Set("type", "segmentDeleted");
    o.Set("path", e.path);
    o.Set("firstSeq", num(env, e.first_seq));
    o.Set("bytes", num(env, e.bytes));
    o.Set("reason", e.reason);
  }
  void operator()(const JetStreamReadyEvent& e) {
    o.Set("type", "jetstreamReady");
    o.Set("stream", e.stream);
  }
  void operator()(const HookDropEvent& e) {
    o.Set("type", "hookDrop");
    o.Set("messages", num(env, e.messages));
  }
  void operator()(const ConnectionEvent& e) {
    o.Set("type", "connection");
    o.Set("id", num(env, e.id));
    o.Set("remoteAddress", e.remote_address);
    o.Set("serviceThread", Napi::Number::New(env, e.service_thread));
  }
  void operator()(const DisconnectEvent& e) {
    o.Set("type", "disconnect");
    o.Set("id", num(env, e.id));
    o.Set("reason", e.reason);
    o.Set("messagesReceived", num(env, e.messages_received));
    o.Set("unacked", num(env, e.unacked));
  }
};

// One typed array of n elements, filled from the batch's messages.
template <typename Elem, typename Field>
Napi::Value column(Napi::Env env, napi_typedarray_type type, const std::vector<HookMessage>& msgs, Field field) {
  size_t n = msgs.size();
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, n * sizeof(Elem));
  Elem* p = static_cast<Elem*>(buf.Data());
  for (size_t i = 0; i < n; i++) p[i] = static_cast<Elem>(field(msgs[i]));
  napi_value arr;
  napi_create_typedarray(env, type, n, buf, 0, &arr);
  return Napi::Value(env, arr);
}

}  // namespace

Napi::Object event_to_js(Napi::Env env, const Event& ev) {
  ToJs v{env, Napi::Object::New(env)};
  std::visit(v, ev);
  return v.o;
}

void hook_batch_to_js(Napi::Env env, HookBatch* b, Napi::Value* data, Napi::Value* meta) {
  const std::vector<HookMessage>& m = b->msgs;
  Napi::Object o = Napi::Object::New(env);
  o.Set("seq", column<uint64_t>(env, napi_biguint64_array, m, [](const HookMessage& h) { return h.seq; }));
  o.Set("timeUs", column<uint64_t>(env, napi_biguint64_array, m, [](const HookMessage& h) { return h.time_us; }));
  o.Set("msgId", column<uint64_t>(env, napi_biguint64_array, m, [](const HookMessage& h) { return h.msg_id; }));
  o.Set("clientId", column<uint32_t>(env, napi_uint32_array, m, [](const HookMessage& h) { return h.client_id; }));
  o.Set("nameLen", column<uint32_t>(env, napi_uint32_array, m, [](const HookMessage& h) { return h.name_len; }));
  o.Set("offset", column<uint32_t>(env, napi_uint32_array, m, [](const HookMessage& h) { return h.offset; }));
  o.Set("payloadLen", column<uint32_t>(env, napi_uint32_array, m, [](const HookMessage& h) { return h.payload_len; }));
  *meta = o;
  if (b->data.empty()) {  // every name and payload empty: Node would detach a 0-byte external buffer
    *data = Napi::Buffer<uint8_t>::New(env, 0);
    delete b;
    return;
  }
  // The bytes become one external Buffer (no copy) that owns the batch.
  *data = Napi::Buffer<uint8_t>::New(env, b->data.data(), b->data.size(),
                                     [](Napi::Env, uint8_t*, HookBatch* owner) { delete owner; }, b);
}

}  // namespace msgs::binding
