// The way back: the writer returns each finished batch to the service thread
// that built it (batch->owner), through that thread's completion queue, and
// wakes each thread once per round however many batches it got.
#pragma once
#include <cstdint>
#include <vector>

#include "batch.h"
#include "mpsc_queue.h"
#include "notifier.h"

namespace msgs {

class CompletionRoute {
 public:
  // Wiring, before any thread starts: owner i's queue and wake-up.
  void add_owner(MpscQueue& completions, Notifier& wake) {
    owners_.push_back(Owner{&completions, &wake});
    woken_.push_back(0);
  }

  // Writer thread.
  void hand_back(Batch* b) {
    uint32_t owner = b->owner;  // read first: once pushed, b is the owner's (it may be freed)
    owners_[owner].completions->push(b);
    woken_[owner] = 1;
  }
  // Writer thread, after a round of hand_back(): one wake-up per owner that got batches.
  void wake_owners() {
    for (size_t i = 0; i < owners_.size(); i++) {
      if (woken_[i]) {
        woken_[i] = 0;
        owners_[i].wake->notify();
      }
    }
  }

 private:
  struct Owner {
    MpscQueue* completions;
    Notifier* wake;
  };
  std::vector<Owner> owners_;
  std::vector<uint8_t> woken_;
};

}  // namespace msgs
