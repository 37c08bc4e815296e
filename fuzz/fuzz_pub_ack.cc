// fuzz_pub_ack: msgs::parse_pub_ack (native/pub_ack.h), the JetStream sink's
// reading of a publish answer, which comes from the network.
//
// Input: the reply's bytes, in a buffer of exactly that size (ASan catches a
// read past the end).
// Checks:
//  - empty: no responders; nothing else is;
//  - stored or duplicate: no "error": in the reply, and a "seq": in it;
//  - duplicate: a "duplicate": in it too;
//  - the same bytes give the same answer.
#include <cstring>
#include <vector>

#include "fuzz_common.h"
#include "pub_ack.h"

using msgs::PubAck;

namespace {

bool has(const std::vector<char>& b, const char* s) {
  return !b.empty() && memmem(b.data(), b.size(), s, strlen(s)) != nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<char> buf(data, data + size);
  PubAck a = msgs::parse_pub_ack(buf.data(), buf.size());
  FUZZ_CHECK((a == PubAck::kNoResponders) == (size == 0));
  if (a == PubAck::kStored || a == PubAck::kDuplicate) {
    FUZZ_CHECK(!has(buf, "\"error\":"));
    FUZZ_CHECK(has(buf, "\"seq\":"));
  }
  if (a == PubAck::kDuplicate) FUZZ_CHECK(has(buf, "\"duplicate\":"));
  FUZZ_CHECK(msgs::parse_pub_ack(buf.data(), buf.size()) == a);
  return 0;
}
