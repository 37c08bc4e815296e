// The JetStream sink of a build without nats.h (libnats-dev): it exists so
// that the writer and the binding need no #if, and refuses to start.
#include <stdexcept>

#include "jetstream_sink.h"

namespace msgs {

namespace {

const char kNotBuilt[] =
    "jetstream is not in this build: nats.h was not found when the addon was compiled "
    "(apt-get install libnats-dev, then npm rebuild msgserver)";

class NoJetStreamSink final : public JetStreamSink {
 public:
  void open() override { throw std::runtime_error(kNotBuilt); }
  void store(Flush&) override {}
  bool connected() const override { return false; }
  bool ready() const override { return false; }
};

}  // namespace

std::unique_ptr<JetStreamSink> make_jetstream_sink(const Config&, Events&, Notifier&) {
  return std::make_unique<NoJetStreamSink>();
}

std::string nats_availability() { return kNotBuilt; }

}  // namespace msgs
