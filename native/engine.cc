#include "engine.h"

#include <csignal>
#include <stdexcept>

#include "system_error.h"
#include "time_util.h"

namespace msgs {

Engine::Engine(Config cfg, Events::Sink events) : cfg_(std::move(cfg)), events_(std::move(events)) {}

Engine::~Engine() {
  stop(0);
  teardown();
}

// The wiring: every component gets what it uses, here and nowhere else.
void Engine::build() {
  std::vector<ServiceLoop*> loops;
  for (uint32_t i = 0; i < cfg_.service_threads; i++) {
    services_.push_back(std::make_unique<ServiceLoop>(cfg_, live_, i, queue_, events_, open_connections_,
                                                      credentials_, partial_bytes_));
    route_.add_owner(services_.back()->completions(), services_.back()->wake());
    loops.push_back(services_.back().get());
  }
  listener_ = std::make_unique<Listener>(cfg_, live_, loops, events_, open_connections_);
  // In the order they store a flush: the file first (what it could not
  // store goes nowhere else), then the hooks, which see every stored
  // message in its taking order, then JetStream, whose acknowledgements
  // settle statuses while it publishes.
  std::vector<Sink*> sinks;
  if (cfg_.file.enabled) {
    // The interval sync and the cache drops run beside the writer; a sync
    // the ACKs wait for runs on it.
    if ((cfg_.file.fsync == FsyncPolicy::kInterval && !syncs_each_flush(cfg_)) || cfg_.file.drop_cache) {
      background_sync_ = std::make_unique<BackgroundSync>(writer_wake_);
    }
    log_ = std::make_unique<LogFile>(cfg_.file, live_, events_, io_errors_, background_sync_.get());
    file_sink_ = std::make_unique<FileSink>(cfg_, *log_, live_, queue_, events_, writer_wake_);
    sinks.push_back(file_sink_.get());
  }
  hook_feed_ = std::make_unique<HookFeed>(hooks_, events_);
  sinks.push_back(hook_feed_.get());
  if (cfg_.jetstream.enabled) {
    jetstream_ = make_jetstream_sink(cfg_, events_, writer_wake_);
    sinks.push_back(jetstream_.get());
    if (cfg_.jetstream.while_not_ready == WhileNotReady::kRefuse) listener_->refuse_until_ready(jetstream_.get());
  }
  writer_ = std::make_unique<Writer>(cfg_.batch, queue_, route_, writer_wake_, sinks);
}

// In the reverse order of build(): nothing is freed while something that
// refers to it still exists.
void Engine::teardown() {
  writer_.reset();
  hook_feed_.reset();
  jetstream_.reset();
  file_sink_.reset();
  log_.reset();
  background_sync_.reset();
  listener_.reset();
  services_.clear();
}

void Engine::start(std::vector<Principal> principals) {
  if (started_) throw std::runtime_error("an engine starts once");
  started_ = true;
  // The credentials first: a bad certificate fails listen() before the port
  // is bound or the log opened.
  std::string error;
  std::shared_ptr<const Security> sec = make_security(cfg_, std::move(principals), &error);
  if (!sec) {
    SystemError e("cannot use the TLS configuration: " + error);
    e.code = "ERR_MSGS_TLS_FILES";
    throw e;
  }
  credentials_.set(std::move(sec));
  // A file-size limit (RLIMIT_FSIZE) must turn into EFBIG, answered with
  // WRITE_FAILED, not kill the whole process. Only the default action is
  // replaced; a handler someone installed stays.
  struct sigaction old;
  if (sigaction(SIGXFSZ, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) signal(SIGXFSZ, SIG_IGN);
  build();
  // Bind and open first, on the caller's thread, so their errors reach the
  // caller as exceptions; only then start threads.
  try {
    listener_->bind();
    if (file_sink_) file_sink_->open();
    if (jetstream_) jetstream_->open();
  } catch (...) {
    teardown();
    throw;
  }
  // From here on stop() knows how to wind down whatever started, also when a
  // later thread fails to start.
  running_ = true;
  try {
    if (background_sync_) background_sync_->start();
    writer_->start(file_sink_ ? file_sink_->last_seq() : 0);
    for (auto& s : services_) s->start();
    listener_->start();
  } catch (...) {
    stop(0);
    teardown();
    throw;
  }
}

void Engine::reconfigure(const Config& cfg) {
  live_.apply(cfg);
  if (running_) writer_wake_.signal();
}

std::string Engine::reload(std::vector<Principal> principals) {
  std::string error;
  std::shared_ptr<const Security> sec = make_security(cfg_, std::move(principals), &error);
  if (!sec) {
    reload_failures_.add();
    return error;
  }
  credentials_.set(std::move(sec));
  reloads_.add();
  return "";
}

void Engine::segment_archived(const std::string& path) {
  if (running_ && file_sink_) file_sink_->archived(path);
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
  writer_->join();  // its drain waited for (and applied) the background job in flight
  if (background_sync_) background_sync_->stop();
  running_ = false;
  return report;
}

}  // namespace msgs
