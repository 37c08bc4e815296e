// Frames: see frames.h.
#include "frames.h"

namespace loadgen {

// Spreads the workers' random streams apart: seeds 1, 2, ... would otherwise
// start xorshift at neighbouring states (the 64-bit golden ratio, as in splitmix64).
constexpr uint64_t kSeedMix = 0x9E3779B97F4A7C15ull;
constexpr uint32_t kLetters = 26;  // legacy payloads are text: 'a'..'z'
// The first frames' payload offsets in the pool: different per slot and per
// connection, without using the random stream.
constexpr uint32_t kSlotSpread = 61;
constexpr uint32_t kConnSpread = 7;

FrameShape::FrameShape(const LoadConfig& cfg)
    : v1(cfg.protocol == Protocol::kV1),
      fixed(cfg.payload_min == cfg.payload_max),
      uniform(fixed || !v1),
      window(cfg.window),
      stride(v1 ? kV1Header + uint32_t(cfg.name.size()) + cfg.payload_max : kLegacyFrame),
      payload_min(cfg.payload_min),
      payload_max(cfg.payload_max),
      name(reinterpret_cast<const uint8_t*>(cfg.name.data())),
      name_len(uint32_t(cfg.name.size())),
      client_id_base(cfg.client_id_base),
      auth_head{},
      token(reinterpret_cast<const uint8_t*>(cfg.token.data())),
      token_len(uint32_t(cfg.token.size())),
      preamble(kHelloLen + (cfg.token.empty() ? 0 : kAuthHead + uint32_t(cfg.token.size()))) {
  if (token_len == 0) return;
  uint32_t length = 2 + token_len;  // counted like every frame: the bytes after the u32
  auth_head[0] = uint8_t(length >> 24);
  auth_head[1] = uint8_t(length >> 16);
  auth_head[2] = uint8_t(length >> 8);
  auth_head[3] = uint8_t(length);
  auth_head[4] = kTypeAuth;
  auth_head[5] = kAuthToken;
}

FrameBuilder::FrameBuilder(const LoadConfig& cfg, uint32_t worker_id)
    : shape_(cfg), rng_(cfg.seed * kSeedMix + worker_id + 1) {
  pool_.resize(shape_.payload_max + kPoolExtra);
  for (auto& b : pool_) {
    uint64_t r = next_rand();
    b = shape_.v1 ? uint8_t(r) : uint8_t('a' + r % kLetters);
  }
}

void FrameBuilder::build(Conn& c, uint32_t s) {
  uint8_t* p = c.ring.frames + size_t(s) * shape_.stride;
  const uint8_t* src = pool_.data() + (size_t(s) * kSlotSpread + c.index * kConnSpread) % kPoolExtra;
  write_frame(shape_, c.ring, shape_.client_id(c), s, p, 0, shape_.payload_min, src);
}

}  // namespace loadgen
