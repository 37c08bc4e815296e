// The JetStream sink (docs/scale-out.md): each record the writer stores is
// also published to a NATS JetStream stream. The build chooses the
// implementation: jetstream_nats.cc where nats.h was found (libnats itself is
// loaded with dlopen when the sink starts), jetstream_none.cc otherwise,
// whose sink refuses to start with a message naming the package to install.
#pragma once
#include <memory>
#include <string>

#include "config.h"
#include "events.h"
#include "notifier.h"
#include "sink.h"
#include "stats.h"

namespace msgs {

class JetStreamSink : public Sink {
 public:
  bool reads_records() const override { return true; }  // one NATS message per record
  // acquire: the connection state is set by libnats's threads.
  virtual bool connected() const = 0;
  // Connected, the stream exists and it answered a publish (a probe that
  // JetStream refuses without storing: see jetstream_nats.cc). Any thread.
  virtual bool ready() const = 0;
  JetStreamStats stats;
};

// The sink for cfg.jetstream. `writer_wake` wakes the writer thread when an
// acknowledgement arrives. Nothing connects before open().
std::unique_ptr<JetStreamSink> make_jetstream_sink(const Config& cfg, Events& events, Notifier& writer_wake);

// "available", or why the jetstream option cannot work here (this build has
// no JetStream support, or libnats is missing): loads libnats on first call.
std::string nats_availability();

}  // namespace msgs
