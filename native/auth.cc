#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "tls.h"

namespace msgs {

bool Principal::allows(uint32_t id) const {
  for (const auto& r : client_ids) {
    if (id >= r.first && id <= r.second) return true;
  }
  return false;
}

AuthTable::AuthTable(std::vector<Principal> principals, bool certificate_map)
    : principals_(std::move(principals)), certificate_map_(certificate_map) {}

std::array<uint8_t, 32> sha256(const uint8_t* p, size_t len) {
  std::array<uint8_t, 32> out{};
  unsigned int n = 0;
  EVP_Digest(p, len, out.data(), &n, EVP_sha256(), nullptr);
  return out;
}

const Principal* AuthTable::check_token(const uint8_t* token, size_t len) const {
  std::array<uint8_t, 32> h = sha256(token, len);
  const Principal* found = nullptr;
  for (const Principal& p : principals_) {
    if (!p.token) continue;
    // Every entry is compared; the branch below only picks the result.
    bool equal = CRYPTO_memcmp(h.data(), p.sha256.data(), h.size()) == 0;
    if (equal && !found) found = &p;
  }
  return found;
}

const Principal* AuthTable::find_certificate(const std::string& cn) const {
  for (const Principal& p : principals_) {
    if (!p.token && p.name == cn) return &p;
  }
  return nullptr;
}

bool AuthTable::claimed(uint32_t id) const {
  for (const Principal& p : principals_) {
    if (p.allows(id)) return true;
  }
  return false;
}

Security::~Security() = default;

std::shared_ptr<const Security> make_security(const Config& cfg, std::vector<Principal> principals,
                                              std::string* error) {
  auto s = std::make_shared<Security>();
  if (cfg.tls.enabled) {
    s->tls = std::make_unique<TlsContext>(cfg.tls);
    if (!s->tls->ctx()) {
      *error = s->tls->error();
      return nullptr;
    }
  }
  s->auth_enabled = cfg.auth.enabled;
  s->auth_required = cfg.auth.enabled && cfg.auth.required;
  s->auth = AuthTable(std::move(principals), cfg.auth.enabled && cfg.auth.certificate_map);
  return s;
}

}  // namespace msgs
