// SpinPolicy (spin_wait.h): a thread spins for its next work only while that
// work usually comes back within one spin, and never spins once it has
// learnt that it does not.
#include "spin_wait.h"

#include <time.h>

#include "check.h"

using msgs::SpinPolicy;

namespace {

void pause_ns(long ns) {
  timespec ts{0, ns};
  nanosleep(&ts, nullptr);
}

// Runs one spin() whose work is never ready, then lets `gap_ns` pass before
// the work "arrives"; returns how often ready() was asked.
int idle_round(SpinPolicy& p, long gap_ns) {
  int asked = 0;
  p.spin([&] {
    asked++;
    return false;
  });
  pause_ns(gap_ns);
  p.arrived();
  return asked;
}

}  // namespace

int main() {
  // Work that is there at once: spin() says so, with no sleep.
  {
    SpinPolicy p(1000 * 1000);
    int asked = 0;
    CHECK(p.spin([&] { return ++asked == 3; }));
    CHECK_EQ(asked, 3);
    p.arrived();
  }
  // A spin that finds nothing gives up after its bound and answers false.
  {
    SpinPolicy p(20 * 1000);
    int asked = 0;
    CHECK(!p.spin([&] {
      asked++;
      return false;
    }));
    CHECK(asked > 0);
  }
  // Gaps much longer than a spin (1 ms against 10 us): after a few rounds the
  // policy stops spinning, so ready() is no longer asked at all.
  {
    SpinPolicy p(10 * 1000);
    int last = -1;
    for (int i = 0; i < 20; i++) last = idle_round(p, 1000 * 1000);
    CHECK_EQ(last, 0);
    // Work that then comes back quickly switches spinning on again.
    int asked = 0;
    for (int i = 0; i < 40 && asked == 0; i++) {
      asked = 0;
      p.spin([&] {
        asked++;
        return true;
      });
      p.arrived();
    }
    CHECK(asked > 0);
  }
  // One long pause among short gaps does not switch spinning off: the gap is
  // capped at four spins.
  {
    SpinPolicy p(1000 * 1000);
    for (int i = 0; i < 8; i++) {
      p.spin([] { return true; });
      p.arrived();
    }
    idle_round(p, 50 * 1000 * 1000);
    int asked = 0;
    p.spin([&] {
      asked++;
      return true;
    });
    CHECK_EQ(asked, 1);
  }
  return check_summary("test_spin_wait");
}
