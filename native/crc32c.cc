// CRC32C (Castagnoli). Two implementations with one contract:
//  - hardware: the SSE4.2 crc32 instruction, 8 bytes per step;
//  - portable: slicing-by-8 tables, for CPUs (or builds) without SSE4.2.
// Which one crc32c() uses is decided once, on first call, from CPUID.
#include "crc32c.h"

#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define MSGS_CRC32C_X86 1
#endif

namespace msgs {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

// Eight 256-entry tables. t[0] is the classic byte-at-a-time table; t[k][b]
// is the CRC of byte b followed by k zero bytes, which lets the loop fold 8
// input bytes with 8 independent lookups instead of 8 dependent ones.
struct Tables {
  uint32_t t[8][256];
};

constexpr Tables make_tables() {
  Tables tb{};
  for (uint32_t b = 0; b < 256; b++) {
    uint32_t c = b;
    for (int i = 0; i < 8; i++) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    tb.t[0][b] = c;
  }
  for (int k = 1; k < 8; k++)
    for (uint32_t b = 0; b < 256; b++) {
      uint32_t prev = tb.t[k - 1][b];
      tb.t[k][b] = (prev >> 8) ^ tb.t[0][prev & 0xff];
    }
  return tb;
}

// Built at compile time: no init-order or thread-safety questions.
constexpr Tables kTables = make_tables();

// Works on the raw (non-inverted) register value so that both paths share the
// ~crc in / ~crc out convention in one place (the public wrappers).
uint32_t portable_raw(uint32_t c, const uint8_t* p, size_t n) {
  const auto& t = kTables.t;
  while (n >= 8) {
    // Bytes are read one by one, so the result does not depend on the host
    // byte order or on the alignment of p.
    uint32_t lo = c ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 |
                       uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
    c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^
        t[4][lo >> 24] ^ t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff];
  return c;
}

#ifdef MSGS_CRC32C_X86
// The target attribute lets this one function use SSE4.2 while the rest of
// the build stays generic; it is only called after the CPUID check.
__attribute__((target("sse4.2")))
uint32_t hardware_raw(uint32_t c, const uint8_t* p, size_t n) {
  // Byte steps until p is 8-aligned, so the 8-byte loads below are aligned
  // (memcpy keeps them legal C++ either way).
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = _mm_crc32_u8(c, *p++);
    n--;
  }
#if defined(__x86_64__)
  uint64_t c64 = c;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c64 = _mm_crc32_u64(c64, w);
    p += 8;
    n -= 8;
  }
  c = static_cast<uint32_t>(c64);
#endif
  while (n >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    c = _mm_crc32_u32(c, w);
    p += 4;
    n -= 4;
  }
  while (n--) c = _mm_crc32_u8(c, *p++);
  return c;
}
#endif

using RawFn = uint32_t (*)(uint32_t, const uint8_t*, size_t);

// Chosen once; a function-local static is initialised thread-safely.
RawFn pick() {
#ifdef MSGS_CRC32C_X86
  if (__builtin_cpu_supports("sse4.2")) return hardware_raw;
#endif
  return portable_raw;
}

RawFn impl() {
  static const RawFn fn = pick();
  return fn;
}

}  // namespace

uint32_t crc32c(uint32_t crc, const void* data, size_t n) {
  return ~impl()(~crc, static_cast<const uint8_t*>(data), n);
}

uint32_t crc32c_portable(uint32_t crc, const void* data, size_t n) {
  return ~portable_raw(~crc, static_cast<const uint8_t*>(data), n);
}

bool crc32c_hardware() { return impl() != portable_raw; }

}  // namespace msgs
