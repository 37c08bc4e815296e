// TLS for the load generator: see tls.h.
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace loadgen {
namespace {

thread_local std::string last_error;

// OpenSSL's error queue (this thread's) as one line, emptied.
std::string queue_text() {
  std::string out;
  char buf[256];
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

[[noreturn]] void ctx_fail(SSL_CTX* ctx, const std::string& what) {
  std::string detail = queue_text();
  SSL_CTX_free(ctx);
  throw std::runtime_error("TLS: " + what + (detail.empty() ? "" : " (" + detail + ")"));
}

bool is_ip(const std::string& host) {
  unsigned char b[16];
  return inet_pton(AF_INET, host.c_str(), b) == 1 || inet_pton(AF_INET6, host.c_str(), b) == 1;
}

// What a failed call left: errno EAGAIN to wait (WANT_*), else EPROTO with
// the reason in last_error. `r` is the call's return value.
ssize_t failed(SSL* ssl, int r, const char* op) {
  int e = SSL_get_error(ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    errno = EAGAIN;
    return -1;
  }
  int sys = errno;
  std::string detail = queue_text();
  if (detail.empty()) {
    detail = e == SSL_ERROR_ZERO_RETURN ? "the server closed the TLS session"
             : e == SSL_ERROR_SYSCALL   ? (sys ? std::string(strerror(sys)) : "the connection closed")
                                        : "SSL error " + std::to_string(e);
  }
  last_error = std::string(op) + ": " + detail;
  errno = EPROTO;
  return -1;
}

}  // namespace

TlsContext::TlsContext(const LoadConfig& cfg)
    : ctx_(SSL_CTX_new(TLS_client_method())),
      name_(cfg.tls_servername.empty() ? cfg.host : cfg.tls_servername),
      name_is_ip_(is_ip(name_)) {
  if (!ctx_) throw std::runtime_error("TLS: SSL_CTX_new failed (" + queue_text() + ")");
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  // A server that closes without close_notify (after an ERR frame, say) ends
  // the stream as a plaintext close does, not with a TLS error.
  SSL_CTX_set_options(ctx_, SSL_OP_IGNORE_UNEXPECTED_EOF);
  // The retry of a blocked SSL_write passes the same bytes from the worker's
  // staging buffer, which other connections use in between.
  SSL_CTX_set_mode(ctx_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  if (!cfg.tls_ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx_, cfg.tls_ca.c_str(), nullptr) != 1)
      ctx_fail(ctx_, "cannot load the CA file " + cfg.tls_ca);
  } else if (SSL_CTX_set_default_verify_paths(ctx_) != 1) {
    ctx_fail(ctx_, "cannot load the system's CA certificates");
  }
  if (!cfg.tls_cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx_, cfg.tls_cert.c_str()) != 1)
      ctx_fail(ctx_, "cannot load the certificate file " + cfg.tls_cert);
    if (SSL_CTX_use_PrivateKey_file(ctx_, cfg.tls_key.c_str(), SSL_FILETYPE_PEM) != 1)
      ctx_fail(ctx_, "cannot load the key file " + cfg.tls_key);
    if (SSL_CTX_check_private_key(ctx_) != 1) ctx_fail(ctx_, cfg.tls_key + " is not the key of " + cfg.tls_cert);
  }
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

SSL* TlsContext::open(int fd, std::string* why) const {
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx_);
  bool ok = ssl != nullptr && SSL_set_fd(ssl, fd) == 1;
  if (ok && name_is_ip_) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name_.c_str()) == 1;
  } else if (ok) {
    ok = SSL_set_tlsext_host_name(ssl, name_.c_str()) == 1 && SSL_set1_host(ssl, name_.c_str()) == 1;
  }
  if (!ok) {
    *why = "TLS session setup: " + queue_text();
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_connect_state(ssl);
  return ssl;
}

TlsStep tls_handshake(SSL* ssl, std::string* why) {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl);
  if (r == 1) return TlsStep::kDone;
  int e = SSL_get_error(ssl, r);
  if (e == SSL_ERROR_WANT_READ) return TlsStep::kWantRead;
  if (e == SSL_ERROR_WANT_WRITE) return TlsStep::kWantWrite;
  long verify = SSL_get_verify_result(ssl);
  failed(ssl, r, "TLS handshake");
  *why = last_error;
  if (verify != X509_V_OK) *why += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
  return TlsStep::kFailed;
}

ssize_t tls_writev(SSL* ssl, const iovec* iov, int n, size_t bytes, uint8_t* stage, size_t cap) {
  size_t done = 0;
  int i = 0;
  size_t in = 0;  // bytes of iov[i] already staged
  while (done < bytes) {
    size_t len = 0;
    while (len < cap && i < n) {
      size_t take = std::min(cap - len, iov[i].iov_len - in);
      memcpy(stage + len, static_cast<const uint8_t*>(iov[i].iov_base) + in, take);
      len += take;
      in += take;
      if (in == iov[i].iov_len) {
        i++;
        in = 0;
      }
    }
    ERR_clear_error();
    int w = SSL_write(ssl, stage, int(len));
    if (w <= 0) {
      ssize_t r = failed(ssl, w, "TLS write");
      return done > 0 && errno == EAGAIN ? ssize_t(done) : r;
    }
    done += size_t(w);  // without partial writes: all of len
  }
  return ssize_t(done);
}

ssize_t tls_read(SSL* ssl, uint8_t* buf, size_t n) {
  ERR_clear_error();
  int r = SSL_read(ssl, buf, int(n));
  if (r > 0) return r;
  // close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) a bare close: the end of the stream.
  if (SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN) return 0;
  return failed(ssl, r, "TLS read");
}

bool tls_has_more(SSL* ssl) { return SSL_has_pending(ssl) == 1; }

const std::string& tls_error() { return last_error; }

void tls_close(SSL* ssl, bool notify) {
  if (ssl == nullptr) return;
  if (notify) {
    ERR_clear_error();
    SSL_shutdown(ssl);  // non-blocking: sends close_notify if the socket takes it, never waits for the reply
  }
  SSL_free(ssl);
}

}  // namespace loadgen
