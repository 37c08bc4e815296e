// Socket helpers: resolving the server's address once per run, and starting
// a non-blocking TCP connect to it.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace loadgen {

struct Address {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

// The first address of host:port. Throws std::runtime_error when it does not resolve.
Address resolve(const std::string& host, uint16_t port);

// A non-blocking TCP socket with Nagle off: each round is one writev already,
// and a delayed small round would show up as latency. -1 (errno set) on failure.
int tcp_socket(const Address& a);

enum class Connect { kDone, kInProgress, kFailed };
// Starts connecting fd to a; kFailed leaves errno set.
Connect tcp_connect(int fd, const Address& a);

// The outcome of a non-blocking connect (SO_ERROR): 0 or an errno.
int socket_error(int fd);

}  // namespace loadgen
