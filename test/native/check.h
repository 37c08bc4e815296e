// Tiny test harness for the native unit tests. No framework on purpose: the
// tests must build anywhere the addon builds, with the same flags.
//
//   CHECK(cond); CHECK_EQ(a, b);      // count a pass, or print the failure
//   return check_summary("name");     // last line of main()
//
// stdout gets exactly one line, "name: N passed, N failed"; failures are
// described on stderr. The exit status is non-zero when anything failed.
//
// It also reads the golden vector files of test/vectors/ (see generate.py
// there): `kind key=value ... hex=...` lines.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace check {

inline int& passed() { static int n = 0; return n; }
inline int& failed() { static int n = 0; return n; }

// Context printed with failures (e.g. the vector line under test).
inline std::string& context() { static std::string s; return s; }

inline void fail(const char* file, int line, const std::string& what) {
  failed()++;
  std::fprintf(stderr, "FAIL %s:%d: %s", file, line, what.c_str());
  if (!context().empty()) std::fprintf(stderr, "  [%s]", context().c_str());
  std::fputc('\n', stderr);
}

// Printable form of a value; small integer types print as numbers, not chars.
template <class T>
std::string show(const T& v) {
  std::ostringstream os;
  if constexpr (std::is_enum_v<T>)
    os << static_cast<long long>(v);
  else if constexpr (std::is_integral_v<T> && sizeof(T) == 1)
    os << +v;
  else
    os << v;
  return os.str();
}

inline std::string show(const std::vector<uint8_t>& v) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (uint8_t b : v) { s += d[b >> 4]; s += d[b & 15]; }
  return s;
}

}  // namespace check

#define CHECK(cond)                                              \
  do {                                                           \
    if (cond) check::passed()++;                                 \
    else check::fail(__FILE__, __LINE__, "CHECK(" #cond ")");    \
  } while (0)

#define CHECK_EQ(a, b)                                                          \
  do {                                                                          \
    const auto& check_a_ = (a);                                                 \
    const auto& check_b_ = (b);                                                 \
    if (check_a_ == check_b_) check::passed()++;                                \
    else check::fail(__FILE__, __LINE__, "CHECK_EQ(" #a ", " #b "): " +         \
                     check::show(check_a_) + " != " + check::show(check_b_));   \
  } while (0)

inline int check_summary(const char* name) {
  std::printf("%s: %d passed, %d failed\n", name, check::passed(), check::failed());
  return check::failed() == 0 ? 0 : 1;
}

// ---- golden vectors ----

namespace check {

struct Vector {
  int line = 0;
  std::string kind;
  std::map<std::string, std::string> fields;

  bool has(const std::string& k) const { return fields.count(k) != 0; }
  const std::string& str(const std::string& k) const {
    auto it = fields.find(k);
    if (it == fields.end()) {
      std::fprintf(stderr, "vector line %d: missing field %s\n", line, k.c_str());
      std::exit(2);
    }
    return it->second;
  }
  uint64_t num(const std::string& k) const { return std::stoull(str(k)); }
  std::vector<uint8_t> bytes(const std::string& k) const;
};

inline std::vector<uint8_t> unhex(const std::string& s) {
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<uint8_t> out;
  if (s.size() % 2) { std::fprintf(stderr, "odd hex length\n"); std::exit(2); }
  for (size_t i = 0; i < s.size(); i += 2) {
    int hi = nib(s[i]), lo = nib(s[i + 1]);
    if (hi < 0 || lo < 0) { std::fprintf(stderr, "bad hex: %s\n", s.c_str()); std::exit(2); }
    out.push_back(uint8_t(hi << 4 | lo));
  }
  return out;
}

inline std::vector<uint8_t> Vector::bytes(const std::string& k) const { return unhex(str(k)); }

// Reads MSGS_VECTORS_DIR/<file>. A missing or empty file is a hard error, so
// a wrong path cannot turn the vector tests into silent passes.
inline std::vector<Vector> load_vectors(const char* file) {
#ifndef MSGS_VECTORS_DIR
#error "MSGS_VECTORS_DIR must name the test/vectors directory"
#endif
  std::string path = std::string(MSGS_VECTORS_DIR) + "/" + file;
  std::ifstream in(path);
  if (!in) { std::fprintf(stderr, "cannot open %s\n", path.c_str()); std::exit(2); }
  std::vector<Vector> out;
  std::string text;
  for (int line = 1; std::getline(in, text); line++) {
    if (text.empty() || text[0] == '#') continue;
    std::istringstream words(text);
    Vector v;
    v.line = line;
    words >> v.kind;
    for (std::string w; words >> w;) {
      size_t eq = w.find('=');
      if (eq == std::string::npos) { std::fprintf(stderr, "%s:%d: bad field %s\n", file, line, w.c_str()); std::exit(2); }
      v.fields[w.substr(0, eq)] = w.substr(eq + 1);
    }
    out.push_back(std::move(v));
  }
  if (out.empty()) { std::fprintf(stderr, "%s has no vectors\n", path.c_str()); std::exit(2); }
  return out;
}

}  // namespace check
