// How a message becomes bytes, with no allocation and no copy of a whole
// frame per message.
//
// Every send slot (conn.h) holds a complete frame from the start, built by
// the codec's encoders (native/codec.h): a v1 MSG or a legacy struct, id 0.
// Sending message q patches it into slot q % window: with a fixed payload
// size only its id (v1: the 14-byte header and the name again; legacy: 4
// bytes); with a payload range also a fresh size and payload bytes.
//
// Payload bytes are cut from a pool of random bytes (v1) or printable text
// (legacy) at a random offset, so frames differ without being filled byte by
// byte for each message.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "codec.h"
#include "conn.h"
#include "loadgen.h"

namespace loadgen {

namespace wire = msgs::wire;
namespace legacy = msgs::legacy;

constexpr uint32_t kLegacyFrame = uint32_t(legacy::kFrameSize);
constexpr uint32_t kLegacyTextMax = uint32_t(legacy::kBufferSize - 1);  // NUL-terminated text
constexpr uint32_t kLegacyNameMax = uint32_t(legacy::kNameSize - 1);    // NUL-terminated name
constexpr uint32_t kV1NameMax = 255;                                    // u8 name_len
constexpr uint32_t kV1Header = uint32_t(wire::kLengthSize + wire::kMsgHeaderSize);  // before the name
constexpr uint32_t kMaxPayload = 64u * 1024 * 1024;  // the bench's own limit (v1)
// The pool is this much longer than the largest payload: the spread of offsets.
constexpr uint32_t kPoolExtra = 4096;
// AUTH frame (docs/protocol.md): u32 length | u8 type 0x02 | u8 mechanism (1 = token) | token.
constexpr uint32_t kAuthHead = 6;
constexpr uint8_t kTypeAuth = 0x02;
constexpr uint8_t kAuthToken = 1;
constexpr uint32_t kMaxToken = 1024;
constexpr uint8_t kHelloFlagAuth = 0x01;  // HELLO flags bit 0: an AUTH frame follows

// What every frame of a run looks like.
struct FrameShape {
  explicit FrameShape(const LoadConfig& cfg);

  bool v1;
  bool fixed;       // one payload size: a message changes only its id
  bool uniform;     // every frame is `stride` bytes (fixed size, or legacy): a ring is one run of frames
  uint32_t window;  // slots per connection
  uint32_t stride;  // bytes per slot: the largest frame
  uint32_t payload_min, payload_max;
  const uint8_t* name;
  uint32_t name_len;
  uint32_t client_id_base;
  // v1 with a token: the AUTH frame after HELLO, its head (length, type,
  // mechanism) here and the token in the config. preamble: HELLO + AUTH bytes.
  uint8_t auth_head[kAuthHead];
  const uint8_t* token;
  uint32_t token_len;
  uint32_t preamble;

  uint32_t slot_of(uint64_t q) const { return uint32_t(q % window); }
  uint32_t client_id(const Conn& c) const { return client_id_base + c.index; }
  uint32_t payload_len(const Conn& c, uint32_t s) const { return fixed ? payload_min : c.ring.payload_len[s]; }
};

// Builds and patches the frames of one worker's connections. Not thread-safe:
// one per worker (its random stream is the worker's own).
class FrameBuilder {
 public:
  FrameBuilder(const LoadConfig& cfg, uint32_t worker_id);
  const FrameShape& shape() const { return shape_; }

  // Fills slot s of c with a complete frame, id 0 for now.
  void build(Conn& c, uint32_t s);

  // Messages [from, to) go into their slots (message q has id q + 1). `now`
  // is their send time: the clock read of the round that carries them.
  void prepare(Conn& c, uint64_t from, uint64_t to, int64_t now) {
    // Copies, because the encoders are calls the compiler cannot see into:
    // it would reload every field of shape_ and c.ring after each of them.
    const FrameShape fs = shape_;
    const SendRing ring = c.ring;
    if (fs.fixed) {  // one payload size: only the id changes
      for (uint64_t q = from; q < to; q++) {
        uint32_t s = fs.slot_of(q);
        set_id(fs, ring.frames + size_t(s) * fs.stride, q + 1);
        ring.sent_ns[s] = now;
      }
      return;
    }
    const uint32_t client_id = fs.client_id(c);
    for (uint64_t q = from; q < to; q++) {
      uint32_t s = fs.slot_of(q);
      uint32_t L = pick_payload();  // before the offset: the order of draws is the seed's stream
      const uint8_t* src = pool_.data() + next_rand() % kPoolExtra;
      write_frame(fs, ring, client_id, s, ring.frames + size_t(s) * fs.stride, q + 1, L, src);
      ring.sent_ns[s] = now;
    }
  }

 private:
  // The id alone; the payload stays. v1: the header again (it holds the id).
  static void set_id(const FrameShape& fs, uint8_t* p, uint64_t id) {
    if (fs.v1) {
      wire::encode_msg_header(p, id, fs.name, uint8_t(fs.name_len), fs.payload_min);
    } else {
      legacy::set_msg_id(p, uint32_t(id));
    }
  }
  // A whole frame of L payload bytes from src into slot s at p, and (payload range) its lengths.
  static void write_frame(const FrameShape& fs, const SendRing& ring, uint32_t client_id, uint32_t s, uint8_t* p,
                          uint64_t id, uint32_t L, const uint8_t* src) {
    if (fs.v1) {
      size_t h = wire::encode_msg_header(p, id, fs.name, uint8_t(fs.name_len), L);
      memcpy(p + h, src, L);
      if (!fs.fixed) ring.frame_len[s] = uint32_t(h) + L;
    } else {
      legacy::encode_frame(p, client_id, uint32_t(id), fs.name, fs.name_len, src, L);
    }
    if (!fs.fixed) ring.payload_len[s] = L;
  }
  uint32_t pick_payload() {
    return shape_.payload_min +
           uint32_t(next_rand() % (uint64_t(shape_.payload_max - shape_.payload_min) + 1));
  }
  // xorshift64 (Marsaglia's 13/7/17 triple): fast, and enough to vary sizes and offsets.
  uint64_t next_rand() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return rng_;
  }

  FrameShape shape_;
  uint64_t rng_;
  std::vector<uint8_t> pool_;
};

}  // namespace loadgen
