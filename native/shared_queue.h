// The shared queue: every service thread pushes its batches, the writer
// thread pops them. An MPSC queue (mpsc_queue.h) bounded by the bytes its
// batches hold (maxQueueBytes), with the whole full-queue handshake in this
// one file: a producer that finds the queue full parks (pause()), and the
// consumer wakes the parked producers as it frees space (pop()).
#pragma once
#include <atomic>
#include <cstdint>
#include <vector>

#include "batch.h"
#include "mpsc_queue.h"
#include "notifier.h"

namespace msgs {

class SharedQueue {
 public:
  // `consumer` wakes the writer after a push.
  SharedQueue(uint64_t max_bytes, Notifier& consumer) : max_bytes_(max_bytes), consumer_(consumer) {}
  SharedQueue(const SharedQueue&) = delete;
  SharedQueue& operator=(const SharedQueue&) = delete;

  // Wiring, before any thread starts: producer i is woken through `wake`.
  uint32_t add_producer(Notifier& wake) {
    producers_.emplace_back(&wake);
    return static_cast<uint32_t>(producers_.size() - 1);
  }

  // Producer: charges the batch's memory (its block's capacity, not just the
  // bytes used) to the bound, pushes it and wakes the writer. True when the
  // writer was asleep.
  bool push(Batch* b) {
    b->accounted = b->cap;
    // relaxed: the bound is approximate by one batch per producer; the push
    // below carries the synchronisation for the batch's contents.
    bytes_.fetch_add(b->accounted, std::memory_order_relaxed);
    batches_.fetch_add(1, std::memory_order_relaxed);
    queue_.push(b);
    return consumer_.notify();
  }

    // Full by its bytes, or held (the disk-space guard): producers stop reading.
  // relaxed: a stale value only delays a pause or a resume by one pass.
  bool full() const {
    return held_.load(std::memory_order_relaxed) || bytes_.load(std::memory_order_relaxed) >= max_bytes_;
  }

  // Consumer (the writer's disk-space guard): while held, full() is true
  // whatever the bytes, so producers park exactly as for a full queue and
  // stop reading their sockets. Releasing wakes the parked producers.
  void set_hold(bool on) {
    // seq_cst: the release is the same handshake as pop(): lower (here:
    // clear the hold), then look at `parked`.
    held_.store(on, std::memory_order_seq_cst);
    if (on) return;
    for (Producer& p : producers_) {
      if (p.parked.load(std::memory_order_seq_cst)) p.wake->notify();
    }
  }
  bool held() const { return held_.load(std::memory_order_relaxed); }

  // Producer, after full() said so: parks until space frees up, for at most
  // `max_wait_ms`, or until `has_work()` (other work for this thread that
  // arrived on its notifier: hand-offs, completions, a stop request).
  // Returns true when there is room now.
  template <typename HasWork>
  bool pause(uint32_t producer, int max_wait_ms, HasWork&& has_work) {
    Producer& p = producers_[producer];
    // seq_cst (all three): Dekker handshake with pop(), which lowers bytes_
    // and then reads `parked`. Either pop() sees parked == true and wakes us,
    // or we see its lowered bytes_ and do not sleep.
    p.parked.store(true, std::memory_order_seq_cst);
    p.wake->prepare_sleep();
    bool still_full = held_.load(std::memory_order_seq_cst) || bytes_.load(std::memory_order_seq_cst) >= max_bytes_;
    if (still_full && !has_work()) {
      p.wake->wait(max_wait_ms);
    } else {
      p.wake->cancel_sleep();
    }
    p.parked.store(false, std::memory_order_relaxed);
    return !full();
  }

  // Consumer: the next batch (or null), its bytes released from the bound;
  // parked producers are woken.
  Batch* pop() {
    MpscNode* n = queue_.pop();
    if (!n) return nullptr;
    Batch* b = static_cast<Batch*>(n);
    // seq_cst: the other half of pause()'s handshake: lower, then look.
    bytes_.fetch_sub(b->accounted, std::memory_order_seq_cst);
    batches_.fetch_sub(1, std::memory_order_relaxed);
    for (Producer& p : producers_) {
      if (p.parked.load(std::memory_order_seq_cst)) p.wake->notify();
    }
    return b;
  }

  // Consumer only (see MpscQueue::empty()).
  bool empty() const { return queue_.empty(); }

  // For stats: relaxed, a gauge.
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t batches() const { return batches_.load(std::memory_order_relaxed); }

 private:
  struct alignas(64) Producer {
    explicit Producer(Notifier* w) : wake(w) {}
    Producer(Producer&& o) noexcept : wake(o.wake) {}  // wiring only, before threads start
    Notifier* wake;
    std::atomic<bool> parked{false};
  };

  const uint64_t max_bytes_;
  Notifier& consumer_;
  MpscQueue queue_;
  alignas(64) std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<bool> held_{false};
  std::vector<Producer> producers_;
};

}  // namespace msgs
