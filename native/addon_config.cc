// lib's ResolvedConfig -> msgs::Config. One generic reader per type; the
// fields come from the lists in config.h, so there is no per-option code.
#include <cmath>
#include <string>

#include "addon.h"

namespace msgs::binding {

namespace {

[[noreturn]] void bad(const Napi::Object& o, const std::string& field, const char* want) {
  throw Napi::TypeError::New(o.Env(), "msgserver: native config field " + field + " must be " + want +
                                          " (resolveConfig() output expected)");
}

void read(const Napi::Object& o, const std::string& field, const Napi::Value& v, std::string* out) {
  if (!v.IsString()) bad(o, field, "a string");
  *out = v.As<Napi::String>().Utf8Value();
}

void read(const Napi::Object& o, const std::string& field, const Napi::Value& v, bool* out) {
  if (!v.IsBoolean()) bad(o, field, "a boolean");
  *out = v.As<Napi::Boolean>().Value();
}

template <typename T>
void read_uint(const Napi::Object& o, const std::string& field, const Napi::Value& v, T* out, double max) {
  if (!v.IsNumber()) bad(o, field, "a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > max || std::floor(d) != d) bad(o, field, "a non-negative integer in range");
  *out = static_cast<T>(d);
}

void read(const Napi::Object& o, const std::string& f, const Napi::Value& v, uint16_t* out) { read_uint(o, f, v, out, 65535); }
void read(const Napi::Object& o, const std::string& f, const Napi::Value& v, uint32_t* out) { read_uint(o, f, v, out, 4294967295.0); }
void read(const Napi::Object& o, const std::string& f, const Napi::Value& v, uint64_t* out) { read_uint(o, f, v, out, 9007199254740991.0); }

void read(const Napi::Object& o, const std::string& field, const Napi::Value& v, std::vector<std::string>* out) {
  if (!v.IsArray()) bad(o, field, "an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  out->clear();
  for (uint32_t i = 0; i < a.Length(); i++) {
    out->emplace_back();
    read(o, field + "[" + std::to_string(i) + "]", a.Get(i), &out->back());
  }
}

// Enums: the JS string names, in the enum's order.
template <typename E, size_t N>
void read_enum(const Napi::Object& o, const std::string& field, const Napi::Value& v, E* out, const char* const (&names)[N]) {
  std::string s;
  read(o, field, v, &s);
  for (size_t i = 0; i < N; i++) {
    if (s == names[i]) {
      *out = static_cast<E>(i);
      return;
    }
  }
  bad(o, field, "a known enum value");
}

void read(const Napi::Object& o, const std::string& f, const Napi::Value& v, AckMode* out) {
  static const char* const names[] = {"received", "written", "durable", "replicated"};
  read_enum(o, f, v, out, names);
}
void read(const Napi::Object& o, const std::string& f, const Napi::Value& v, FsyncPolicy* out) {
  static const char* const names[] = {"never", "interval", "batch"};
  read_enum(o, f, v, out, names);
}
void read(const Napi::Object& o, const std::string& f, const Napi::Value& v, Protocol* out) {
  static const char* const names[] = {"v1", "legacy"};
  read_enum(o, f, v, out, names);
}
void read(const Napi::Object& o, const std::string& f, const Napi::Value& v, WhileNotReady* out) {
  static const char* const names[] = {"hold", "refuse"};
  read_enum(o, f, v, out, names);
}
void read(const Napi::Object& o, const std::string& f, const Napi::Value& v, FileFormat* out) {
  static const char* const names[] = {"binary", "text"};
  read_enum(o, f, v, out, names);
}

Napi::Object section(const Napi::Object& o, const std::string& field, const Napi::Value& v) {
  if (!v.IsObject()) bad(o, field, "an object");
  return v.As<Napi::Object>();
}

// Reads field `js` of section object `s` (whose path is `at`) into out->member.
#define MSGS_READ_FIELD(type, member, js) read(root, at + js, s.Get(js), &out->member);

void read(const Napi::Object& root, const std::string& path, const Napi::Value& v, RetentionConfig* out) {
  Napi::Object s = section(root, path, v);
  const std::string at = path + ".";
  MSGS_RETENTION_FIELDS(MSGS_READ_FIELD)
}

void read(const Napi::Object& root, const std::string& path, const Napi::Value& v, FileConfig* out) {
  Napi::Object s = section(root, path, v);
  const std::string at = path + ".";
  MSGS_FILE_FIELDS(MSGS_READ_FIELD)
}

void read(const Napi::Object& root, const std::string& path, const Napi::Value& v, BatchConfig* out) {
  Napi::Object s = section(root, path, v);
  const std::string at = path + ".";
  MSGS_BATCH_FIELDS(MSGS_READ_FIELD)
}

void read(const Napi::Object& root, const std::string& path, const Napi::Value& v, LimitsConfig* out) {
  Napi::Object s = section(root, path, v);
  const std::string at = path + ".";
  MSGS_LIMITS_FIELDS(MSGS_READ_FIELD)
}

void read(const Napi::Object& root, const std::string& path, const Napi::Value& v, NatsTlsConfig* out) {
  Napi::Object s = section(root, path, v);
  const std::string at = path + ".";
  MSGS_NATS_TLS_FIELDS(MSGS_READ_FIELD)
}

void read(const Napi::Object& root, const std::string& path, const Napi::Value& v, NatsNkeyConfig* out) {
  Napi::Object s = section(root, path, v);
  const std::string at = path + ".";
  MSGS_NATS_NKEY_FIELDS(MSGS_READ_FIELD)
}

// null: no JetStream sink.
void read(const Napi::Object& root, const std::string& path, const Napi::Value& v, JetStreamConfig* out) {
  out->enabled = !v.IsNull() && !v.IsUndefined();
  if (!out->enabled) return;
  Napi::Object s = section(root, path, v);
  const std::string at = path + ".";
  MSGS_JETSTREAM_FIELDS(MSGS_READ_FIELD)
}

}  // namespace

Config config_from_js(const Napi::Object& root) {
  Config c{};
  const Napi::Object& s = root;
  const std::string at;
  Config* out = &c;
  MSGS_CONFIG_FIELDS(MSGS_READ_FIELD)
  return c;
}

}  // namespace msgs::binding
