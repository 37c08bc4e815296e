// The receive side: see recv.h.
#include "recv.h"

#include <errno.h>
#include <unistd.h>

#include <cstring>

#include "clock.h"
#include "tls.h"

namespace loadgen {
namespace {

// What one read() brought for one connection, parsed. File-local, so the
// compiler folds the steps back into one function: they run on every read.
class Reply {
 public:
  Reply(const FrameShape& shape, WorkerStats& stats, ErrorSamples& samples, Fault& fault, Conn& c, int64_t now)
      : shape_(shape), stats_(stats), samples_(samples), fault_(fault), c_(c), now_(now) {}

  // v1: parses p[0, n) and keeps the incomplete frame at its end for the next read.
  bool v1(const uint8_t* p, size_t n) {
    size_t used = 0;
    if (!frames(p, n, &used)) return false;
    size_t rest = n - used;
    if (rest > kCarry) return fail(ErrorKind::kAckMismatch, "unparseable bytes from the server");
    memmove(c_.carry, p + used, rest);
    c_.carry_len = uint16_t(rest);
    return true;
  }

  bool legacy(const uint8_t* p, size_t n);

 private:
  bool frames(const uint8_t* p, size_t n, size_t* used);
  wire::Parse hello_ok(const uint8_t* p, size_t n, size_t* used);
  bool bad_frame(uint8_t type, uint8_t code);
  bool on_ack(const wire::Ack& a);
  bool ack(uint64_t count, uint8_t status);
  void record(uint64_t count, bool ok);
  bool fail(ErrorKind kind, std::string why) {
    fault_.kind = kind;
    fault_.why = std::move(why);
    return false;
  }

  const FrameShape& shape_;
  WorkerStats& stats_;
  ErrorSamples& samples_;
  Fault& fault_;
  Conn& c_;
  const int64_t now_;  // when the read returned: the ACK time of all it brought
};

// *used: the bytes of the complete frames at p, all handled.
bool Reply::frames(const uint8_t* p, size_t n, size_t* used) {
  size_t i = 0;
  *used = 0;
  if (!c_.hello_ok) {
    wire::Parse h = hello_ok(p, n, &i);
    if (h == wire::Parse::kNeedMore) return true;
    if (h == wire::Parse::kError) return false;
  }
  while (i < n) {
    uint8_t type = 0, code = 0;
    wire::Ack a{};
    const uint8_t* reason = nullptr;
    size_t reason_len = 0, size = 0;
    wire::Parse r = wire::parse_server_frame(p + i, n - i, &type, &a, &code, &reason, &reason_len, &size);
    if (r == wire::Parse::kNeedMore) break;
    if (r == wire::Parse::kError) return bad_frame(type, code);
    if (type != wire::kTypeAck) {  // kTypeErr: the server closes the connection after it
      return fail(ErrorKind::kServerError, "server ERR " + std::string(wire::err_code_name(code)) + " (code " +
                                               std::to_string(code) + "): " +
                                               std::string(reinterpret_cast<const char*>(reason), reason_len));
    }
    if (!on_ack(a)) return false;
    i += size;
  }
  *used = i;
  return true;
}

// kOk: *used is HELLO_OK's size, or 0 when the bytes start with a frame
// instead (ERR BUSY comes without HELLO_OK); kNeedMore: too few bytes to
// tell; kError: a HELLO_OK that refuses us (the fault is set).
wire::Parse Reply::hello_ok(const uint8_t* p, size_t n, size_t* used) {
  wire::HelloOk hello{};
  switch (wire::parse_hello_ok(p, n, &hello, nullptr)) {
    case wire::Parse::kNeedMore:
      return wire::Parse::kNeedMore;
    case wire::Parse::kOk:
      if (hello.version != wire::kVersion || hello.status != 0) {
        fail(ErrorKind::kServerError,
             "HELLO_OK with version " + std::to_string(hello.version) + " status " + std::to_string(hello.status));
        return wire::Parse::kError;
      }
      c_.hello_ok = true;
      *used = wire::kHelloSize;
      return wire::Parse::kOk;
    case wire::Parse::kError:
      break;  // not "MSGS": a frame, for the caller to parse
  }
  *used = 0;
  return wire::Parse::kOk;
}

bool Reply::bad_frame(uint8_t type, uint8_t code) {
  if (code == wire::kErrUnknownType)
    return fail(ErrorKind::kAckMismatch, "unexpected frame type " + std::to_string(type) + " from the server");
  const char* what = type == wire::kTypeAck ? "ACK" : type == wire::kTypeErr ? "ERR" : "zero-length";
  return fail(ErrorKind::kAckMismatch, std::string("malformed ") + what + " frame from the server (bad length)");
}

bool Reply::on_ack(const wire::Ack& a) {
  if (!c_.hello_ok) return fail(ErrorKind::kAckMismatch, "ACK before HELLO_OK");
  uint64_t count = a.count;
  if (count > 0 && count <= c_.in_flight() && a.last_msg_id != c_.acked + count) {
    return fail(ErrorKind::kAckMismatch, "ACK last_msg_id " + std::to_string(a.last_msg_id) + ", expected " +
                                             std::to_string(c_.acked + count));
  }
  stats_.ack_frames++;
  return ack(count, a.status);
}

bool Reply::legacy(const uint8_t* p, size_t n) {
  using legacy::kAck;
  using legacy::kAckSize;
  size_t i = 0;
  uint64_t whole = 0;
  while (i < n) {
    // The common case first: a whole "ack" where none is half read.
    if (c_.legacy_pos == 0 && n - i >= kAckSize && memcmp(p + i, kAck, kAckSize) == 0) {
      whole++;
      i += kAckSize;
      continue;
    }
    if (p[i] != kAck[c_.legacy_pos])
      return fail(ErrorKind::kAckMismatch, "legacy reply is not \"ack\" (byte " + std::to_string(p[i]) + ")");
    i++;
    if (++c_.legacy_pos == kAckSize) {
      c_.legacy_pos = 0;
      whole++;
    }
  }
  if (whole == 0) return true;
  stats_.ack_frames += whole;
  return ack(whole, wire::kAckOk);
}

// The ACK of the next `count` messages in flight, with one status for all.
bool Reply::ack(uint64_t count, uint8_t status) {
  if (count == 0 || count > c_.in_flight()) {
    return fail(ErrorKind::kAckMismatch, "ACK count " + std::to_string(count) + " but " +
                                             std::to_string(c_.in_flight()) + " messages in flight");
  }
  record(count, status == wire::kAckOk);
  c_.acked += count;
  if (status == wire::kAckOk) {
    stats_.acked_ok += count;
  } else {
    stats_.error(ErrorKind::kBadStatus) += count;
    samples_.add("ACK status " + std::to_string(status) + " for " + std::to_string(count) +
                 " message(s) on connection " + std::to_string(c_.index));
  }
  c_.last_progress = now_;
  return true;
}

// Each acknowledged message's latency, and (status OK) its payload bytes.
void Reply::record(uint64_t count, bool ok) {
  for (uint64_t q = c_.acked; q < c_.acked + count; q++) {
    uint32_t s = shape_.slot_of(q);
    int64_t d = now_ - c_.ring.sent_ns[s];
    stats_.latency.record(d > 0 ? uint64_t(d) : 0);
    if (ok) stats_.payload_acked += shape_.payload_len(c_, s);
  }
}

}  // namespace

Receiver::Receiver(const FrameShape& shape, WorkerStats& stats, ErrorSamples& samples)
    : shape_(shape), stats_(stats), samples_(samples), buf_(new uint8_t[kCarry + kReadBuf]) {}

Receiver::Result Receiver::read_once(Conn& c, int64_t* now) {
  uint8_t* buf = buf_.get();
  size_t have = c.carry_len;
  if (have) memcpy(buf, c.carry, have);
  // A branch per read, not per message: TLS connections read through OpenSSL (tls.h).
  ssize_t r = c.ssl != nullptr ? tls_read(c.ssl, buf + have, kReadBuf) : ::read(c.fd, buf + have, kReadBuf);
  if (r < 0) {
    if (errno == EINTR) return Result::kInterrupted;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Result::kDrained;
    fault_ = {ErrorKind::kClosedEarly, errno == EPROTO && c.ssl != nullptr ? tls_error()
                                                                          : std::string("read: ") + strerror(errno)};
    *now = now_ns();
    return Result::kFault;
  }
  *now = now_ns();
  if (r == 0) {
    fault_ = {ErrorKind::kClosedEarly,
              "server closed the connection with " + std::to_string(c.queued - c.acked) + " message(s) unacknowledged"};
    return Result::kFault;
  }
  size_t n = have + size_t(r);
  Reply reply(shape_, stats_, samples_, fault_, c, *now);
  if (!shape_.v1) c.carry_len = 0;  // legacy: legacy_pos remembers a split "ack"
  if (!(shape_.v1 ? reply.v1(buf, n) : reply.legacy(buf, n))) return Result::kFault;
  // OpenSSL may hold decrypted bytes the socket will not signal again: read on.
  if (c.ssl != nullptr && tls_has_more(c.ssl)) return Result::kFull;
  return size_t(r) < kReadBuf ? Result::kShort : Result::kFull;
}

}  // namespace loadgen
