// The send side of a worker: keeps each connection's window full and writes
// it with one sendmsg (a writev) per connection per round.
//
// A round (Sender::round): first fill the window, preparing every message it
// has room for with one clock read for all of them (their latency starts
// there); then gather what is unwritten (the rest of HELLO, then the frames
// from the first unwritten byte on) into one iovec array and write it. A
// short write leaves the rest for EPOLLOUT. A message counts as sent when its
// last byte is written. Over TLS the same bytes go through one SSL_write
// (tls.h) instead of the sendmsg.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>

#include "conn.h"
#include "frames.h"
#include "stats.h"

namespace loadgen {

constexpr int kMaxIov = 64;  // iovecs per sendmsg; more frames go in the next call of the round
// TLS: a round's bytes are copied into one buffer of this size per SSL_write (tls.h).
constexpr size_t kTlsStage = 256 * 1024;

// One worker's send slots, one block per kind for all its connections.
class SlotMemory {
 public:
  SlotMemory(const FrameShape& shape, uint32_t conns);
  SendRing ring(uint32_t k) const;  // connection k's part

 private:
  uint32_t window_, stride_;
  std::unique_ptr<uint8_t[]> frames_;
  std::unique_ptr<int64_t[]> sent_ns_;
  std::unique_ptr<uint32_t[]> frame_len_, payload_len_;  // payload range only
};

class Sender {
 public:
  enum class Result { kDone, kBlocked, kFailed };

  Sender(const LoadConfig& cfg, uint32_t worker_id, uint32_t conns, WorkerStats& stats);
  const FrameShape& shape() const { return frames_.shape(); }

  // Gives the worker's connection k (c.index set) its slots, its HELLO and its first frames.
  void attach(Conn& c, uint32_t k);
  // One round. stop_sending: a duration run's deadline has passed, so no new
  // messages, but what is prepared still goes out. kBlocked: the socket is
  // full; kFailed: *err is the errno.
  Result round(Conn& c, bool stop_sending, int* err);

 private:
  FrameBuilder frames_;
  SlotMemory slots_;
  WorkerStats& stats_;
  std::unique_ptr<uint8_t[]> stage_;  // TLS runs only: the round's bytes for SSL_write
};

}  // namespace loadgen
