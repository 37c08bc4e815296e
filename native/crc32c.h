// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as used by the on-disk
// record format. Uses the SSE4.2 crc32 instruction when the CPU has it, and a
// slicing-by-8 table otherwise; both give identical results.
#pragma once
#include <cstddef>
#include <cstdint>

namespace msgs {

// Extends `crc` (a finished CRC32C value, 0 for "nothing yet") over `n` bytes.
// crc32c(0, "123456789", 9) == 0xE3069283.
uint32_t crc32c(uint32_t crc, const void* data, size_t n);

// Same contract, always the portable path (tests compare both).
uint32_t crc32c_portable(uint32_t crc, const void* data, size_t n);

// True when crc32c() uses the hardware instruction on this CPU.
bool crc32c_hardware();

}  // namespace msgs
