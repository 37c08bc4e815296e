// Shared helpers for the libFuzzer harnesses in fuzz/ (see scripts/fuzz.js).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

// An invariant that must hold for every input. On violation: say which, then
// trap, so libFuzzer saves the input as a crash artifact.
#define FUZZ_CHECK(cond)                                                          \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, \
                   __LINE__);                                                     \
      __builtin_trap();                                                           \
    }                                                                             \
  } while (0)

namespace fuzz {

// Reads fields off the front of the input; past the end it yields zeros, so
// every input (even empty) is a valid program.
struct Reader {
  const uint8_t* p;
  size_t n;
  size_t pos = 0;
  Reader(const uint8_t* data, size_t size) : p(data), n(size) {}
  uint8_t u8() { return pos < n ? p[pos++] : 0; }
  uint16_t u16() { return uint16_t(u8() << 8 | u8()); }
  uint32_t u32() { uint32_t v = u16(); return v << 16 | u16(); }
  uint64_t u64() { uint64_t v = u32(); return v << 32 | u32(); }
  size_t left() const { return n - pos; }
  const uint8_t* rest() const { return p + pos; }
  // Copies up to len bytes into out and zero-fills the remainder.
  void bytes(uint8_t* out, size_t len) {
    size_t k = len < left() ? len : left();
    if (k) std::memcpy(out, p + pos, k);
    if (len > k) std::memset(out + k, 0, len - k);
    pos += k;
  }
};

// A heap copy of exactly n bytes (ASan then flags any read past the end;
// n == 0 still gets a distinct allocation).
struct Exact {
  std::unique_ptr<uint8_t[]> buf;
  size_t n;
  Exact(const uint8_t* p, size_t len) : buf(new uint8_t[len ? len : 1]), n(len) {
    if (len) std::memcpy(buf.get(), p, len);
  }
  explicit Exact(size_t len) : buf(new uint8_t[len ? len : 1]()), n(len) {}
  uint8_t* data() { return buf.get(); }
};

inline uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
inline uint64_t be64(const uint8_t* p) { return uint64_t(be32(p)) << 32 | be32(p + 4); }
inline uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
inline uint64_t le64(const uint8_t* p) { return uint64_t(le32(p)) | uint64_t(le32(p + 4)) << 32; }

inline bool within(const uint8_t* q, const uint8_t* base, size_t n) {
  return q >= base && q <= base + n;
}

}  // namespace fuzz
