// event_pass (event_pass.h): one call runs the ready events' callbacks once
// and returns, also when a callback leaves its level-triggered socket ready
// (a handshake step put off to the next pass). A loop that kept polling
// would never return here: the alarm ends the test as a failure then.
#include "event_pass.h"

#include <event2/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

namespace {

// A callback that puts its work off: it reads nothing, so the socket stays
// readable (level-triggered).
void put_off(evutil_socket_t, short, void* arg) { ++*static_cast<int*>(arg); }

}  // namespace

int main() {
  alarm(10);  // a pass that never returns fails the test instead of hanging it
  int sv[2];
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  CHECK_EQ(write(sv[1], "x", 1), 1);
  event_base* base = event_base_new();
  int calls = 0;
  event* ev = event_new(base, sv[0], EV_READ | EV_PERSIST, put_off, &calls);
  event_add(ev, nullptr);

  msgs::event_pass(base, false);  // not blocking: work waits in the mailbox
  CHECK_EQ(calls, 1);
  msgs::event_pass(base, false);  // still ready: once more, in the next pass
  CHECK_EQ(calls, 2);
  msgs::event_pass(base, true);   // blocking: returns after the first round
  CHECK_EQ(calls, 3);

  // Nothing ready: a non-blocking pass returns without running anything.
  char c;
  CHECK_EQ(read(sv[0], &c, 1), 1);
  msgs::event_pass(base, false);
  CHECK_EQ(calls, 3);

  // A callback that makes another event active in the same pass: that one
  // runs in this pass too (a finished handshake activates its read), and the
  // pass still ends.
  int other_calls = 0;
  event* other = event_new(base, -1, 0, put_off, &other_calls);
  struct Chain {
    event* next;
    int n;
  } chain{other, 0};
  event* first = event_new(
      base, -1, 0,
      [](evutil_socket_t, short, void* arg) {
        Chain* ch = static_cast<Chain*>(arg);
        ch->n++;
        event_active(ch->next, EV_READ, 0);
      },
      &chain);
  event_active(first, EV_READ, 0);
  msgs::event_pass(base, false);
  CHECK_EQ(chain.n, 1);
  CHECK_EQ(other_calls, 1);

  event_free(first);
  event_free(other);
  event_free(ev);
  event_base_free(base);
  close(sv[0]);
  close(sv[1]);
  return check_summary("test_event_pass");
}
