// TLS for the v1 listener: the server context (built from the config's PEM
// files, rebuilt by reload) and a per-connection transport over the
// connection's existing non-blocking socket. OpenSSL's symbols come from the
// host process (Node's own OpenSSL): the addon is compiled against the
// OpenSSL 3 headers and not linked with libssl (docs/security.md).
#pragma once
#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "config.h"

namespace msgs {

// One SSL_CTX with the config's material, or the reason it could not be made.
// The context is reference counted by OpenSSL: every SSL made from it holds
// it, so a reload may drop the TlsContext while connections still use it.
class TlsContext {
 public:
  // Reads cert, key and ca from their files now. On failure ctx() is null and
  // error() says which file and why (OpenSSL's reason).
  explicit TlsContext(const TlsConfig& cfg);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* ctx() const { return ctx_; }
  const std::string& error() const { return error_; }

 private:
  bool fail(const std::string& what);
  SSL_CTX* ctx_ = nullptr;
  std::string error_;
};

// The last OpenSSL error on this thread as text (and the queue cleared).
std::string tls_error_reason();

// Outcome of one transport step.
enum class TlsIo : uint8_t {
  kOk,         // done (handshake finished, or bytes moved: see *n)
  kWantRead,   // wait until the socket is readable
  kWantWrite,  // wait until the socket is writable
  kClosed,     // the peer closed (close_notify or EOF)
  kError,      // protocol or socket error: tls_error_reason() says which
};

// A server-side TLS session on `fd`. Non-blocking; never blocks.
class TlsSession {
 public:
  // Null ssl() when SSL_new failed (out of memory).
  TlsSession(SSL_CTX* ctx, int fd);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  SSL* ssl() const { return ssl_; }
  // One handshake step.
  TlsIo handshake();
  // Reads into buf until it is full or OpenSSL wants the socket: SSL_read
  // returns at most one record per call. *n: the bytes read (also on
  // kWantRead/kWantWrite/kClosed, which may follow some bytes).
  TlsIo read(uint8_t* buf, size_t len, size_t* n);
  // Writes as much of buf as the socket takes (partial writes on).
  TlsIo write(const uint8_t* buf, size_t len, size_t* n);
  // Decrypted or undecrypted bytes OpenSSL holds: epoll will not report them.
  bool has_pending() const { return SSL_has_pending(ssl_) == 1; }
  // After a read that ended wanting more: OpenSSL has parsed a record header
  // whose body has not all arrived (SSL_has_pending() does not see such a
  // record). Less than a header (at most 4 bytes) is not reported: a record
  // format the callback does not see (an SSLv2-style ClientHello) then only
  // weakens the check, and never flags a client that sends whole records.
  bool holds_partial_record() const { return records_in_ > raw_in_; }
  // Sends close_notify (best effort, non-blocking).
  void shutdown();
  // The peer certificate's subject CN when the handshake verified one; empty
  // otherwise (or without a CN). False when the certificate's CN cannot name
  // a principal: more than one CN, an empty one, one longer than
  // kMaxCommonName bytes, or one with an embedded NUL.
  static constexpr size_t kMaxCommonName = 255;
  bool peer_common_name(std::string* cn) const;

 private:
  TlsIo result(int ret);
  static long on_bio(BIO* b, int oper, const char* argp, size_t len, int argi, long argl, int ret, size_t* processed);
  static void on_record(int write_p, int version, int content_type, const void* buf, size_t len, SSL* ssl, void* arg);
  SSL* ssl_ = nullptr;
  uint64_t raw_in_ = 0;      // bytes read from the socket
  uint64_t records_in_ = 0;  // bytes of the records whose headers were parsed
};

}  // namespace msgs
