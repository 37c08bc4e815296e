#include "notifier.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <cstring>

namespace msgs {

Notifier::Notifier() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + strerror(errno));
}

Notifier::~Notifier() { close(fd_); }

void Notifier::signal() {
  uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the sleeper wakes anyway.
  ssize_t r = write(fd_, &one, sizeof one);
  (void)r;
}

void Notifier::drain() {
  uint64_t v;
  ssize_t r = read(fd_, &v, sizeof v);
  (void)r;
}

void Notifier::wait(int timeout_ms) {
  pollfd p{fd_, POLLIN, 0};
  int r = poll(&p, 1, timeout_ms);
  if (r > 0) drain();
  cancel_sleep();
}

}  // namespace msgs
