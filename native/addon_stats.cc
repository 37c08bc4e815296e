// The one stats table. Each row names a counter or gauge once: its field in
// stats(), its Prometheus name and help (lib's metrics read them from
// statsSchema), and how to read it from the engine. Grouped fields (ACKs by
// status, ERR frames by code, I/O errors by kind, the latency histogram,
// per-thread counters) follow the table.
#include <cstring>

#include "addon.h"

namespace msgs::binding {

namespace {

enum class Kind { kCounter, kGauge };

struct StatRow {
  const char* name;     // field of stats() (in `section` when set)
  const char* metric;   // Prometheus name, after the prefix
  Kind kind;
  const char* help;
  uint64_t (*read)(const Engine& e);
  const char* section;  // nullptr, or "jetstream": present only with the sink
};

template <typename F>
uint64_t sum_services(const Engine& e, F field) {
  uint64_t n = 0;
  for (const auto& s : e.services()) n += field(s->stats).get();
  return n;
}

#define SVC(field) [](const Engine& e) { return sum_services(e, [](const ServiceStats& s) -> const Counter& { return s.field; }); }
#define LISTENER(field) [](const Engine& e) { return e.listener_stats().field.get(); }
#define WRITER(field) [](const Engine& e) { return e.writer_stats().field.get(); }
#define LOG(field) [](const Engine& e) { return e.log_stats().field.get(); }
#define SINK(field) [](const Engine& e) { return e.file_sink_stats().field.get(); }
#define HOOKS(field) [](const Engine& e) { return e.hook_channel().field.get(); }
#define JS(field) [](const Engine& e) { return e.jetstream()->stats.field.get(); }

const StatRow kStats[] = {
    {"connections", "connections_open", Kind::kGauge, "Connections open now.", SVC(connections), nullptr},
    {"connectionsAccepted", "connections_accepted_total", Kind::kCounter, "Connections accepted.", LISTENER(accepted), nullptr},
    {"connectionsRejected", "connections_rejected_total", Kind::kCounter,
     "Connections refused with ERR BUSY (over limits.maxConnections).", LISTENER(rejected_busy), nullptr},
    {"acceptErrors", "accept_errors_total", Kind::kCounter, "accept() calls that failed (e.g. out of file descriptors).",
     LISTENER(accept_errors), nullptr},
    {"loopErrors", "event_loop_errors_total", Kind::kCounter,
     "Event-loop polls (epoll_wait) of the listener and service threads that failed; each thread polls again 10 ms later.",
     [](const Engine& e) { return LISTENER(loop_errors)(e) + SVC(loop_errors)(e); }, nullptr},
    {"messagesIn", "messages_in_total", Kind::kCounter, "Messages received and parsed.", SVC(messages_in), nullptr},
    {"bytesIn", "received_bytes_total", Kind::kCounter, "Bytes received from clients.", SVC(bytes_in), nullptr},
    {"ackFrames", "ack_frames_total", Kind::kCounter, "ACK frames sent (one frame can acknowledge several messages).",
     SVC(ack_frames), nullptr},
    {"batchesPushed", "batches_pushed_total", Kind::kCounter,
     "Batches of messages handed from the service threads to the writer.", SVC(batches_pushed), nullptr},
    {"readCalls", "read_calls_total", Kind::kCounter, "Socket reads by the service threads.", SVC(read_calls), nullptr},
    {"pausedForQueue", "paused_for_queue_total", Kind::kCounter,
     "Times a service thread stopped reading because the writer queue was full.", SVC(paused), nullptr},
    {"inflightPauses", "inflight_pauses_total", Kind::kCounter,
     "Times a connection stopped reading until ACKs caught up (limits.maxInflightBytesPerConnection).",
     SVC(inflight_pauses), nullptr},
    {"tlsHandshakes", "tls_handshakes_total", Kind::kCounter, "TLS handshakes completed.", SVC(tls_handshakes), nullptr},
    {"tlsHandshakeFailures", "tls_handshake_failures_total", Kind::kCounter,
     "TLS handshakes that failed or did not finish within limits.handshakeTimeoutMs (the connection was closed).",
     SVC(tls_failures), nullptr},
    {"tlsHandshakesWaiting", "tls_handshakes_waiting", Kind::kGauge,
     "TLS handshake steps put off to the next loop pass in the last pass (the per-pass bound).",
     SVC(handshakes_waiting), nullptr},
    {"tlsHandshakeWaits", "tls_handshake_waits_total", Kind::kCounter,
     "TLS handshake steps put off to the next loop pass (the per-pass bound).", SVC(handshake_waits), nullptr},
    {"authAccepted", "auth_accepted_total", Kind::kCounter,
     "Connections accepted with credentials (a token or a client certificate).", SVC(auth_accepted), nullptr},
    {"reloads", "reloads_total", Kind::kCounter, "Successful credential reloads (server.reload(), SIGHUP).",
     [](const Engine& e) { return e.reloads(); }, nullptr},
    {"reloadFailures", "reload_failures_total", Kind::kCounter,
     "Credential reloads that failed (the previous certificate, key, CA and tokens stay in use).",
     [](const Engine& e) { return e.reload_failures(); }, nullptr},
    {"partialFrameBytes", "partial_frame_bytes", Kind::kGauge,
     "Bytes held in unfinished frames across all connections (bounded by limits.maxPartialFrameBytes).",
     [](const Engine& e) { return e.partial_bytes(); }, nullptr},
    {"partialFrameWaits", "partial_frame_waits_total", Kind::kCounter,
     "Times a connection stopped being read because limits.maxPartialFrameBytes was spent.", SVC(partial_waits),
     nullptr},
    {"queueBytes", "queue_bytes", Kind::kGauge, "Bytes of messages queued for the writer.",
     [](const Engine& e) { return e.queue().bytes(); }, nullptr},
    {"queueBatches", "queue_batches", Kind::kGauge, "Batches queued for the writer.",
     [](const Engine& e) { return e.queue().batches(); }, nullptr},
    {"writerBatches", "writer_batches_total", Kind::kCounter, "Batches taken from the queue by the writer.",
     WRITER(batches), nullptr},
    {"writes", "writes_total", Kind::kCounter, "Write calls to the log file.", LOG(writes), nullptr},
    {"recordsWritten", "records_written_total", Kind::kCounter, "Records written to the log file.", LOG(records), nullptr},
    {"bytesWritten", "written_bytes_total", Kind::kCounter, "Bytes written to the log file.", LOG(bytes), nullptr},
    {"fsyncs", "fsyncs_total", Kind::kCounter, "fsync calls on the log file that succeeded.", LOG(fsyncs), nullptr},
    {"syncedRecords", "synced_records_total", Kind::kCounter, "Records known to be on stable storage.",
     LOG(synced_records), nullptr},
    {"writeErrors", "write_errors_total", Kind::kCounter, "Failed writes or fsyncs of the log file.",
     [](const Engine& e) {
       const IoErrorStats& io = e.io_error_stats();
       return io.failed[int(IoOp::kWrite)].get() + io.failed[int(IoOp::kFsync)].get();
     },
     nullptr},
    {"failedRecords", "failed_records_total", Kind::kCounter,
     "Records not stored because of a write error (ACKed WRITE_FAILED).", WRITER(failed_records), nullptr},
    {"lastSeq", "last_seq", Kind::kGauge, "Sequence number of the last record written (0 = none).", WRITER(last_seq),
     nullptr},
    {"tornBytesCut", "torn_tail_cut_bytes_total", Kind::kCounter, "Bytes of a torn log tail truncated at start-up.",
     LOG(torn_bytes_cut), nullptr},
    {"rotations", "rotations_total", Kind::kCounter, "Segments closed by rotation.", LOG(rotations), nullptr},
    {"segmentsDeleted", "segments_deleted_total", Kind::kCounter, "Closed segments deleted by file.retention.",
     LOG(segments_deleted), nullptr},
    {"archiveFailures", "archive_failures_total", Kind::kCounter,
     "Closed segments an onSegmentClosed hook failed to archive (kept until the next start).",
     [](const Engine& e) { return e.archive_failures(); }, nullptr},
    {"diskGuardPauses", "disk_guard_pauses_total", Kind::kCounter,
     "Times ingest paused because free disk space fell below file.minFreeBytes.", SINK(disk_guard_pauses), nullptr},
    {"diskLow", "disk_low", Kind::kGauge, "1 while ingest is paused for low disk space (file.minFreeBytes).",
     SINK(disk_low), nullptr},
    {"lastStoreFailed", "last_store_failed", Kind::kGauge,
     "1 when the most recent store of a flush to the log failed (WRITE_FAILED).", SINK(last_store_failed), nullptr},
    {"hookDelivered", "hook_delivered_messages_total", Kind::kCounter, "Messages delivered to onMessages hooks.",
     HOOKS(delivered), nullptr},
    {"hookDropped", "hook_dropped_messages_total", Kind::kCounter,
     "Messages the onMessages hooks did not see (policy 'drop', hook buffer full).", HOOKS(dropped), nullptr},
    {"hookBlocked", "hook_blocked_total", Kind::kCounter, "Times the writer waited for slow hooks (policy 'block').",
     HOOKS(blocked), nullptr},
    {"eventsDropped", "events_dropped_total", Kind::kCounter,
     "Server events (logs, connections, errors) dropped because the JS thread was too far behind.",
     [](const Engine& e) { return e.events_dropped(); }, nullptr},
    {"published", "jetstream_published_total", Kind::kCounter, "Messages published to JetStream.", JS(published),
     "jetstream"},
    {"acked", "jetstream_acked_total", Kind::kCounter, "JetStream publish acknowledgements (duplicates included).",
     JS(acked), "jetstream"},
    {"duplicates", "jetstream_duplicates_total", Kind::kCounter,
     "Publishes JetStream's duplicate window dropped (a resend already stored).", JS(duplicates), "jetstream"},
    {"inProcess", "jetstream_in_process_total", Kind::kCounter,
     "Publish answers that an earlier attempt with the same id was still being proposed, not stored (sent again).",
     JS(in_process), "jetstream"},
    {"failed", "jetstream_failed_total", Kind::kCounter, "Publishes JetStream refused (no stream, no quorum, ...).",
     JS(failed), "jetstream"},
    {"timeouts", "jetstream_timeouts_total", Kind::kCounter, "Publishes not acknowledged within jetstream.ackTimeoutMs.",
     JS(timeouts), "jetstream"},
    {"unavailable", "jetstream_unavailable_total", Kind::kCounter,
     "Messages not published: NATS unreachable or the stream missing.", JS(unavailable), "jetstream"},
    {"reconnects", "jetstream_reconnects_total", Kind::kCounter, "Reconnections to the NATS cluster.", JS(reconnects),
     "jetstream"},
    {"retries", "jetstream_retries_total", Kind::kCounter,
     "Publishes sent again after a failure that can pass (no responders, 503, timeout, not connected, in process).", JS(retries),
     "jetstream"},
    {"retryExhausted", "jetstream_retry_exhausted_total", Kind::kCounter,
     "Messages answered REPLICATION_FAILED once jetstream.retryMs was spent.", JS(retry_exhausted), "jetstream"},
    {"held", "jetstream_held_messages", Kind::kGauge, "Messages waiting for a resend or for the stream to be usable.",
     JS(held), "jetstream"},
    {"connected", "jetstream_connected", Kind::kGauge, "1 while the JetStream sink is connected to NATS.",
     [](const Engine& e) -> uint64_t { return e.jetstream()->connected() ? 1 : 0; }, "jetstream"},
    {"refusedNotReady", "jetstream_refused_not_ready_total", Kind::kCounter,
     "Connections refused with ERR BUSY while the stream was not ready (jetstream.whileNotReady 'refuse').",
     LISTENER(rejected_not_ready), "jetstream"},
    {"ready", "jetstream_ready", Kind::kGauge, "1 while the JetStream stream exists and answers publishes.",
     [](const Engine& e) -> uint64_t { return e.jetstream()->ready() ? 1 : 0; }, "jetstream"},
};

#undef SVC
#undef LISTENER
#undef WRITER
#undef LOG
#undef SINK
#undef HOOKS
#undef JS

// Counts by name, for counters kept as arrays indexed by a code.
template <int N, typename Name, typename Read>
Napi::Object by_name(Napi::Env env, int first, Name name, Read read) {
  Napi::Object o = Napi::Object::New(env);
  for (int k = first; k < N; k++) set_count(o, name(k), read(k));
  return o;
}

Napi::Array thread_stats(Napi::Env env, const Engine& e) {
  Napi::Array threads = Napi::Array::New(env, e.services().size());
  for (uint32_t i = 0; i < e.services().size(); i++) {
    const ServiceStats& s = e.services()[i]->stats;
    Napi::Object t = Napi::Object::New(env);
    set_count(t, "connections", s.connections.get());
    set_count(t, "accepted", s.accepted.get());
    set_count(t, "messagesIn", s.messages_in.get());
    set_count(t, "bytesIn", s.bytes_in.get());
    set_count(t, "batchesPushed", s.batches_pushed.get());
    threads.Set(i, t);
  }
  return threads;
}

}  // namespace

Napi::Object stats_to_js(Napi::Env env, const Engine& e) {
  Napi::Object o = Napi::Object::New(env);
  // The ACKs first: an ACK is counted after what it promises (written,
  // synced), so reading it before those counters never shows an ACK ahead.
  o.Set("acks", by_name<kAckStatuses>(env, 0, [](int k) { return wire::ack_status_name(uint8_t(k)); }, [&](int k) {
          return sum_services(e, [k](const ServiceStats& s) -> const Counter& { return s.acks[k]; });
        }));
  Napi::Object js = Napi::Object::New(env);
  for (const StatRow& r : kStats) {
    if (!r.section) {
      set_count(o, r.name, r.read(e));
    } else if (e.jetstream()) {
      set_count(js, r.name, r.read(e));
    }
  }
  if (e.jetstream()) {
    js.Set("connected", Napi::Boolean::New(env, e.jetstream()->connected()));
    js.Set("ready", Napi::Boolean::New(env, e.jetstream()->ready()));
    o.Set("jetstream", js);
  } else {
    o.Set("jetstream", env.Null());
  }
  o.Set("errors", by_name<kErrCodes>(env, 1, [](int k) { return wire::err_code_name(uint8_t(k)); }, [&](int k) {
          return sum_services(e, [k](const ServiceStats& s) -> const Counter& { return s.errors[k]; });
        }));
  o.Set("ioErrors", by_name<kIoOps>(env, 0, [](int k) { return io_op_name(IoOp(k)); },
                                    [&](int k) { return e.io_error_stats().failed[k].get(); }));
  Napi::Array lat = Napi::Array::New(env, LatencyHistogram::kBuckets);
  for (int k = 0; k < LatencyHistogram::kBuckets; k++) {
    lat.Set(k, Napi::Number::New(env, double(e.store_latency().buckets[k].get())));
  }
  o.Set("writeLatencyUs", lat);
  o.Set("threads", thread_stats(env, e));
  return o;
}

Napi::Array stats_schema(Napi::Env env) {
  Napi::Array a = Napi::Array::New(env);
  uint32_t i = 0;
  for (const StatRow& r : kStats) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", r.section ? std::string(r.section) + "." + r.name : std::string(r.name));
    d.Set("metric", r.metric);
    d.Set("type", r.kind == Kind::kCounter ? "counter" : "gauge");
    d.Set("help", r.help);
    a.Set(i++, d);
  }
  return a;
}

}  // namespace msgs::binding
