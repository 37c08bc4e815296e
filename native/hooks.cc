#include "hooks.h"

#include <cstring>

#include "codec.h"
#include "time_util.h"

namespace msgs {

void HookFeed::store(Flush& f) {
  if (!channel_->enabled() || f.status != wire::kAckOk) return;
  uint64_t bytes = 0;
  size_t n = 0;
  for (const Span& s : *f.spans) {
    for (uint32_t i = s.begin; i < s.end; i++) {
      const MsgRef& m = s.batch->msgs[i];
      if (m.status != kPending) continue;
      bytes += m.name_len + m.payload_len;
      n++;
    }
  }
  if (n == 0) return;
  uint64_t budget = bytes + n * sizeof(HookMessage);
  if (!channel_->reserve(budget, n)) {
    unreported_ += n;
    report_drops(false);
    return;
  }
  HookBatch* hb = new HookBatch;
  hb->budget = budget;
  hb->data.resize(bytes);
  hb->msgs.reserve(n);
  uint32_t off = 0;
  uint64_t seq = f.first_seq;
  for (const Span& s : *f.spans) {
    for (uint32_t i = s.begin; i < s.end; i++) {
      const MsgRef& m = s.batch->msgs[i];
      if (m.status != kPending) continue;  // not in this flush's numbering (TOO_LARGE)
      uint64_t this_seq = seq++;
      memcpy(hb->data.data() + off, s.batch->data + m.offset, m.name_len);
      memcpy(hb->data.data() + off + m.name_len, s.batch->data + m.payload_offset(), m.payload_len);
      hb->msgs.push_back(HookMessage{this_seq, s.batch->time_us, m.msg_id, m.client_id, off, m.payload_len, m.name_len});
      off += m.name_len + m.payload_len;
    }
  }
  channel_->deliver(hb);
}

int HookFeed::poll(uint64_t now_ms) {
  if (unreported_ == 0) return -1;
  if (report_drops(false)) return -1;
  uint64_t due = last_report_ms_ + kDropReportMs;
  return due > now_ms ? static_cast<int>(due - now_ms) : 1;
}

// Writer thread. Returns true when it reported (or had nothing to report).
bool HookFeed::report_drops(bool force) {
  if (unreported_ == 0) return true;
  uint64_t now = monotonic_ms();
  if (!force && last_report_ms_ != 0 && now - last_report_ms_ < kDropReportMs) return false;
  last_report_ms_ = now;
  uint64_t n = unreported_;
  unreported_ = 0;
  events_.log(LogLevel::kWarn, "message hooks fell behind: " + std::to_string(n) +
                                   " messages dropped (policy 'drop', hook buffer full; stats().hookDropped)");
  events_.emit(HookDropEvent{n});
  return true;
}

void HookChannel::configure(bool enabled, bool block, uint64_t max_bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    block_ = block;
    max_bytes_ = max_bytes;
    shutdown_ = false;
  }
  enabled_.store(enabled, std::memory_order_relaxed);
  cv_.notify_all();  // a blocked writer re-checks (hooks removed: stop waiting)
}

bool HookChannel::reserve(uint64_t budget, uint64_t n) {
  std::unique_lock<std::mutex> lock(mu_);
  // A batch bigger than the whole budget is let through alone rather than
  // never: the budget bounds the backlog, not single batches.
  auto fits = [&] { return used_ == 0 || used_ + budget <= max_bytes_; };
  if (!fits()) {
    if (!block_) {
      dropped.add(n);
      return false;
    }
    blocked.add();
    cv_.wait(lock, [&] { return fits() || shutdown_ || !enabled_.load(std::memory_order_relaxed); });
    if (!fits()) {  // stopping, or the hooks were removed while we waited
      dropped.add(n);
      return false;
    }
  }
  used_ += budget;
  return true;
}

void HookChannel::deliver(HookBatch* b) {
  uint64_t n = b->msgs.size();
  uint64_t budget = b->budget;
  if (!sink_ || !sink_(b)) {  // the host is going away: nobody will see it
    delete b;
    release(budget);
    dropped.add(n);
    return;
  }
  delivered.add(n);
}

void HookChannel::release(uint64_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    used_ -= bytes;
  }
  cv_.notify_all();
}

void HookChannel::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
}

}  // namespace msgs
