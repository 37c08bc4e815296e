// Multi-producer single-consumer intrusive queue (Dmitry Vyukov's design).
// Producers never wait for each other or for the consumer: a push is one
// atomic exchange plus one store. The consumer pops in FIFO order; each
// producer's items come out in the order that producer pushed them.
//
// Used for the shared service->writer queue (items are whole batches) and for
// the per-thread hand-off and completion queues.
#pragma once
#include <atomic>
#include <cstddef>

namespace msgs {

struct MpscNode {
  std::atomic<MpscNode*> next{nullptr};
};

class MpscQueue {
 public:
  MpscQueue() : head_(&stub_), tail_(&stub_) {}
  MpscQueue(const MpscQueue&) = delete;
  MpscQueue& operator=(const MpscQueue&) = delete;

  // Any thread.
  void push(MpscNode* n) {
    // relaxed: n is not yet reachable by anyone; the exchange below publishes it.
    n->next.store(nullptr, std::memory_order_relaxed);
    // acq_rel: release makes n's contents visible to whoever later follows
    // prev->next; acquire orders us after the producer that installed prev.
    MpscNode* prev = head_.exchange(n, std::memory_order_acq_rel);
    // release: the consumer's acquire load of prev->next then sees all of n.
    prev->next.store(n, std::memory_order_release);
  }

  // Consumer thread only. Returns nullptr when empty, and also (briefly) when
  // a producer is between its exchange and its link store; such an item is
  // seen by a later pop. Callers that sleep on empty must re-check after the
  // producer's wake-up, which comes after the link store.
  MpscNode* pop() {
    MpscNode* tail = tail_;
    // acquire: pairs with the producer's release store of next.
    MpscNode* next = tail->next.load(std::memory_order_acquire);
    if (tail == &stub_) {
      if (next == nullptr) return nullptr;
      tail_ = next;
      tail = next;
      next = next->next.load(std::memory_order_acquire);
    }
    if (next != nullptr) {
      tail_ = next;
      return tail;
    }
    // acquire: to compare with the newest producer's node.
    if (tail != head_.load(std::memory_order_acquire)) return nullptr;  // push in progress
    push(&stub_);
    next = tail->next.load(std::memory_order_acquire);
    if (next != nullptr) {
      tail_ = next;
      return tail;
    }
    return nullptr;
  }

  // Consumer thread only: true when nothing has been pushed that was not popped
  // (a push in progress counts as not empty).
  bool empty() const {
    // seq_cst: used in the sleep/wake handshake (see Notifier), which needs a
    // total order between this load and the producer's flag check.
    return tail_ == &stub_ && head_.load(std::memory_order_seq_cst) == &stub_ &&
           stub_.next.load(std::memory_order_seq_cst) == nullptr;
  }

 private:
  alignas(64) std::atomic<MpscNode*> head_;  // producers' end
  alignas(64) MpscNode* tail_;               // consumer's end
  MpscNode stub_;
};

}  // namespace msgs
