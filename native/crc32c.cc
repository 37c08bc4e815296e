// CRC32C (Castagnoli). Two implementations with one contract:
//  - hardware: the SSE4.2 crc32 instruction, 8 bytes per step, three
//    streams at once on long inputs;
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

// The CRC register after n zero bytes, bit by bit: the definition the
// tables below are built from.
constexpr uint32_t feed_zero_bytes(uint32_t c, size_t n) {
  for (size_t i = 0; i < n * 8; i++) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
  return c;
}

constexpr Tables make_tables() {
  Tables tb{};
  for (uint32_t b = 0; b < 256; b++) tb.t[0][b] = feed_zero_bytes(b, 1);
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
// The hardware path runs three crc32 streams side by side on inputs long
// enough: the instruction has a latency of three cycles and a throughput of
// one, so one dependent chain leaves two thirds of it idle. Each round takes
// three consecutive blocks of kBlock bytes, one per stream, and folds them
// back into one register (Mark Adler's method, crc32c.c on Stack Overflow):
// the CRC register is linear, so the register after block A then block B is
// "A's register followed by kBlock zero bytes" XOR "B's register from 0".
constexpr size_t kBlock = 256;

// The register after feeding kBlock zero bytes, for each input register:
// linear, so four byte-indexed tables of it cover every 32-bit register.
struct ZeroTables {
  uint32_t t[4][256];
};

constexpr ZeroTables make_zero_tables() {
  uint32_t basis[32] = {};
  for (int i = 0; i < 32; i++) basis[i] = feed_zero_bytes(uint32_t{1} << i, kBlock);
  ZeroTables z{};
  for (int k = 0; k < 4; k++)
    for (uint32_t b = 0; b < 256; b++) {
      uint32_t v = 0;
      for (int i = 0; i < 8; i++)
        if (b & (1u << i)) v ^= basis[8 * k + i];
      z.t[k][b] = v;
    }
  return z;
}

constexpr ZeroTables kZeros = make_zero_tables();

uint32_t shift_block(uint32_t c) {
  return kZeros.t[0][c & 0xff] ^ kZeros.t[1][(c >> 8) & 0xff] ^ kZeros.t[2][(c >> 16) & 0xff] ^
         kZeros.t[3][c >> 24];
}

// The target attribute lets this one function use SSE4.2 while the rest of
// the build stays generic; it is only called after the CPUID check. Loads
// are unaligned (memcpy keeps them legal C++): on the CPUs that have the
// instruction they cost the same as aligned ones, and short records skip a
// byte-by-byte lead-in.
__attribute__((target("sse4.2")))
uint32_t hardware_raw(uint32_t c, const uint8_t* p, size_t n) {
#if defined(__x86_64__)
  uint64_t c0 = c;
  while (n >= 3 * kBlock) {
    uint64_t c1 = 0, c2 = 0;
    for (size_t i = 0; i < kBlock; i += 8) {
      uint64_t w0, w1, w2;
      std::memcpy(&w0, p + i, 8);
      std::memcpy(&w1, p + kBlock + i, 8);
      std::memcpy(&w2, p + 2 * kBlock + i, 8);
      c0 = _mm_crc32_u64(c0, w0);
      c1 = _mm_crc32_u64(c1, w1);
      c2 = _mm_crc32_u64(c2, w2);
    }
    c0 = shift_block(static_cast<uint32_t>(c0)) ^ c1;
    c0 = shift_block(static_cast<uint32_t>(c0)) ^ c2;
    p += 3 * kBlock;
    n -= 3 * kBlock;
  }
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c0 = _mm_crc32_u64(c0, w);
    p += 8;
    n -= 8;
  }
  c = static_cast<uint32_t>(c0);
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
