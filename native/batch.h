// A batch: the messages one service thread parsed in one pass of its event
// loop, with the bytes they came in. It travels service -> writer (shared
// queue) -> service (completion queue) and is then reused: one allocation
// serves many passes, none is made per message.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "mpsc_queue.h"

namespace msgs {

// One message inside a batch. Its name sits at `offset` in the batch's block;
// its payload follows `payload_gap` bytes after the name (0 in protocol v1,
// where the payload comes right after the name).
struct MsgRef {
  uint32_t conn_slot;    // connection slot in the owner service thread
  uint32_t conn_gen;     // slot generation, so a reused slot is not confused
  uint32_t offset;
  uint32_t payload_len;
  uint64_t msg_id;
  uint32_t client_id;
  uint8_t name_len;
  uint8_t status;        // wire::AckStatus; kPending until the writer decides
  uint16_t payload_gap;

  uint32_t payload_offset() const { return offset + name_len + payload_gap; }
};
static_assert(sizeof(MsgRef) == 32, "MsgRef is two per cache line");

constexpr uint8_t kPending = 0xff;

struct Batch : MpscNode {
  uint32_t owner = 0;          // index of the service thread that built it
  uint64_t time_us = 0;        // receive time of the pass
  uint64_t accounted = 0;      // bytes charged to the shared queue's bound
  uint32_t awaiting = 0;       // writer only: publishes whose JetStream ack decides a status
  uint8_t* data = nullptr;     // the block the socket bytes were read into
  size_t cap = 0;
  size_t used = 0;
  std::vector<MsgRef> msgs;

  Batch() = default;
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;
  ~Batch() { std::free(data); }

  size_t room() const { return cap - used; }

  // Grows the block to hold at least `need` more bytes. Messages refer to the
  // block by offset, so moving it is safe.
  void reserve(size_t need) {
    if (room() >= need) return;
    size_t ncap = cap ? cap : 64 * 1024;
    while (ncap - used < need) ncap *= 2;
    void* p = std::realloc(data, ncap);
    if (!p) throw std::bad_alloc();
    data = static_cast<uint8_t*>(p);
    cap = ncap;
  }

  void reset() {
    used = 0;
    msgs.clear();
    accounted = 0;
    awaiting = 0;
  }
};

}  // namespace msgs
