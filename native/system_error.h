// A start-up failure that carries the facts a program needs, beyond its
// message: Listener::bind() and LogFile::open() throw it, and addon.cc
// Start() copies the fields onto the JS Error listen() rejects with, the way
// Node's own system errors look (lib/server/server.ts then names the errno:
// code 'EADDRINUSE', ...). what() stays the message a person reads.
#pragma once
#include <stdexcept>
#include <string>

namespace msgs {

struct SystemError : std::runtime_error {
  int err = 0;          // errno of the failed call; 0 when `code` says what failed
  std::string code;     // set when no errno tells it: 'ENOTFOUND', 'ERR_MSGS_LOG_CORRUPT', ...
  std::string syscall;  // 'listen', 'bind', 'open', 'mkdir', ...
  std::string address;  // listen(): the host, with `port`
  int port = -1;
  std::string path;     // the file or directory, for the log

  explicit SystemError(const std::string& message) : std::runtime_error(message) {}

  // A failed system call on the log (or its directory).
  static SystemError file(const std::string& message, int err, const char* syscall, const std::string& path) {
    SystemError e(message);
    e.err = err;
    e.syscall = syscall;
    e.path = path;
    return e;
  }
  // A failed socket call (or name lookup, with err 0 and `code`) for host:port.
  static SystemError net(const std::string& message, int err, const char* syscall, const std::string& address,
                         int port) {
    SystemError e(message);
    e.err = err;
    e.syscall = syscall;
    e.address = address;
    e.port = port;
    return e;
  }
  // A log the server refuses to append to (no system call failed).
  static SystemError log(const std::string& message, const char* code, const std::string& path) {
    SystemError e(message);
    e.code = code;
    e.path = path;
    return e;
  }
};

}  // namespace msgs
