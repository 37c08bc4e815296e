// A worker's epoll instance. A connection is registered once, for input and
// output (output is how a non-blocking connect reports), and asks for output
// again only while its socket is full: with the window refilled on every ACK
// read, EPOLLOUT is needed only to resume a short write.
#pragma once

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "conn.h"

namespace loadgen {

class Poller {
 public:
  Poller() : fd_(epoll_create1(EPOLL_CLOEXEC)) {
    if (fd_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + strerror(errno));
  }
  ~Poller() { close(fd_); }
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  void add(Conn& c) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = &c;
    c.want_out = true;
    epoll_ctl(fd_, EPOLL_CTL_ADD, c.fd, &ev);
  }

  void want_out(Conn& c, bool out) {
    if (c.want_out == out) return;
    c.want_out = out;
    epoll_event ev{};
    ev.events = EPOLLIN | (out ? uint32_t(EPOLLOUT) : 0u);
    ev.data.ptr = &c;
    epoll_ctl(fd_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  // Up to max events; 0 when interrupted. Throws on any other error.
  int wait(epoll_event* evs, int max, int timeout_ms) {
    int n = epoll_wait(fd_, evs, max, timeout_ms);
    if (n >= 0) return n;
    if (errno == EINTR) return 0;
    throw std::runtime_error(std::string("epoll_wait: ") + strerror(errno));
  }

 private:
  int fd_;
};

}  // namespace loadgen
