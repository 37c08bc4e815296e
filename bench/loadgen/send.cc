// The send side: see send.h.
#include "send.h"

#include <errno.h>
#include <sys/socket.h>

#include <algorithm>

#include "clock.h"
#include "tls.h"

namespace loadgen {

SlotMemory::SlotMemory(const FrameShape& shape, uint32_t conns) : window_(shape.window), stride_(shape.stride) {
  size_t slots = size_t(conns) * window_;
  frames_.reset(new uint8_t[slots * stride_]());
  sent_ns_.reset(new int64_t[slots]());
  if (!shape.fixed) {
    frame_len_.reset(new uint32_t[slots]());
    payload_len_.reset(new uint32_t[slots]());
  }
}

SendRing SlotMemory::ring(uint32_t k) const {
  size_t first = size_t(k) * window_;
  SendRing r;
  r.frames = frames_.get() + first * stride_;
  r.sent_ns = sent_ns_.get() + first;
  if (frame_len_) {
    r.frame_len = frame_len_.get() + first;
    r.payload_len = payload_len_.get() + first;
  }
  return r;
}

Sender::Sender(const LoadConfig& cfg, uint32_t worker_id, uint32_t conns, WorkerStats& stats)
    : frames_(cfg, worker_id),
      slots_(frames_.shape(), conns),
      stats_(stats),
      stage_(cfg.tls ? new uint8_t[kTlsStage] : nullptr) {}

void Sender::attach(Conn& c, uint32_t k) {
  c.ring = slots_.ring(k);
  if (shape().v1) {
    wire::encode_hello(c.hello, shape().client_id(c));
    if (shape().token_len > 0) c.hello[5] = kHelloFlagAuth;  // the flags byte: an AUTH frame follows
  } else {
    c.hello_off = kHelloLen;  // nothing to send before the first frame
  }
  for (uint32_t s = 0; s < shape().window; s++) frames_.build(c, s);
}

// ---- A round's steps: file-local, so the compiler can fold them together
// again, as they were before they had names (they run on every round).
namespace {

// Prepares the messages the window has room for (after the deadline, none).
void fill_window(FrameBuilder& frames, Conn& c, bool stop_sending) {
  uint64_t limit = c.acked + frames.shape().window;
  uint64_t target = stop_sending ? c.queued : c.target;
  if (limit > target) limit = target;
  if (c.queued >= limit) return;
  int64_t now = now_ns();  // one clock read per round: the send time of all its messages
  frames.prepare(c, c.queued, limit, now);
  c.queued = limit;
}

// The iovecs of one sendmsg.
struct Round {
  iovec iov[kMaxIov];
  int iovcnt;
  size_t bytes;
  uint64_t end;  // the first message not in it
};

// The rest of HELLO, then frames from message `written` (of which `partial`
// bytes are out) up to `queued`, in at most kMaxIov pieces. (Locals, not
// Round's fields, in the loops: they run once per frame.)
void gather(const FrameShape& fs, Conn& c, Round* r) {
  const uint32_t window = fs.window, stride = fs.stride;
  int n = 0;
  size_t bytes = 0;
  auto add = [&](uint8_t* base, size_t len) {
    r->iov[n].iov_base = base;
    r->iov[n++].iov_len = len;
    bytes += len;
  };
  if (c.hello_off < fs.preamble) {
    // HELLO, then (with a token) the AUTH frame's head and its token.
    uint32_t off = c.hello_off;
    if (off < kHelloLen) {
      add(c.hello + off, kHelloLen - off);
      off = kHelloLen;
    }
    if (fs.token_len > 0) {
      if (off < kHelloLen + kAuthHead) {
        add(const_cast<uint8_t*>(fs.auth_head) + (off - kHelloLen), kHelloLen + kAuthHead - off);
        off = kHelloLen + kAuthHead;
      }
      add(const_cast<uint8_t*>(fs.token) + (off - kHelloLen - kAuthHead), fs.preamble - off);
    }
  }
  uint64_t q = c.written;
  uint32_t off = c.partial;
  if (fs.uniform) {
    // Frames of one size lie back to back: the slots up to the ring's end are one piece.
    while (q < c.queued && n < kMaxIov) {
      uint32_t s = uint32_t(q % window);
      uint64_t run = std::min<uint64_t>(c.queued - q, window - s);
      add(c.ring.frames + size_t(s) * stride + off, size_t(run) * stride - off);
      q += run;
      off = 0;
    }
  } else {
    while (q < c.queued && n < kMaxIov) {
      uint32_t s = uint32_t(q % window);
      add(c.ring.frames + size_t(s) * stride + off, c.ring.frame_len[s] - off);
      q++;
      off = 0;
    }
  }
  r->iovcnt = n;
  r->bytes = bytes;
  r->end = q;
}

// Counts `bytes` written past HELLO as whole frames (and the part of the next).
void account_frames(const FrameShape& fs, Conn& c, size_t bytes, WorkerStats& stats) {
  if (fs.uniform) {
    uint64_t total = uint64_t(c.partial) + bytes;
    uint64_t full = total / fs.stride;
    c.written += full;
    stats.sent += full;
    c.partial = uint32_t(total % fs.stride);
    return;
  }
  const uint32_t window = fs.window;
  uint64_t written = c.written;
  uint32_t partial = c.partial;
  while (bytes > 0) {
    uint32_t rest = c.ring.frame_len[written % window] - partial;
    if (bytes < rest) {
      partial += uint32_t(bytes);
      break;
    }
    bytes -= rest;
    written++;
    partial = 0;
  }
  stats.sent += written - c.written;
  c.written = written;
  c.partial = partial;
}

// Counts `bytes` written: the preamble's (HELLO, AUTH) first, then the frames'.
void account(const FrameShape& fs, Conn& c, size_t bytes, WorkerStats& stats) {
  stats.wire_bytes += bytes;
  if (c.hello_off < fs.preamble) {
    size_t h = std::min<size_t>(bytes, fs.preamble - c.hello_off);
    c.hello_off += uint32_t(h);
    bytes -= h;
  }
  account_frames(fs, c, bytes, stats);
}

// One round's bytes out: sendmsg, or over TLS the same bytes through one
// staging buffer and SSL_write (tls.h). A branch per round, not per message.
ssize_t send_round(Conn& c, Round& r, uint8_t* stage) {
  if (c.ssl != nullptr) return tls_writev(c.ssl, r.iov, r.iovcnt, r.bytes, stage, kTlsStage);
  msghdr mh{};
  mh.msg_iov = r.iov;
  mh.msg_iovlen = size_t(r.iovcnt);
  return sendmsg(c.fd, &mh, MSG_NOSIGNAL);  // sendmsg, not writev: no SIGPIPE
}

// Writes what is unwritten, kMaxIov pieces per sendmsg.
Sender::Result write_out(const FrameShape& fs, Conn& c, WorkerStats& stats, uint8_t* stage, int* err) {
  for (;;) {
    Round r;
    gather(fs, c, &r);
    if (r.iovcnt == 0) return Sender::Result::kDone;
    ssize_t w = send_round(c, r, stage);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Sender::Result::kBlocked;
      *err = errno;
      return Sender::Result::kFailed;
    }
    account(fs, c, size_t(w), stats);
    if (size_t(w) < r.bytes) return Sender::Result::kBlocked;
    if (r.end >= c.queued) return Sender::Result::kDone;
    // else the round had more frames than kMaxIov: go on with them.
  }
}

}  // namespace

Sender::Result Sender::round(Conn& c, bool stop_sending, int* err) {
  fill_window(frames_, c, stop_sending);
  return write_out(shape(), c, stats_, stage_.get(), err);
}

}  // namespace loadgen
