#include "engine.h"

#include <csignal>
#include <stdexcept>

#include "file_writer.h"
#include "listener.h"
#include "service_loop.h"
#include "time_util.h"

namespace msgs {

Engine::Engine(EngineConfig cfg, EventSink sink) : cfg_(std::move(cfg)), sink_(std::move(sink)) {}

Engine::~Engine() { stop(0); }

uint16_t Engine::port() const { return listener_ ? listener_->port() : 0; }

void Engine::start() {
  if (running_) throw std::runtime_error("server is already running");
  // A file-size limit (RLIMIT_FSIZE) must turn into EFBIG, answered with
  // WRITE_FAILED, not kill the whole process. Only the default action is
  // replaced; a handler someone installed stays.
  struct sigaction old;
  if (sigaction(SIGXFSZ, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) signal(SIGXFSZ, SIG_IGN);
  queue_bytes_.store(0, std::memory_order_relaxed);
  queue_batches_.store(0, std::memory_order_relaxed);
  open_connections_.store(0, std::memory_order_relaxed);
  // Bind and open first, on the caller's thread, so their errors reach the
  // caller as exceptions; only then start threads.
  auto listener = std::make_unique<Listener>(*this);
  listener->bind();
  std::vector<std::unique_ptr<ServiceLoop>> services;
  for (uint32_t i = 0; i < cfg_.service_threads; i++) services.push_back(std::make_unique<ServiceLoop>(*this, i));
  services_ = std::move(services);
  listener_ = std::move(listener);
  writer_ = std::make_unique<FileWriter>(*this);
  try {
    writer_->open();
  } catch (...) {
    writer_.reset();
    services_.clear();
    listener_.reset();
    throw;
  }
  writer_->start();
  for (auto& s : services_) s->start();
  listener_->start();
  running_ = true;
}

StopReport Engine::stop(uint32_t timeout_ms) {
  StopReport report;
  if (!running_) return report;
  listener_->stop();
  uint64_t deadline = monotonic_ms() + timeout_ms;
  for (auto& s : services_) s->request_drain(deadline);
  for (auto& s : services_) {
    s->join();
    report.unacked_closed += s->unacked_closed();
    report.unacked_messages += s->unacked_messages();
  }
  report.timed_out = monotonic_ms() > deadline;
  hooks_->shutdown();  // a writer blocked on slow hooks must finish the drain
  writer_->request_stop();
  writer_->join();
  running_ = false;
  return report;
}

void Engine::wake_paused_services() {
  for (auto& s : services_) {
    if (s->paused()) s->notify();
  }
}

void Engine::emit(EngineEvent&& ev) {
  if (sink_) sink_(std::move(ev));
}

void Engine::log(const char* level, const std::string& message) {
  EngineEvent ev;
  ev.type = "log";
  ev.level = level;
  ev.message = message;
  emit(std::move(ev));
}

}  // namespace msgs
