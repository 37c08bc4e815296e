// MPSC queue: several producer threads, one consumer. Every item arrives
// exactly once, each producer's items in the order it pushed them, and the
// Notifier sleep/wake handshake loses no wake-up. Built and run under TSan by
// `npm run test:tsan`.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "check.h"
#include "mpsc_queue.h"
#include "notifier.h"

namespace {

struct Item : msgs::MpscNode {
  uint32_t producer;
  uint32_t seq;
};

constexpr uint32_t kProducers = 6;
constexpr uint32_t kPerProducer = 200000;

void test_single_thread_fifo() {
  msgs::MpscQueue q;
  CHECK(q.empty());
  CHECK(q.pop() == nullptr);
  std::unique_ptr<Item[]> items(new Item[100]);
  for (uint32_t i = 0; i < 100; i++) {
    items[i].seq = i;
    q.push(&items[i]);
  }
  CHECK(!q.empty());
  bool in_order = true;
  for (uint32_t i = 0; i < 100; i++) {
    Item* it = static_cast<Item*>(q.pop());
    if (!it || it->seq != i) in_order = false;
  }
  CHECK(in_order);
  CHECK(q.pop() == nullptr);
  CHECK(q.empty());
  // Reuse after draining (the stub node goes round again).
  q.push(&items[0]);
  CHECK(q.pop() == &items[0]);
  CHECK(q.empty());
}

// Producers push as fast as they can; the consumer sleeps on the notifier
// whenever the queue looks empty, exactly as the writer thread does.
void test_concurrent(bool sleepy_consumer) {
  msgs::MpscQueue q;
  msgs::Notifier notifier;
  std::vector<std::unique_ptr<Item[]>> items;
  for (uint32_t p = 0; p < kProducers; p++) items.emplace_back(new Item[kPerProducer]);
  std::atomic<uint32_t> done{0};
  std::vector<std::thread> producers;
  for (uint32_t p = 0; p < kProducers; p++) {
    producers.emplace_back([&, p] {
      for (uint32_t i = 0; i < kPerProducer; i++) {
        Item& it = items[p][i];
        it.producer = p;
        it.seq = i;
        q.push(&it);
        notifier.notify();
        if (i % 4096 == 0) std::this_thread::yield();
      }
      done.fetch_add(1, std::memory_order_release);
      notifier.signal();
    });
  }
  std::vector<uint32_t> next(kProducers, 0);
  std::vector<uint8_t> seen(size_t(kProducers) * kPerProducer, 0);
  uint64_t received = 0, out_of_order = 0, duplicates = 0, lost_wakeups = 0;
  const uint64_t total = uint64_t(kProducers) * kPerProducer;
  while (received < total) {
    msgs::MpscNode* n = q.pop();
    if (!n) {
      if (!sleepy_consumer) continue;
      notifier.prepare_sleep();
      if (!q.empty()) {
        notifier.cancel_sleep();
        continue;
      }
      auto t0 = std::chrono::steady_clock::now();
      notifier.wait(2000);
      // A 2 s sleep with items pending means a producer's wake-up was lost.
      if (std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(1500) && !q.empty()) lost_wakeups++;
      continue;
    }
    Item* it = static_cast<Item*>(n);
    size_t idx = size_t(it->producer) * kPerProducer + it->seq;
    if (seen[idx]) duplicates++;
    seen[idx] = 1;
    if (it->seq != next[it->producer]) out_of_order++;
    next[it->producer] = it->seq + 1;
    received++;
  }
  for (auto& t : producers) t.join();
  CHECK_EQ(received, total);
  CHECK_EQ(duplicates, uint64_t{0});
  CHECK_EQ(out_of_order, uint64_t{0});
  CHECK_EQ(lost_wakeups, uint64_t{0});
  bool all_seen = true;
  for (uint8_t s : seen) all_seen = all_seen && s;
  CHECK(all_seen);
  CHECK(q.pop() == nullptr);
  CHECK(q.empty());
  CHECK_EQ(done.load(std::memory_order_acquire), kProducers);
}

// notify() says whether it had to wake the owner: a service thread decides
// from it whether the writer was awake (spin_wait.h). Only an armed owner
// (prepare_sleep() without cancel_sleep()) is woken, and only once.
void test_notify_reports_wake() {
  msgs::Notifier n;
  CHECK(!n.notify());  // awake owner: nothing to wake
  n.prepare_sleep();
  CHECK(n.notify());   // about to sleep: woken
  CHECK(!n.notify());  // the first notify() disarmed it
  n.wait(0);           // the eventfd was written: returns at once, drained
  n.prepare_sleep();
  n.cancel_sleep();
  CHECK(!n.notify());  // found work before sleeping: no wake needed
}

}  // namespace

int main() {
  test_notify_reports_wake();
  test_single_thread_fifo();
  test_concurrent(false);
  test_concurrent(true);
  return check_summary("test_mpsc_queue");
}
