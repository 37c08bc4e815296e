// Who may write which client ids: the principals (token holders from
// auth.tokensFile, certificate names from auth.principals) with their
// client-id ranges, and the checks made at HELLO. lib parses the tokens file
// and hands over named fields only (addon.cc); tokens themselves are never
// stored, only their SHA-256.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "config.h"

namespace msgs {

class TlsContext;

struct Principal {
  std::string name;
  bool token = false;                          // a token holder (else a certificate name)
  std::array<uint8_t, 32> sha256{};            // of the token, when `token`
  std::vector<std::pair<uint32_t, uint32_t>> client_ids;  // inclusive ranges

  bool allows(uint32_t id) const;
};

class AuthTable {
 public:
  AuthTable() = default;
  // `principals`: every token holder and certificate name, as lib loaded them.
  // `certificate_map`: auth.principals was given (a certificate name must be
  // listed); without it a verified certificate may use any client id.
  AuthTable(std::vector<Principal> principals, bool certificate_map);

  // The token holder whose hash matches SHA-256(token), or null. Compares
  // with every entry in constant time, never stopping early, so the time
  // does not tell how close a guess was or which entry it matched.
  const Principal* check_token(const uint8_t* token, size_t len) const;
  // The certificate principal named `cn` (the client certificate's subject
  // CN), or null when auth.principals does not list it.
  const Principal* find_certificate(const std::string& cn) const;
  bool certificate_map() const { return certificate_map_; }
  // True when some principal's ranges hold `id`: an unauthenticated
  // connection may not use it (auth configured, not required).
  bool claimed(uint32_t id) const;

 private:
  std::vector<Principal> principals_;
  bool certificate_map_ = false;
};

// SHA-256 of `len` bytes (OpenSSL's, from the host process).
std::array<uint8_t, 32> sha256(const uint8_t* p, size_t len);

// The credentials new connections use: the TLS context (null without tls)
// and the auth table. One immutable snapshot; reload() builds a new one.
struct Security {
  std::unique_ptr<TlsContext> tls;  // ctx() non-null when tls is on
  AuthTable auth;
  bool auth_enabled = false;
  bool auth_required = false;
  ~Security();
};

// The current snapshot, swapped by the Node thread (reload) and taken by a
// service thread once per new connection (not per message): a mutex around a
// shared_ptr copy is cheap at that rate and makes the handover obviously
// safe. A connection keeps the snapshot it started with, so its SSL_CTX and
// principal outlive a reload.
class Credentials {
 public:
  std::shared_ptr<const Security> get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }
  void set(std::shared_ptr<const Security> s) {
    std::lock_guard<std::mutex> lock(mu_);
    current_.swap(s);
  }  // the old snapshot is released outside the lock (s goes out of scope after it)

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Security> current_;
};

// Builds a snapshot from the config's files and the loaded principals.
// Returns null and sets *error (naming the file and the reason) on failure.
std::shared_ptr<const Security> make_security(const Config& cfg, std::vector<Principal> principals,
                                              std::string* error);

}  // namespace msgs
