// The receive side of a worker: reads what the server sends, parses it with
// the server's own codec (native/codec.h), matches every ACK to the messages
// it covers and records their latency.
//
// v1: HELLO_OK first, then ACK frames (one may cover many messages: its
// count must not pass the messages in flight, and its last_msg_id must be
// the id of the last one it covers) or an ERR frame, after which the server
// closes. A frame split between reads waits in the connection's carry.
// Legacy: the 3 bytes "ack" per message, possibly split between reads.
//
// A message's latency is from the clock read of the round that sent it
// (send.h) to the clock read right after the read that brought its ACK.
// Anything unexpected is a Fault: the worker ends the connection with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "conn.h"
#include "frames.h"
#include "stats.h"

namespace loadgen {

constexpr uint32_t kReadBuf = 256 * 1024;  // bytes per read(), after the carry

// Why a connection must end: what it counts as and the error sample's text.
struct Fault {
  ErrorKind kind = ErrorKind::kAckMismatch;
  std::string why;
};

class Receiver {
 public:
  enum class Result {
    kShort,        // read less than the buffer: the socket is likely drained
    kFull,         // filled the buffer (or TLS holds more): there may be more
    kDrained,      // nothing to read (EAGAIN)
    kInterrupted,  // EINTR
    kFault,        // the connection must end: fault() says why
  };

  Receiver(const FrameShape& shape, WorkerStats& stats, ErrorSamples& samples);

  // One read() and everything in it. *now: when it returned (set unless kDrained or kInterrupted).
  Result read_once(Conn& c, int64_t* now);
  const Fault& fault() const { return fault_; }

 private:
  const FrameShape& shape_;
  WorkerStats& stats_;
  ErrorSamples& samples_;
  std::unique_ptr<uint8_t[]> buf_;  // the carry, then one read
  Fault fault_;                     // the last one
};

}  // namespace loadgen
