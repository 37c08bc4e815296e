// CRC32C: known vectors, hardware == portable, and the extension property
// the record format relies on.
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "crc32c.h"

using msgs::crc32c;
using msgs::crc32c_portable;

// Reference: one bit at a time, straight from the definition.
static uint32_t crc_bitwise(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

static void test_known_vectors() {
  CHECK_EQ(crc32c(0, "123456789", 9), 0xE3069283u);
  CHECK_EQ(crc32c_portable(0, "123456789", 9), 0xE3069283u);
  CHECK_EQ(crc32c(0, "", 0), 0u);
  CHECK_EQ(crc32c_portable(0, nullptr, 0), 0u);

  // RFC 3720 (iSCSI) B.4 test patterns.
  uint8_t buf[32];
  std::memset(buf, 0, 32);
  CHECK_EQ(crc32c(0, buf, 32), 0x8A9136AAu);
  CHECK_EQ(crc32c_portable(0, buf, 32), 0x8A9136AAu);
  std::memset(buf, 0xFF, 32);
  CHECK_EQ(crc32c(0, buf, 32), 0x62A8AB43u);
  CHECK_EQ(crc32c_portable(0, buf, 32), 0x62A8AB43u);
  for (int i = 0; i < 32; i++) buf[i] = uint8_t(i);
  CHECK_EQ(crc32c(0, buf, 32), 0x46DD794Eu);
  CHECK_EQ(crc32c_portable(0, buf, 32), 0x46DD794Eu);
  for (int i = 0; i < 32; i++) buf[i] = uint8_t(31 - i);
  CHECK_EQ(crc32c(0, buf, 32), 0x113FDB5Cu);
  CHECK_EQ(crc32c_portable(0, buf, 32), 0x113FDB5Cu);
}

// Every length 0..1700 at every alignment 0..7: both paths agree with the
// bit-by-bit reference (covers the head/body/tail split of each loop, and
// one and two rounds of the hardware path's three streams of 256 bytes).
static void test_paths_agree() {
  std::mt19937 rng(12345);
  std::vector<uint8_t> storage(1700 + 16);
  for (auto& b : storage) b = uint8_t(rng());
  int mismatches = 0;
  for (size_t align = 0; align < 8; align++)
    for (size_t len = 0; len <= 1700; len++) {
      const uint8_t* p = storage.data() + align;
      uint32_t ref = crc_bitwise(p, len);
      if (crc32c(0, p, len) != ref || crc32c_portable(0, p, len) != ref) mismatches++;
    }
  CHECK_EQ(mismatches, 0);
}

// crc32c(crc32c(0, a), b) == crc32c(0, a + b): the writer may checksum a
// record in pieces.
static void test_extension() {
  std::mt19937 rng(777);
  std::vector<uint8_t> data(1000);
  for (auto& b : data) b = uint8_t(rng());
  int mismatches = 0;
  for (size_t total : {0, 1, 7, 8, 9, 63, 64, 65, 300, 1000})
    for (size_t split = 0; split <= total; split += (total < 70 ? 1 : 37)) {
      uint32_t whole = crc32c(0, data.data(), total);
      uint32_t a = crc32c(0, data.data(), split);
      if (crc32c(a, data.data() + split, total - split) != whole) mismatches++;
      uint32_t pa = crc32c_portable(0, data.data(), split);
      if (crc32c_portable(pa, data.data() + split, total - split) != whole) mismatches++;
    }
  CHECK_EQ(mismatches, 0);
  // Mixed paths extend each other too.
  uint32_t a = crc32c_portable(0, "12345", 5);
  CHECK_EQ(crc32c(a, "6789", 4), 0xE3069283u);
}

static void test_large_buffer() {
  std::vector<uint8_t> big(1 << 20);
  for (size_t i = 0; i < big.size(); i++) big[i] = uint8_t(i * 2654435761u >> 13);
  CHECK_EQ(crc32c(0, big.data(), big.size()), crc32c_portable(0, big.data(), big.size()));
  CHECK_EQ(crc32c(0, big.data() + 3, big.size() - 5),
           crc32c_portable(0, big.data() + 3, big.size() - 5));
}

int main() {
  std::fprintf(stderr, "crc32c: %s path\n", msgs::crc32c_hardware() ? "hardware" : "portable");
  test_known_vectors();
  test_paths_agree();
  test_extension();
  test_large_buffer();
  return check_summary("test_crc32c");
}
