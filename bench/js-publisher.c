// The direct JetStream publisher for the benchmarks: what NATS itself takes
// from one client, with nothing in front of it. The official NATS C client
// (libnats) publishes fixed-size messages into a stream of its own, each with
// a Nats-Msg-Id header (the dedupe key msgserver also sets), and counts the
// stream's publish acknowledgements. bench/run.js runs it beside the
// `replicated` configurations, on the same nats-server(s).
//
//   cc -O2 -o build-bench/js-publisher bench/js-publisher.c -lnats -lpthread
//   js-publisher --url nats://127.0.0.1:4222[,nats://...] --stream S --subject-prefix P
//                [--replicas 1] [--size 1066] [--window 64] [--duration-ms 3000 | --messages n]
//                [--client-id 1]
//
// --window > 1: js_PublishAsync with at most `window` publishes in flight
// (jsOptions.PublishAsync.MaxPending; a full window blocks the publish call).
// --window 1: js_Publish, one at a time (the latency shape).
// Prints one JSON line, the same shape as `msgbench --json`:
// {"result":{msgsPerSec, wireMBPerSec, elapsedMs, messagesSent, messagesAcked,
//  messagesUnacked, errors, errorSamples, latency:{p50Us,p99Us,p999Us,maxUs,count}}}
// Latency is publish call to acknowledgement, per message.
#define _GNU_SOURCE
#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// Latency histogram: 1 us buckets below 64 ms, then 1 ms buckets up to 64 s.
#define FINE 65536
#define COARSE 65536
static _Atomic uint64_t g_fine[FINE];
static _Atomic uint64_t g_coarse[COARSE];
static _Atomic uint64_t g_max_us;
static _Atomic uint64_t g_acked, g_failed, g_duplicates;
static char g_err_sample[256];
static pthread_mutex_t g_err_mu = PTHREAD_MUTEX_INITIALIZER;

// Send times by sequence number (ring; at least `window` entries deep).
static uint64_t* g_sent_ns;
static uint64_t g_ring_mask;
static uint32_t g_client_id = 1;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void record_latency(uint64_t us) {
  if (us < FINE) atomic_fetch_add_explicit(&g_fine[us], 1, memory_order_relaxed);
  else atomic_fetch_add_explicit(&g_coarse[us / 1000 < COARSE ? us / 1000 : COARSE - 1], 1, memory_order_relaxed);
  uint64_t m = atomic_load_explicit(&g_max_us, memory_order_relaxed);
  while (us > m && !atomic_compare_exchange_weak_explicit(&g_max_us, &m, us, memory_order_relaxed, memory_order_relaxed)) {
  }
}

static void note_error(const char* what, natsStatus s, int code, const char* text) {
  pthread_mutex_lock(&g_err_mu);
  if (!g_err_sample[0]) snprintf(g_err_sample, sizeof g_err_sample, "%s: %s (%d) %s", what, natsStatus_GetText(s), code, text ? text : "");
  pthread_mutex_unlock(&g_err_mu);
}

// The message's sequence number, from its Nats-Msg-Id "<client>-<seq>".
static uint64_t seq_of(natsMsg* msg) {
  const char* id = NULL;
  if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK || !id) return UINT64_MAX;
  const char* dash = strchr(id, '-');
  return dash ? strtoull(dash + 1, NULL, 10) : UINT64_MAX;
}

static void on_ack(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  uint64_t t = now_ns();
  if (pa) {
    uint64_t seq = seq_of(msg);
    if (seq != UINT64_MAX) record_latency((t - g_sent_ns[seq & g_ring_mask]) / 1000);
    if (pa->Duplicate) atomic_fetch_add_explicit(&g_duplicates, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_acked, 1, memory_order_relaxed);
  } else if (pae) {
    atomic_fetch_add_explicit(&g_failed, 1, memory_order_relaxed);
    note_error("publish failed", pae->Err, pae->ErrCode, pae->ErrText);
  }
  natsMsg_Destroy(msg);
}

static uint64_t percentile(uint64_t count, double p) {
  uint64_t want = (uint64_t)(p * (double)count);
  if (want >= count) want = count ? count - 1 : 0;
  uint64_t seen = 0;
  for (uint64_t i = 0; i < FINE; i++) {
    seen += atomic_load(&g_fine[i]);
    if (seen > want) return i;
  }
  for (uint64_t i = 0; i < COARSE; i++) {
    seen += atomic_load(&g_coarse[i]);
    if (seen > want) return i * 1000 + 500;
  }
  return atomic_load(&g_max_us);
}

static void die(const char* what, natsStatus s) {
  fprintf(stderr, "js-publisher: %s: %s\n", what, natsStatus_GetText(s));
  nats_PrintLastErrorStack(stderr);
  exit(1);
}

int main(int argc, char** argv) {
  const char* urls = "nats://127.0.0.1:4222";
  const char* stream = "jspub";
  const char* prefix = "jspub";
  int replicas = 1, size = 1066, window = 64;
  int64_t duration_ms = 3000;
  uint64_t messages = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *a = argv[i], *v = argv[i + 1];
    if (!strcmp(a, "--url")) urls = v;
    else if (!strcmp(a, "--stream")) stream = v;
    else if (!strcmp(a, "--subject-prefix")) prefix = v;
    else if (!strcmp(a, "--replicas")) replicas = atoi(v);
    else if (!strcmp(a, "--size")) size = atoi(v);
    else if (!strcmp(a, "--window")) window = atoi(v);
    else if (!strcmp(a, "--duration-ms")) duration_ms = atoll(v);
    else if (!strcmp(a, "--messages")) messages = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--client-id")) g_client_id = (uint32_t)strtoul(v, NULL, 10);
    else {
      fprintf(stderr, "js-publisher: unknown argument %s\n", a);
      return 2;
    }
  }
  if (window < 1) window = 1;
  uint64_t ring = 1;
  while (ring < (uint64_t)window * 2) ring <<= 1;
  g_ring_mask = ring - 1;
  g_sent_ns = calloc(ring, sizeof *g_sent_ns);

  natsOptions* opts = NULL;
  natsConnection* nc = NULL;
  jsCtx* js = NULL;
  natsStatus s = natsOptions_Create(&opts);
  // Comma-separated URLs: one server each.
  char* list = strdup(urls);
  const char* servers[16];
  int nservers = 0;
  for (char* tok = strtok(list, ","); tok && nservers < 16; tok = strtok(NULL, ",")) servers[nservers++] = tok;
  if (s == NATS_OK) s = natsOptions_SetServers(opts, servers, nservers);
  if (s == NATS_OK) s = natsOptions_SetName(opts, "js-publisher");
  if (s == NATS_OK) s = natsConnection_Connect(&nc, opts);
  if (s != NATS_OK) die("connect", s);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 10000;
  jo.PublishAsync.MaxPending = window;
  jo.PublishAsync.AckHandler = on_ack;
  jo.PublishAsync.StallWait = 30000;  // a full window waits; it is not an error
  s = natsConnection_JetStream(&js, nc, &jo);
  if (s != NATS_OK) die("JetStream context", s);

  // Its own stream (created here when missing), subjects <prefix>.>, like msgserver's.
  char subjects[512], subject[512];
  snprintf(subjects, sizeof subjects, "%s.>", prefix);
  snprintf(subject, sizeof subject, "%s.%" PRIu32, prefix, g_client_id);
  jsStreamInfo* si = NULL;
  jsErrCode jerr = 0;
  s = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
  if (s == NATS_NOT_FOUND) {
    const char* subj[] = {subjects};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = stream;
    sc.Subjects = subj;
    sc.SubjectsLen = 1;
    sc.Replicas = replicas;
    sc.Storage = js_FileStorage;
    s = js_AddStream(&si, js, &sc, NULL, &jerr);
  }
  if (s != NATS_OK) die("stream", s);
  jsStreamInfo_Destroy(si);

  char* data = malloc((size_t)size + 1);
  memset(data, 'x', (size_t)size);
  char msg_id[64];
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = msg_id;

  uint64_t sent = 0, errors = 0;
  uint64_t t0 = now_ns();
  uint64_t deadline = t0 + (uint64_t)duration_ms * 1000000u;
  for (;;) {
    if (messages ? sent >= messages : (sent & 63) == 0 && now_ns() >= deadline) break;
    snprintf(msg_id, sizeof msg_id, "%" PRIu32 "-%" PRIu64, g_client_id, sent);
    uint64_t t = now_ns();
    g_sent_ns[sent & g_ring_mask] = t;
    if (window == 1) {
      jsPubAck* pa = NULL;
      s = js_Publish(&pa, js, subject, data, size, &po, &jerr);
      if (s == NATS_OK) {
        record_latency((now_ns() - t) / 1000);
        if (pa->Duplicate) atomic_fetch_add(&g_duplicates, 1);
        atomic_fetch_add(&g_acked, 1);
        jsPubAck_Destroy(pa);
      } else {
        errors++;
        note_error("js_Publish", s, jerr, NULL);
      }
    } else {
      s = js_PublishAsync(js, subject, data, size, &po);
      if (s != NATS_OK) {
        errors++;
        note_error("js_PublishAsync", s, 0, NULL);
      }
    }
    sent++;
    // Every message of the window gets a distinct send-time slot: the ring is
    // twice the window, and a full window blocks the publish call above.
  }
  if (window > 1) {
    jsPubOptions cpo;
    jsPubOptions_Init(&cpo);
    cpo.MaxWait = 30000;
    s = js_PublishAsyncComplete(js, &cpo);
    if (s != NATS_OK) note_error("js_PublishAsyncComplete", s, 0, NULL);
  }
  uint64_t t1 = now_ns();
  double secs = (double)(t1 - t0) / 1e9;
  uint64_t acked = atomic_load(&g_acked);
  uint64_t failed = atomic_load(&g_failed);
  uint64_t dups = atomic_load(&g_duplicates);
  // A duplicate was not stored by this run: it counts as an error here.
  uint64_t ok = acked - dups;
  uint64_t all_errors = errors + failed + dups;
  uint64_t count = 0;
  for (int i = 0; i < FINE; i++) count += atomic_load(&g_fine[i]);
  for (int i = 0; i < COARSE; i++) count += atomic_load(&g_coarse[i]);
  printf("{\"result\":{\"msgsPerSec\":%.1f,\"wireMBPerSec\":%.3f,\"elapsedMs\":%.1f,\"messagesSent\":%" PRIu64
         ",\"messagesAcked\":%" PRIu64 ",\"messagesUnacked\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"duplicates\":%" PRIu64
         ",\"errorSamples\":[",
         (double)ok / secs, (double)ok * size / secs / 1e6, secs * 1000, sent, ok, sent > acked + failed + errors ? sent - acked - failed - errors : 0,
         all_errors, dups);
  if (g_err_sample[0]) {
    putchar('"');
    for (const char* p = g_err_sample; *p; p++) {
      if (*p == '"' || *p == '\\') putchar('\\');
      putchar(*p >= ' ' ? *p : ' ');
    }
    putchar('"');
  }
  printf("],\"latency\":{\"count\":%" PRIu64 ",\"p50Us\":%" PRIu64 ",\"p99Us\":%" PRIu64 ",\"p999Us\":%" PRIu64 ",\"maxUs\":%" PRIu64 "}}}\n",
         count, percentile(count, 0.5), percentile(count, 0.99), percentile(count, 0.999), atomic_load(&g_max_us));
  fflush(stdout);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  natsOptions_Destroy(opts);
  return 0;
}
