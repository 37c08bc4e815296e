// lib's ResolvedConfig -> msgs::Config. One generic reader per type; the
// fields come from the lists in config.h, so there is no per-option code.
#include <cmath>
#include <cstring>
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

void read(const Napi::Object& o, const std::string& f, const Napi::Value& v, ClientAuth* out) {
  static const char* const names[] = {"none", "request", "require"};
  read_enum(o, f, v, out, names);
}
void read(const Napi::Object& o, const std::string& f, const Napi::Value& v, TlsVersion* out) {
  static const char* const names[] = {"TLSv1.2", "TLSv1.3"};
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

// null: plaintext.
void read(const Napi::Object& root, const std::string& path, const Napi::Value& v, TlsConfig* out) {
  out->enabled = !v.IsNull() && !v.IsUndefined();
  if (!out->enabled) return;
  Napi::Object s = section(root, path, v);
  const std::string at = path + ".";
  MSGS_TLS_FIELDS(MSGS_READ_FIELD)
}

// null: no authentication.
void read(const Napi::Object& root, const std::string& path, const Napi::Value& v, AuthConfig* out) {
  out->enabled = !v.IsNull() && !v.IsUndefined();
  if (!out->enabled) return;
  Napi::Object s = section(root, path, v);
  const std::string at = path + ".";
  MSGS_AUTH_FIELDS(MSGS_READ_FIELD)
  out->certificate_map = s.Get("principals").IsObject();
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

std::vector<Principal> principals_from_js(const Napi::Value& v) {
  std::vector<Principal> out;
  if (!v.IsArray()) return out;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Object o = a.Get(i).As<Napi::Object>();
    Principal p;
    p.name = o.Get("name").As<Napi::String>().Utf8Value();
    p.token = o.Get("token").ToBoolean().Value();
    Napi::Value h = o.Get("sha256");
    if (p.token) {
      if (!h.IsBuffer() || h.As<Napi::Buffer<uint8_t>>().Length() != p.sha256.size()) {
        throw Napi::TypeError::New(v.Env(), "msgserver: principal sha256 must be a 32-byte Buffer");
      }
      memcpy(p.sha256.data(), h.As<Napi::Buffer<uint8_t>>().Data(), p.sha256.size());
    }
    Napi::Array ids = o.Get("clientIds").As<Napi::Array>();
    for (uint32_t k = 0; k + 1 < ids.Length(); k += 2) {
      p.client_ids.emplace_back(ids.Get(k).As<Napi::Number>().Uint32Value(), ids.Get(k + 1).As<Napi::Number>().Uint32Value());
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace msgs::binding
