// Socket helpers: see net.h.
#include "net.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cstring>
#include <stdexcept>

namespace loadgen {

Address resolve(const std::string& host, uint16_t port) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string service = std::to_string(port);
  int gai = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (gai != 0 || !res) throw std::runtime_error("cannot resolve " + host + ": " + gai_strerror(gai));
  Address a;
  memcpy(&a.addr, res->ai_addr, res->ai_addrlen);
  a.len = res->ai_addrlen;
  freeaddrinfo(res);
  return a;
}

int tcp_socket(const Address& a) {
  int fd = socket(a.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

Connect tcp_connect(int fd, const Address& a) {
  if (connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len) == 0) return Connect::kDone;
  return errno == EINPROGRESS ? Connect::kInProgress : Connect::kFailed;
}

int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

}  // namespace loadgen
