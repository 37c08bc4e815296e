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
#pragma once
#include <event2/event.h>

namespace msgs {

// `block`: wait for the first event (the owner has nothing else to do).
inline int event_pass(event_base* base, bool block) {
  return event_base_loop(base, block ? EVLOOP_ONCE : EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

}  // namespace msgs
