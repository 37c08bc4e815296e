// One connection of the load: where it is in its life, how far its messages
// have got, and where its frames are.
//
// Its life (worker.cc drives it):
//
//   kIdle --its ramp time--> kConnecting --connect done--> kRunning --all ACKed--> kDone
//                                 \__________________________\__ any error --> kFailed
//   kIdle --a duration run ended before its ramp time--> kSkipped
//
// v1 sends HELLO (and, with a token, the AUTH frame: the "preamble") in the
// same writev as the first messages (the server reads them in order, so
// waiting for HELLO_OK would only cost a round trip); the receive side wants
// HELLO_OK before any ACK. Legacy has no handshake. Over TLS, kConnecting
// lasts until the TLS handshake is done (`ssl` set once TCP is connected).
//
// Message q (0-based; its id is q + 1) is sent from slot q % window. The
// counters only grow, and acked <= written <= queued <= acked + window.
#pragma once

#include <cstdint>

#include "codec.h"

struct ssl_st;

namespace loadgen {

constexpr uint32_t kHelloLen = uint32_t(msgs::wire::kHelloSize);
// The unparsed tail of a read, kept for the next: always less than one server frame.
constexpr uint32_t kCarry = 512;
static_assert(kCarry >= msgs::wire::kMaxErrFrameSize && kCarry >= msgs::wire::kAckFrameSize &&
                  kCarry >= msgs::wire::kHelloSize,
              "the carry buffer holds any incomplete server frame");

enum class State : uint8_t { kIdle, kConnecting, kRunning, kDone, kFailed, kSkipped };

// A connection's window of send slots, in its worker's slot memory (send.h).
struct SendRing {
  uint8_t* frames = nullptr;        // window slots of `stride` bytes
  int64_t* sent_ns = nullptr;       // per slot: when its message went out
  uint32_t* frame_len = nullptr;    // per slot: frame length (payload range only)
  uint32_t* payload_len = nullptr;  // per slot: payload length (payload range only)
};

struct Conn {
  int fd = -1;
  ssl_st* ssl = nullptr;      // TLS session (tls.h); nullptr: plaintext
  State state = State::kIdle;
  bool want_out = false;      // registered for EPOLLOUT (poller.h)
  bool hello_ok = false;      // v1: HELLO_OK received (legacy: always true)
  uint8_t legacy_pos = 0;     // legacy: bytes of the current "ack" seen
  uint16_t carry_len = 0;
  uint32_t hello_off = 0;     // bytes of the preamble written (FrameShape::preamble = all; legacy: always kHelloLen)
  uint32_t partial = 0;       // bytes of message `written` already written
  uint32_t index = 0;         // global connection number
  uint64_t queued = 0;        // messages prepared in slots (ids 1..queued)
  uint64_t written = 0;       // messages fully written
  uint64_t acked = 0;         // messages acknowledged (any status)
  uint64_t target = 0;        // messages this connection sends (UINT64_MAX: until the deadline)
  int64_t last_progress = 0;  // connect start, connect done or last ACK: the stall timeout counts from it
  SendRing ring;
  uint8_t hello[kHelloLen];
  uint8_t carry[kCarry];

  uint64_t in_flight() const { return written - acked; }
  bool live() const { return state == State::kRunning || state == State::kConnecting; }
};

}  // namespace loadgen
