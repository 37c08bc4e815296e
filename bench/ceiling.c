// The ceilings for the benchmarks: a minimal C epoll server that speaks the
// v1 or the legacy protocol, parses every frame and ACKs it.
//
//   cc -O2 -o build/bench-ceiling bench/ceiling.c -lpthread
//   bench-ceiling --port 0 --protocol v1|legacy [--threads N] [--host 127.0.0.1] [--file PATH]
//
// Without --file (the no-file ceiling) it writes nothing: what "parse and ACK"
// costs with nothing else in the way; no product should beat it.
// With --file (the written ceiling) it runs ONE thread, and appends every
// chunk it reads to PATH with one write() before it sends that chunk's ACKs:
// the least work a server whose ACK means "in the file" can do (one copy in
// from the socket, one copy into the page cache), with no batching across
// connections and no second thread to overlap reading with writing.
//
// One thread per core (default), each with its own SO_REUSEPORT listening
// socket and epoll instance (level-triggered). Per read: every complete frame
// is parsed; v1 answers one coalesced ACK frame (count, last id) per read,
// like msgserver; legacy answers the 3 bytes "ack" per message, all of one
// read's in one send. Prints "ceiling listening on HOST:PORT" when ready.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK (256 * 1024)
#define LEGACY_FRAME 1160
#define MAX_OUT_PENDING (1 << 20)

static int g_legacy = 0;
static uint32_t g_max_msg = 1024 * 1024;
static const char* g_host = "127.0.0.1";
static int g_port = 0;
static int g_threads = 0;
static int g_file = -1;  // --file: the written ceiling's file
// Legacy replies: one read's worth of "ack"s, ready to send.
static uint8_t g_acks[(READ_CHUNK / LEGACY_FRAME + 4) * 3];

typedef struct conn {
  int fd;
  int hello_done;   // v1: HELLO received and answered
  uint32_t carry_len, carry_cap;
  uint8_t* carry;   // partial frame, allocated only when one exists
  uint32_t out_len, out_cap;
  uint8_t* out;     // unsent reply bytes, allocated only when the socket is full
  int want_out;
} conn;

typedef struct worker {
  int lfd, ep;
  uint8_t* buf;
  size_t buf_cap;
  pthread_t th;
} worker;

static uint32_t get32(const uint8_t* p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static void put32(uint8_t* p, uint32_t v) {
  p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static void conn_close(worker* w, conn* c) {
  close(c->fd);
  free(c->carry);
  free(c->out);
  free(c);
}

static void set_out(worker* w, conn* c, int on) {
  if (c->want_out == on) return;
  c->want_out = on;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

// Sends pending bytes first, then `data`; keeps what the socket does not take.
static int reply(worker* w, conn* c, const uint8_t* data, size_t n) {
  if (c->out_len == 0 && n > 0) {
    ssize_t s = send(c->fd, data, n, MSG_NOSIGNAL);
    if (s < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      s = 0;
    }
    data += s;
    n -= (size_t)s;
  }
  if (n > 0) {
    if (c->out_len + n > c->out_cap) {
      uint32_t cap = c->out_cap ? c->out_cap : 4096;
      while (cap < c->out_len + n) cap *= 2;
      c->out = realloc(c->out, cap);
      c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, n);
    c->out_len += (uint32_t)n;
  }
  if (c->out_len > 0) {
    ssize_t s = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
    if (s < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    if (s > 0) {
      memmove(c->out, c->out + s, c->out_len - (size_t)s);
      c->out_len -= (uint32_t)s;
    }
  }
  set_out(w, c, c->out_len > 0);
  return 0;
}

// Parses buf[0..n); returns bytes consumed, or -1 on a protocol error.
static ssize_t parse(worker* w, conn* c, uint8_t* buf, size_t n) {
  size_t i = 0;
  if (g_legacy) {
    size_t msgs = n / LEGACY_FRAME;
    i = msgs * LEGACY_FRAME;
    if (msgs && reply(w, c, g_acks, msgs * 3) < 0) return -1;
    return (ssize_t)i;
  }
  uint8_t out[32];
  size_t out_n = 0;
  if (!c->hello_done) {
    if (n < 12) return 0;
    if (memcmp(buf, "MSGS\x01\x00\x00\x00", 8) != 0) return -1;
    memcpy(out, "MSGS\x01\x00\x00\x00", 8);
    put32(out + 8, g_max_msg);
    out_n = 12;
    c->hello_done = 1;
    i = 12;
  }
  uint32_t count = 0;
  const uint8_t* last = NULL;
  while (n - i >= 4) {
    uint32_t len = get32(buf + i);
    if (len > 10 + 255 + g_max_msg || len < 10) return -1;
    if (n - i < 4 + (size_t)len) break;
    if (buf[i + 4] != 0x01 || len < 10u + buf[i + 5]) return -1;
    last = buf + i + 6;
    count++;
    i += 4 + (size_t)len;
  }
  if (count) {
    uint8_t* a = out + out_n;
    put32(a, 16);
    a[4] = 0x81; a[5] = 0; a[6] = 0; a[7] = 0;
    put32(a + 8, count);
    memcpy(a + 12, last, 8);
    out_n += 20;
  }
  if (out_n && reply(w, c, out, out_n) < 0) return -1;
  return (ssize_t)i;
}

// The written ceiling: the chunk just read goes into the file before its ACKs.
static int write_all(const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t s = write(g_file, p, n);
    if (s < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += s;
    n -= (size_t)s;
  }
  return 0;
}

static void on_readable(worker* w, conn* c) {
  for (int round = 0; round < 4; round++) {
    if (c->out_len > MAX_OUT_PENDING) return;  // client not reading: stop reading it
    uint8_t* buf = w->buf;
    size_t have = c->carry_len;
    if (have) memcpy(buf, c->carry, have);
    ssize_t r = read(c->fd, buf + have, READ_CHUNK);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (r <= 0) {
      conn_close(w, c);
      return;
    }
    if (g_file >= 0 && write_all(buf + have, (size_t)r) < 0) {
      fprintf(stderr, "ceiling: write: %s\n", strerror(errno));
      exit(1);
    }
    size_t n = have + (size_t)r;
    ssize_t used = parse(w, c, buf, n);
    if (used < 0) {
      conn_close(w, c);
      return;
    }
    size_t rest = n - (size_t)used;
    if (rest > c->carry_cap) {
      c->carry = realloc(c->carry, rest);
      c->carry_cap = (uint32_t)rest;
    }
    memcpy(c->carry, buf + used, rest);
    c->carry_len = (uint32_t)rest;
    if ((size_t)r < READ_CHUNK) return;
  }
}

static void* run(void* arg) {
  worker* w = arg;
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(w->ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) {
        for (;;) {
          int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conn* c = calloc(1, sizeof *c);
          c->fd = fd;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      conn* c = evs[i].data.ptr;
      if (evs[i].events & EPOLLOUT) {
        if (reply(w, c, NULL, 0) < 0) {
          conn_close(w, c);
          continue;
        }
      }
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(w, c);
    }
  }
  return NULL;
}

static int listen_socket(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, g_host, &a.sin_addr) != 1) {
    fprintf(stderr, "ceiling: bad host %s\n", g_host);
    exit(2);
  }
  if (bind(fd, (struct sockaddr*)&a, sizeof a) < 0 || listen(fd, 65535) < 0) {
    fprintf(stderr, "ceiling: listen %s:%d: %s\n", g_host, port, strerror(errno));
    exit(1);
  }
  return fd;
}

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help")) {
      printf("usage: bench-ceiling [--host 127.0.0.1] [--port 0] [--protocol v1|legacy] [--threads N] [--file PATH]\n");
      return 0;
    } else if (v && !strcmp(a, "--host")) { g_host = v; i++; }
    else if (v && !strcmp(a, "--port")) { g_port = atoi(v); i++; }
    else if (v && !strcmp(a, "--threads")) { g_threads = atoi(v); i++; }
    else if (v && !strcmp(a, "--protocol")) { g_legacy = !strcmp(v, "legacy"); i++; }
    else if (v && !strcmp(a, "--file")) {
      g_file = open(v, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (g_file < 0) { fprintf(stderr, "ceiling: open %s: %s\n", v, strerror(errno)); return 1; }
      i++;
    }
    else if (v && !strcmp(a, "--max-message-bytes")) { g_max_msg = (uint32_t)atoi(v); i++; }
    else if (v && !strcmp(a, "--max-connections")) { i++; /* no limit is enforced */ }
    else { fprintf(stderr, "ceiling: unknown argument %s\n", a); return 2; }
  }
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (g_file >= 0) g_threads = 1;  // the written ceiling is one thread by definition
  if (g_threads <= 0) g_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
  worker* ws = calloc((size_t)g_threads, sizeof *ws);
  int port = g_port;
  for (int t = 0; t < g_threads; t++) {
    worker* w = &ws[t];
    w->lfd = listen_socket(port);
    if (t == 0) {
      struct sockaddr_in a;
      socklen_t l = sizeof a;
      getsockname(w->lfd, (struct sockaddr*)&a, &l);
      port = ntohs(a.sin_port);
    }
    w->buf_cap = READ_CHUNK + 10 + 255 + g_max_msg + 4;
    w->buf = malloc(w->buf_cap);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &ev);
  }
  for (size_t k = 0; k + 3 <= sizeof g_acks; k += 3) memcpy(g_acks + k, "ack", 3);
  printf("ceiling listening on %s:%d (%s, %d threads%s)\n", g_host, port, g_legacy ? "legacy" : "v1", g_threads,
         g_file >= 0 ? ", written" : "");
  fflush(stdout);
  for (int t = 0; t < g_threads; t++) pthread_create(&ws[t].th, NULL, run, &ws[t]);
  for (int t = 0; t < g_threads; t++) pthread_join(ws[t].th, NULL);
  return 0;
}
