// TLS for the load generator: a client context per run and non-blocking
// OpenSSL sessions on the connections' own sockets, chosen per connection
// (a plaintext connection never touches this file).
//
// A TLS connection's life: TCP connect, then the handshake driven by the
// worker's epoll events (TlsStep says which event to wait for), then the same
// rounds as plaintext: the frames one writev would have sent are gathered
// into one buffer and go out with one SSL_write; reads go through SSL_read
// into the receive buffer. OpenSSL may hold decrypted bytes the socket no
// longer signals (tls_has_more): the reader drains them before waiting again.
//
// Built against the system's OpenSSL 3 headers and NOT linked with libssl or
// libcrypto: msgbench.node resolves SSL_* from Node's own OpenSSL when it
// loads (one copy of OpenSSL in the process).
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <string>

#include "loadgen.h"

struct ssl_st;
struct ssl_ctx_st;

namespace loadgen {

// One run's client side: the CA it trusts (the system's without one), its
// own certificate and key (mutual TLS), and the name the server's
// certificate must carry (cfg.tls_servername, else the host; an IP host is
// checked as an IP address).
class TlsContext {
 public:
  // Throws std::runtime_error naming the file or setting that is wrong.
  explicit TlsContext(const LoadConfig& cfg);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A client session on the connected socket fd; nullptr (with *why) on failure.
  ssl_st* open(int fd, std::string* why) const;

 private:
  ssl_ctx_st* ctx_;
  std::string name_;  // the server name to check (and send as SNI when not an IP)
  bool name_is_ip_;
};

enum class TlsStep { kDone, kWantRead, kWantWrite, kFailed };

// One step of the handshake; kFailed sets *why (the verify result when the certificate was refused).
TlsStep tls_handshake(ssl_st* ssl, std::string* why);

// Writes the bytes of iov[0, n) (`bytes` in all) through ssl, copied into
// `stage` (cap bytes) and written with one SSL_write per `cap` bytes. Like
// sendmsg: the bytes written (fewer than `bytes`: the socket is full), or -1
// with errno EAGAIN (nothing could be written) or EPROTO (a TLS error: see
// tls_error()). A write that could not finish is repeated by the next call
// with the same bytes first, as OpenSSL requires: the caller gathers from its
// first unwritten byte again.
ssize_t tls_writev(ssl_st* ssl, const iovec* iov, int n, size_t bytes, uint8_t* stage, size_t cap);

// Like read(2): bytes read, 0 at the end of the stream, -1 with errno EAGAIN
// (nothing decrypted yet) or EPROTO (a TLS error: see tls_error()).
ssize_t tls_read(ssl_st* ssl, uint8_t* buf, size_t n);

// Decrypted or buffered bytes OpenSSL holds beyond the last read.
bool tls_has_more(ssl_st* ssl);

// The last TLS error of this thread, as text.
const std::string& tls_error();

// Sends close_notify when it can without waiting (a finished connection), then frees.
void tls_close(ssl_st* ssl, bool notify);

}  // namespace loadgen
