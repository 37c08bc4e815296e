// The load engine behind msgbench: a run, from its config to its result. See
// loadgen.h for the shape and the files.
//
// Every byte it sends and every frame it reads goes through the server's own
// codec (native/codec.h, the msgs_format library): HELLO, MSG headers and
// legacy structs are written by its encoders (frames.h), HELLO_OK, ACK and
// ERR read by its parsers (recv.h), all of them checked by the golden
// vectors (test/vectors/).
#include "loadgen.h"

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <thread>

#include "clock.h"
#include "frames.h"
#include "tls.h"
#include "worker.h"

namespace loadgen {
namespace {

using Workers = std::vector<std::unique_ptr<Worker>>;

constexpr double kMaxSlotBytes = 4.0 * 1024 * 1024 * 1024;  // all send slots of a run
constexpr uint64_t kLegacyMaxMessages = 0xffffffffull;     // u32 msg_id
constexpr uint64_t kV1MaxMessages = 1ull << 62;            // far below the u64 msg_id's end
constexpr int kProgressPollMs = 5;  // how often the caller's thread looks for finished workers

void check_protocol_limits(const LoadConfig& cfg) {
  if (cfg.protocol == Protocol::kLegacy) {
    if (cfg.payload_max > kLegacyTextMax)
      throw std::runtime_error("legacy payload is NUL-terminated text in 1024 bytes: at most 1023");
    if (cfg.name.size() > kLegacyNameMax) throw std::runtime_error("legacy name: at most 127 bytes");
  } else {
    if (cfg.name.size() > kV1NameMax) throw std::runtime_error("name: at most 255 bytes");
    if (cfg.payload_max > kMaxPayload) throw std::runtime_error("payload: at most 64 MiB");
  }
  if (cfg.protocol == Protocol::kLegacy && (cfg.tls || !cfg.token.empty()))
    throw std::runtime_error("the legacy protocol has neither TLS nor tokens: use v1");
  if (cfg.token.size() > kMaxToken) throw std::runtime_error("token: at most 1024 bytes");
  if (cfg.tls_cert.empty() != cfg.tls_key.empty()) throw std::runtime_error("TLS: give both the certificate and its key");
}

// The config the run uses: cfg_in checked (std::runtime_error says what is
// wrong), with threads in 1..connections.
LoadConfig checked(const LoadConfig& cfg_in) {
  LoadConfig cfg = cfg_in;
  if (cfg.connections == 0) throw std::runtime_error("connections must be at least 1");
  if (cfg.window == 0) throw std::runtime_error("window must be at least 1");
  if (cfg.messages == 0 && cfg.duration_ms == 0) throw std::runtime_error("give messages per connection or a duration");
  if (cfg.payload_min > cfg.payload_max) throw std::runtime_error("payload range: min is larger than max");
  if (cfg.threads == 0) cfg.threads = 1;
  if (cfg.threads > cfg.connections) cfg.threads = cfg.connections;
  check_protocol_limits(cfg);
  uint64_t stride = cfg.protocol == Protocol::kV1 ? kV1Header + cfg.name.size() + cfg.payload_max : kLegacyFrame;
  if (double(stride) * cfg.window * cfg.connections > kMaxSlotBytes)
    throw std::runtime_error("connections x window x frame size is over 4 GiB of send slots; lower one of them");
  if (cfg.messages && cfg.messages > (cfg.protocol == Protocol::kLegacy ? kLegacyMaxMessages : kV1MaxMessages))
    throw std::runtime_error("too many messages per connection for the id space");
  return cfg;
}

// One thread per worker. A worker that throws is marked finished, its error kept for the caller.
std::vector<std::thread> start_threads(Workers& workers, std::vector<std::string>* errors) {
  std::vector<std::thread> threads;
  for (size_t t = 0; t < workers.size(); t++) {
    threads.emplace_back([&workers, errors, t] {
      try {
        workers[t]->run();
      } catch (const std::exception& e) {
        (*errors)[t] = e.what();
        // release: pairs with the acquire in all_finished() (stats.h).
        workers[t]->live.finished.store(true, std::memory_order_release);
      }
    });
  }
  return threads;
}

bool all_finished(const Workers& workers) {
  for (auto& w : workers)
    // acquire: pairs with the worker's release store (stats.h).
    if (!w->live.finished.load(std::memory_order_acquire)) return false;
  return true;
}

// Waits for the workers to finish, calling `progress` every interval_ms meanwhile.
void watch(const Workers& workers, int64_t t0, uint32_t interval_ms, const ProgressFn& progress) {
  const bool report = progress && interval_ms > 0;
  int64_t next_progress = t0 + ms_to_ns(interval_ms);
  while (!all_finished(workers)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(kProgressPollMs));
    int64_t now = now_ns();
    if (!report || now < next_progress) continue;
    next_progress = now + ms_to_ns(interval_ms);
    Progress p;
    p.elapsed_ms = ns_to_ms(now - t0);
    for (auto& w : workers) w->live.add_to(&p);
    progress(p);
  }
}

// The workers' figures added up (after join).
LoadResult collect(const Workers& workers, Shared& sh) {
  LoadResult r;
  LatencyHistogram latency;
  int64_t end = sh.t0;
  for (auto& w : workers) {
    latency.merge(w->stats.latency);
    w->stats.add_to(&r);
    end = std::max(end, w->stats.end_ns);
  }
  set_rates(&r, end - sh.t0);
  r.latency = summarize(latency);
  r.error_samples = sh.samples.take();
  return r;
}

}  // namespace

LoadResult LoadGen::run(const LoadConfig& cfg_in, const ProgressFn& progress) {
  const LoadConfig cfg = checked(cfg_in);
  Shared sh;
  sh.cfg = &cfg;
  sh.addr = resolve(cfg.host, cfg.port);
  std::unique_ptr<TlsContext> tls;
  if (cfg.tls) tls.reset(new TlsContext(cfg));  // throws naming a file it cannot use
  sh.tls = tls.get();
  Workers workers;
  for (uint32_t t = 0; t < cfg.threads; t++) workers.emplace_back(new Worker(sh, t, cfg.threads));
  sh.t0 = now_ns();
  std::vector<std::string> thread_errors(cfg.threads);
  std::vector<std::thread> threads = start_threads(workers, &thread_errors);
  watch(workers, sh.t0, cfg.progress_interval_ms, progress);
  for (auto& th : threads) th.join();
  for (auto& e : thread_errors)
    if (!e.empty()) throw std::runtime_error(e);
  return collect(workers, sh);
}

}  // namespace loadgen
