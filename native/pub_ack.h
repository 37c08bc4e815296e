// What a JetStream publish acknowledgement says, read from its JSON body.
// nats-server writes the success replies by hand:
//   {"stream":"S", "seq":5}                       stored
//   {"stream":"S", "seq":5,"duplicate": true}     a copy was stored before
// and errors as {"stream":"S","error":{"code":503,"err_code":10077,...}}.
#pragma once
#include <cstddef>

namespace msgs {

enum class PubAck {
  kNoResponders,  // an empty reply: no stream listens on the subject
  kStored,        // stored now, at a stream sequence
  kDuplicate,     // the duplicate window holds an earlier copy, at a stream sequence
  kInProcess,     // an earlier copy with this id is still being proposed: not stored yet, maybe never
  kUnavailable,   // a 503 error: no quorum, an election; it can pass
  kRefused,       // any other error, or a reply that is none of the above
};

PubAck parse_pub_ack(const char* data, size_t len);

}  // namespace msgs
