// The server's side of authentication: the HELLO flags, the AUTH frame
// parser (decision order, every prefix asks for more, bounds), and the auth
// table (constant-time token match, ranges, certificate names). Links the
// system OpenSSL: this program does not run inside Node.
#include <cstring>
#include <string>
#include <vector>

#include "auth.h"
#include "check.h"
#include "codec.h"

using namespace msgs;
using namespace msgs::wire;
using Bytes = std::vector<uint8_t>;

static Bytes hello(uint8_t flags, uint32_t id) {
  Bytes b(kHelloSize);
  encode_hello(b.data(), id);
  b[5] = flags;
  return b;
}

static void test_hello_flags() {
  uint32_t id = 0;
  uint8_t flags = 0xff;
  ErrCode err{};
  Bytes h = hello(0, 7);
  CHECK(parse_hello_flags(h.data(), h.size(), &id, &flags, &err) == Parse::kOk);
  CHECK_EQ(id, 7u);
  CHECK_EQ(int(flags), 0);
  h = hello(kHelloFlagAuth, 9);
  CHECK(parse_hello_flags(h.data(), h.size(), &id, &flags, &err) == Parse::kOk);
  CHECK_EQ(int(flags), int(kHelloFlagAuth));
  // The strict parser the clients and the bench use still refuses any flag.
  CHECK(parse_hello(h.data(), h.size(), &id, &err) == Parse::kError);
  for (int bit = 1; bit < 8; bit++) {
    h = hello(uint8_t(1u << bit), 1);
    CHECK(parse_hello_flags(h.data(), 6, &id, &flags, &err) == Parse::kError);
    CHECK_EQ(int(err), int(kErrBadHello));
  }
}

static void test_auth_frame() {
  const std::string token = "s3cret-token";
  uint8_t buf[kMaxAuthFrameSize];
  size_t n = encode_auth(buf, kAuthToken, reinterpret_cast<const uint8_t*>(token.data()), token.size());
  CHECK_EQ(n, kLengthSize + 2 + token.size());
  Auth a{};
  ErrCode err{};
  size_t need = 0;
  CHECK(parse_auth(buf, n, &a, &err, &need) == Parse::kOk);
  CHECK_EQ(size_t(a.size), n);
  CHECK_EQ(int(a.mechanism), int(kAuthToken));
  CHECK_EQ(std::string(reinterpret_cast<const char*>(a.token), a.token_len), token);
  CHECK_EQ(need, n);
  int wrong = 0;
  for (size_t k = 0; k < n; k++)
    if (parse_auth(buf, k, &a, &err, &need) != Parse::kNeedMore) wrong++;
  CHECK_EQ(wrong, 0);
  // A MSG where the announced AUTH should be: UNAUTHENTICATED at its type byte.
  uint8_t m[5] = {0, 0, 0, 20, kTypeMsg};
  CHECK(parse_auth(m, sizeof m, &a, &err, &need) == Parse::kError);
  CHECK_EQ(int(err), int(kErrUnauthenticated));
  // Token lengths outside 1..1024: MALFORMED before any body is buffered.
  for (uint32_t len : {0u, 1u, 2u, uint32_t(2 + kMaxToken + 1), 0xffffffffu}) {
    uint8_t f[6] = {uint8_t(len >> 24), uint8_t(len >> 16), uint8_t(len >> 8), uint8_t(len), kTypeAuth, 1};
    CHECK(parse_auth(f, 5, &a, &err, &need) == Parse::kError);
    CHECK_EQ(int(err), int(kErrMalformed));
  }
  // The longest token fits exactly.
  Bytes longest(kMaxToken, 'x');
  n = encode_auth(buf, kAuthToken, longest.data(), longest.size());
  CHECK_EQ(n, kMaxAuthFrameSize);
  CHECK(parse_auth(buf, n, &a, &err, &need) == Parse::kOk);
  CHECK_EQ(size_t(a.token_len), kMaxToken);
  CHECK_EQ(std::string(err_code_name(kErrUnauthenticated)), "UNAUTHENTICATED");
  CHECK_EQ(std::string(err_code_name(kErrForbidden)), "FORBIDDEN");
}

static Principal token_principal(const char* name, const std::string& token, std::vector<std::pair<uint32_t, uint32_t>> ids) {
  Principal p;
  p.name = name;
  p.token = true;
  p.sha256 = sha256(reinterpret_cast<const uint8_t*>(token.data()), token.size());
  p.client_ids = std::move(ids);
  return p;
}

static void test_table() {
  // SHA-256("abc"), the FIPS 180-2 example.
  auto h = sha256(reinterpret_cast<const uint8_t*>("abc"), 3);
  CHECK_EQ(int(h[0]), 0xba);
  CHECK_EQ(int(h[31]), 0xad);
  std::vector<Principal> ps;
  ps.push_back(token_principal("alice", "A-token", {{1, 10}}));
  ps.push_back(token_principal("bob", "B-token", {{100, 110}, {200, 200}}));
  Principal cert;
  cert.name = "client-a";
  cert.client_ids = {{50, 60}};
  ps.push_back(cert);
  AuthTable t(std::move(ps), true);
  auto tok = [&](const std::string& s) { return t.check_token(reinterpret_cast<const uint8_t*>(s.data()), s.size()); };
  CHECK(tok("A-token") != nullptr && tok("A-token")->name == "alice");
  CHECK(tok("B-token") != nullptr && tok("B-token")->name == "bob");
  CHECK(tok("A-tokeN") == nullptr);
  CHECK(tok("") == nullptr);
  // A certificate principal is never matched by a token (its hash is zeros).
  Bytes zeros(1, 0);
  CHECK(t.check_token(zeros.data(), 0) == nullptr);
  CHECK(tok("A-token")->allows(10));
  CHECK(!tok("A-token")->allows(11));
  CHECK(tok("B-token")->allows(200));
  CHECK(!tok("B-token")->allows(199));
  CHECK(t.find_certificate("client-a") != nullptr);
  CHECK(t.find_certificate("alice") == nullptr);  // token holders are not certificate names
  CHECK(t.find_certificate("client-b") == nullptr);
  CHECK(t.claimed(5) && t.claimed(55) && t.claimed(200));
  CHECK(!t.claimed(11) && !t.claimed(0xffffffffu));
  CHECK(t.certificate_map());
}

int main() {
  test_hello_flags();
  test_auth_frame();
  test_table();
  return check_summary("test_auth");
}
