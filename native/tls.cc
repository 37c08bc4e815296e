#include "tls.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <cstring>
#include <fstream>

namespace msgs {

namespace {
// An encrypted key must not make OpenSSL ask for a passphrase on the
// terminal (that would block listen() and reload): no passphrase is given,
// and loading the key fails.
int no_passphrase(char*, int, int, void*) { return 0; }

// Largest client Certificate message accepted (a client certificate chain).
// OpenSSL 3 applies it to that message only; the ClientHello has its own
// bound (CLIENT_HELLO_MAX_LENGTH), charged by the service loop.
constexpr long kMaxCertList = 16 * 1024;

// A PEM key protected by a passphrase: PKCS#8 ("BEGIN ENCRYPTED PRIVATE
// KEY") or the traditional form ("Proc-Type: 4,ENCRYPTED").
bool key_is_encrypted(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.find("ENCRYPTED") != std::string::npos) return true;
  }
  return false;
}
}  // namespace

std::string tls_error_reason() {
  unsigned long e = ERR_peek_last_error();
  std::string out;
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out = buf;
  }
  ERR_clear_error();
  return out.empty() ? "unknown TLS error" : out;
}

TlsContext::TlsContext(const TlsConfig& cfg) {
  ERR_clear_error();
  ctx_ = SSL_CTX_new(TLS_server_method());
  if (!ctx_) {
    fail("cannot create a TLS context");
    return;
  }
  // Buffers are released while a connection is idle (memory per idle TLS
  // connection); partial writes let write() report progress like send();
  // the buffer may move between retries (ours grows with realloc).
  SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                             SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // No renegotiation (TLS 1.2): a read never has to wait for a write of ours
  // beyond what OpenSSL queues itself. No session cache across reloads.
  SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx_, 0);  // no resumption: a handshake writes nothing after Finished
  // Read ahead into a 64 KiB buffer: one recv() takes several records
  // instead of two recv() calls per record (header, then body). What it
  // holds beyond the record being read is what TlsSession::has_pending()
  // reports, and the service loop comes back for it without epoll.
  SSL_CTX_set_read_ahead(ctx_, 1);
  SSL_CTX_set_default_read_buffer_len(ctx_, 64 * 1024);
  SSL_CTX_set_max_cert_list(ctx_, kMaxCertList);
  SSL_CTX_set_default_passwd_cb(ctx_, no_passphrase);
  int min = cfg.min_version == TlsVersion::kTls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (!SSL_CTX_set_min_proto_version(ctx_, min)) {
    fail("tls.minVersion");
    return;
  }
  if (!cfg.ciphers.empty() && !SSL_CTX_set_cipher_list(ctx_, cfg.ciphers.c_str())) {
    fail("tls.ciphers '" + cfg.ciphers + "'");
    return;
  }
  if (!cfg.ciphersuites.empty() && !SSL_CTX_set_ciphersuites(ctx_, cfg.ciphersuites.c_str())) {
    fail("tls.ciphersuites '" + cfg.ciphersuites + "'");
    return;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx_, cfg.cert.c_str()) != 1) {
    fail("tls.cert " + cfg.cert);
    return;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx_, cfg.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (key_is_encrypted(cfg.key)) {
      ERR_clear_error();
      error_ = "tls.key " + cfg.key + " is encrypted: give an unencrypted key";
      SSL_CTX_free(ctx_);
      ctx_ = nullptr;
      return;
    }
    fail("tls.key " + cfg.key);
    return;
  }
  if (SSL_CTX_check_private_key(ctx_) != 1) {
    fail("tls.key " + cfg.key + " does not match tls.cert " + cfg.cert);
    return;
  }
  if (!cfg.ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx_, cfg.ca.c_str(), nullptr) != 1) {
      fail("tls.ca " + cfg.ca);
      return;
    }
    // The CA names the server asks client certificates of.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(cfg.ca.c_str());
    if (names) SSL_CTX_set_client_CA_list(ctx_, names);
  }
  int verify = SSL_VERIFY_NONE;
  if (cfg.client_auth == ClientAuth::kRequest) verify = SSL_VERIFY_PEER;
  if (cfg.client_auth == ClientAuth::kRequire) verify = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx_, verify, nullptr);
}

TlsContext::~TlsContext() {
  if (ctx_) SSL_CTX_free(ctx_);
}

bool TlsContext::fail(const std::string& what) {
  error_ = what + ": " + tls_error_reason();
  if (ctx_) SSL_CTX_free(ctx_);
  ctx_ = nullptr;
  return false;
}

TlsSession::TlsSession(SSL_CTX* ctx, int fd) {
  ssl_ = SSL_new(ctx);
  if (!ssl_) return;
  SSL_set_fd(ssl_, fd);
  SSL_set_accept_state(ssl_);
  // Counts for holds_partial_record(): bytes taken from the socket, and the
  // size of every record whose header OpenSSL parsed.
  BIO* rbio = SSL_get_rbio(ssl_);
  BIO_set_callback_arg(rbio, reinterpret_cast<char*>(this));
  BIO_set_callback_ex(rbio, on_bio);
  SSL_set_msg_callback(ssl_, on_record);
  SSL_set_msg_callback_arg(ssl_, this);
}

long TlsSession::on_bio(BIO* b, int oper, const char*, size_t, int, long, int ret, size_t* processed) {
  if (oper == (BIO_CB_READ | BIO_CB_RETURN) && ret > 0 && processed) {
    reinterpret_cast<TlsSession*>(BIO_get_callback_arg(b))->raw_in_ += *processed;
  }
  return ret;
}

void TlsSession::on_record(int write_p, int, int content_type, const void* buf, size_t len, SSL*, void* arg) {
  if (write_p || content_type != SSL3_RT_HEADER || len < 5) return;
  const uint8_t* h = static_cast<const uint8_t*>(buf);
  static_cast<TlsSession*>(arg)->records_in_ += 5 + ((size_t{h[3]} << 8) | h[4]);
}

TlsSession::~TlsSession() {
  if (ssl_) SSL_free(ssl_);
}

TlsIo TlsSession::result(int ret) {
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ:
      return TlsIo::kWantRead;
    case SSL_ERROR_WANT_WRITE:
      return TlsIo::kWantWrite;
    case SSL_ERROR_ZERO_RETURN:
      return TlsIo::kClosed;
    case SSL_ERROR_SYSCALL:
      // EOF without close_notify, or a socket error: both end the connection.
      if (ERR_peek_last_error() == 0) return TlsIo::kClosed;
      return TlsIo::kError;
    default:
      return TlsIo::kError;
  }
}

TlsIo TlsSession::handshake() {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  return r == 1 ? TlsIo::kOk : result(r);
}

TlsIo TlsSession::read(uint8_t* buf, size_t len, size_t* n) {
  *n = 0;
  while (*n < len) {
    size_t got = 0;
    ERR_clear_error();
    int r = SSL_read_ex(ssl_, buf + *n, len - *n, &got);
    if (r != 1) return result(r);
    *n += got;
  }
  return TlsIo::kOk;
}

TlsIo TlsSession::write(const uint8_t* buf, size_t len, size_t* n) {
  *n = 0;
  while (*n < len) {
    size_t put = 0;
    ERR_clear_error();
    int r = SSL_write_ex(ssl_, buf + *n, len - *n, &put);
    if (r != 1) return result(r);
    *n += put;
  }
  return TlsIo::kOk;
}

void TlsSession::shutdown() {
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

bool TlsSession::peer_common_name(std::string* cn) const {
  cn->clear();
  if (SSL_get_verify_result(ssl_) != X509_V_OK) return true;
  X509* cert = SSL_get1_peer_certificate(ssl_);
  if (!cert) return true;
  bool ok = true;
  const X509_NAME* name = X509_get_subject_name(cert);
  int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (at >= 0) {
    // Exactly one CN, taken byte for byte: a second CN, an embedded NUL or
    // a CN past kMaxCommonName would make the principal ambiguous.
    const ASN1_STRING* v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at));
    const unsigned char* p = ASN1_STRING_get0_data(v);
    int len = ASN1_STRING_length(v);
    if (X509_NAME_get_index_by_NID(name, NID_commonName, at) >= 0 || len <= 0 ||
        static_cast<size_t>(len) > kMaxCommonName || memchr(p, 0, static_cast<size_t>(len)) != nullptr) {
      ok = false;
    } else {
      cn->assign(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
    }
  }
  X509_free(cert);
  return ok;
}

}  // namespace msgs
