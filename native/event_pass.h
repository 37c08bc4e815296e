// One pass of a service thread's libevent loop: the callbacks of the events
// ready now run (with those they make active meanwhile, such as the read a
// finished TLS handshake activates), then control returns to the thread,
// which resets the per-pass budgets, takes its mailbox and pushes its batch.
//
// EVLOOP_NONBLOCK alone is not one pass: libevent polls again as long as the
// last poll found anything ready. A level-triggered socket whose callback
// puts its work off to the next pass (a TLS handshake step over the pass's
// budget) is still ready, so such a loop never returns, the budget is never
// reset, and the handshakes it put off wait until handshakeTimeoutMs closes
// them. EVLOOP_ONCE ends the call once a round of callbacks leaves nothing
// active. That holds because the service loop uses one priority and no
// deferred callbacks: with priorities, lower ones left active would make the
// call poll again.
//
// A pass fails (-1) when the poll itself fails: libevent retries EINTR and
// returns anything else. pass_failed() is what the owner then does.
#pragma once
#include <event2/event.h>

#include <cstring>
#include <string>
#include <thread>

#include "events.h"
#include "stats.h"
#include "time_util.h"

namespace msgs {

// After a failed poll the owner waits this long before the next: a failure
// that lasts must not spin a core, and one that passes costs little.
constexpr int kPassFailureWaitMs = 10;

// `block`: wait for the first event (the owner has nothing else to do).
// Returns -1 when the poll failed (errno says why), else 0 or 1.
inline int event_pass(event_base* base, bool block) {
  return event_base_loop(base, block ? EVLOOP_ONCE : EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

// A failed poll in `who`'s loop: counted, logged at most once per `log`
// interval, then the wait above. `err`: errno as the poll left it.
inline void pass_failed(const char* who, int err, Counter& failures, RateLimit& log, Events& events) {
  failures.add();
  if (log.allow(monotonic_ms())) {
    events.log(LogLevel::kError, std::string(who) + ": event loop poll failed: " + strerror(err) +
                                     "; polling again in " + std::to_string(kPassFailureWaitMs) + " ms");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(kPassFailureWaitMs));
}

}  // namespace msgs
