/*
 * iofault.so: an LD_PRELOAD fault injector for the tests (never part of the
 * product). It wraps the file system calls the log writer makes and, for
 * files whose path matches a rule, fails them with an errno, delays them, or
 * makes a write short. Everything else passes straight through.
 *
 * Build:  cc -shared -fPIC -O2 -Wall -o iofault.so iofault.c -ldl -lpthread
 * Use:    LD_PRELOAD=/path/iofault.so MSGS_FAULT_FILE=/tmp/x/faults node ...
 *
 * The control file ($MSGS_FAULT_FILE) holds one rule per line; it may be
 * rewritten at any time. The shim stats it on every intercepted call and
 * reloads it when its inode, size, mtime or ctime changed (a reload resets
 * every count). Rewrite it by renaming a new file over it, so two rewrites in
 * the same clock tick are not mistaken for one. An empty or missing file
 * means no faults. Format ('#' starts a comment):
 *
 *   <call> path=<substring>[$] [errno=<ENAME|number>] [delay_us=<n>] [bytes=<n>] [count=<n>]
 *
 *   call      pwrite     pwrite, pwrite64, pwritev, pwritev64, pwritev2
 *             write      write, writev
 *             fdatasync  fdatasync
 *             fsync      fsync (also on a directory fd: the directory sync)
 *             sync_file_range  sync_file_range (the log's cache drops)
 *             ftruncate  ftruncate, ftruncate64
 *             rename     rename, renameat, renameat2 (either path may match)
 *             unlink     unlink, unlinkat
 *             close      close (the fd is closed anyway, as Linux does on EIO)
 *             open       open, open64, openat, openat64, creat (+ fortified
 *                        __open_2 ...); an injected failure creates nothing
 *             epoll_wait epoll_wait, epoll_pwait (the epoll fd's path is
 *                        "anon_inode:[eventpoll]"); give thread= too, or
 *                        Node's own loop may be the one that fails
 *   path=     required (no spaces or '#' in it). Matches when the file's
 *             path contains the substring; a trailing '$' anchors it at the
 *             end ("path=/segs$" matches the directory /tmp/a/segs, not
 *             /tmp/a/segs/1.log). For an fd the path is
 *             readlink("/proc/self/fd/N"), read at each call.
 *   errno=    fail the call: return -1 with this errno (EIO, ENOSPC, ...)
 *   delay_us= sleep this long before the call (a slow disk); alone, the call
 *             then runs normally
 *   bytes=    pwrite/write only: really write at most this many bytes and
 *             return that count (a short write; the caller loops)
 *   count=    apply to the next n matching calls only; omitted: every call
 *   thread=   only in threads whose name (pthread_setname_np) starts with it,
 *             e.g. thread=msgs-svc or thread=msgs-listener
 *
 * The first rule that matches a call and still has count left decides it
 * (at most one rule per call). Examples:
 *
 *   fdatasync path=msgs-test errno=EIO count=3
 *   pwrite path=.log errno=ENOSPC
 *   pwrite path=.log delay_us=20000
 *   pwrite path=/full.log bytes=100 count=1      then the next rule:
 *   pwrite path=/full.log errno=ENOSPC           (disk fills mid-write)
 *
 * Every injection appends one line to "$MSGS_FAULT_FILE.log", so a test can
 * check that a fault fired:  <function> <effect> <path>
 *   e.g.  "fdatasync EIO /tmp/x/d.log", "pwrite delay_us=20000 /tmp/x/o.log",
 *         "pwrite bytes=100 /tmp/x/full.log"
 * Lines about bad rules go to stderr, once per reload.
 *
 * Test-only code: slow on purpose (a stat per call, a readlink per call that
 * a rule could match), nothing cached that could go stale, not signal-safe.
 * A mutex guards the rules (the server's writer thread calls these), and a
 * thread-local flag passes through any call the shim itself makes.
 */
#define _GNU_SOURCE
#undef _FILE_OFFSET_BITS /* this file defines both pwrite and pwrite64, open and open64, ... */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_RULES 64
#define MAX_PATTERN 512
#define MAX_CONTROL 65536

enum call {
  C_PWRITE, C_WRITE, C_FDATASYNC, C_FSYNC, C_FTRUNCATE, C_RENAME, C_UNLINK, C_CLOSE, C_OPEN, C_EPOLL_WAIT,
  C_SYNC_FILE_RANGE, C_CALLS
};
static const char *const call_names[C_CALLS] = {"pwrite", "write",  "fdatasync", "fsync", "ftruncate",
                                                "rename", "unlink", "close",     "open",  "epoll_wait",
                                                "sync_file_range"};

struct rule {
  enum call call;
  char pattern[MAX_PATTERN];
  int anchored;  /* the pattern ended in '$' */
  int err;       /* 0: none */
  long delay_us; /* 0: none */
  long bytes;    /* -1: none */
  long count;    /* -1: every call; 0: used up */
  char thread[16]; /* "": any thread; else a prefix of the thread's name */
};

/* What one call is made to do. */
struct effect {
  int err;
  long delay_us;
  long bytes;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rule rules[MAX_RULES]; /* guarded by lock, as are the next three */
static int nrules;
static struct stat loaded; /* the control file as it was when last loaded */
static int have_loaded;
static char control[MAX_CONTROL + 1];
static __thread int in_shim; /* set while the shim itself runs: its own calls pass through */

/* ---- the real functions (resolved on first use) ------------------------- */

#define REAL(ret, name, params)                                      \
  typedef ret(*name##_fn) params;                                    \
  static name##_fn real_##name(void) {                               \
    static name##_fn fn;                                             \
    name##_fn f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);            \
    if (!f) {                                                        \
      f = (name##_fn)dlsym(RTLD_NEXT, #name);                        \
      __atomic_store_n(&fn, f, __ATOMIC_RELEASE);                    \
    }                                                                \
    return f;                                                        \
  }

REAL(ssize_t, pwrite, (int, const void *, size_t, off_t))
REAL(ssize_t, pwrite64, (int, const void *, size_t, off64_t))
REAL(ssize_t, pwritev, (int, const struct iovec *, int, off_t))
REAL(ssize_t, pwritev64, (int, const struct iovec *, int, off64_t))
REAL(ssize_t, write, (int, const void *, size_t))
REAL(ssize_t, writev, (int, const struct iovec *, int))
REAL(int, fdatasync, (int))
REAL(int, fsync, (int))
REAL(int, sync_file_range, (int, off64_t, off64_t, unsigned int))
REAL(int, ftruncate, (int, off_t))
REAL(int, ftruncate64, (int, off64_t))
REAL(int, rename, (const char *, const char *))
REAL(int, renameat, (int, const char *, int, const char *))
REAL(int, unlink, (const char *))
REAL(int, unlinkat, (int, const char *, int))
REAL(int, close, (int))
REAL(int, open, (const char *, int, ...))
REAL(int, open64, (const char *, int, ...))
REAL(int, openat, (int, const char *, int, ...))
REAL(int, openat64, (int, const char *, int, ...))
REAL(int, __open_2, (const char *, int))
REAL(int, __open64_2, (const char *, int))
REAL(int, __openat_2, (int, const char *, int))
REAL(int, __openat64_2, (int, const char *, int))
REAL(int, creat, (const char *, mode_t))
REAL(int, creat64, (const char *, mode_t))
REAL(int, epoll_wait, (int, struct epoll_event *, int, int))
REAL(int, epoll_pwait, (int, struct epoll_event *, int, int, const sigset_t *))

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 26))
#define HAVE_PWRITEV2 1
REAL(ssize_t, pwritev2, (int, const struct iovec *, int, off_t, int))
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 28))
#define HAVE_RENAMEAT2 1
REAL(int, renameat2, (int, const char *, int, const char *, unsigned int))
#endif

/* A libc without the function: nothing can have linked against it, but be safe. */
#define CALL_REAL(name, ...) (real_##name() ? real_##name()(__VA_ARGS__) : (errno = ENOSYS, -1))

/* ---- errno names ---------------------------------------------------------- */

static const struct {
  const char *name;
  int value;
} errnos[] = {
    {"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT},   {"EFBIG", EFBIG},   {"EROFS", EROFS},
    {"EACCES", EACCES}, {"EPERM", EPERM},   {"ENOENT", ENOENT},   {"EEXIST", EEXIST}, {"EINTR", EINTR},
    {"EAGAIN", EAGAIN}, {"EBADF", EBADF},   {"EINVAL", EINVAL},   {"EMFILE", EMFILE}, {"ENFILE", ENFILE},
    {"EBUSY", EBUSY},   {"EXDEV", EXDEV},   {"ENOTDIR", ENOTDIR}, {"EISDIR", EISDIR}, {"ENAMETOOLONG", ENAMETOOLONG},
    {"ENOMEM", ENOMEM}, {"ESTALE", ESTALE}, {"ENODEV", ENODEV},   {"ENXIO", ENXIO},
};

static int errno_value(const char *s) {
  for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
    if (strcmp(s, errnos[i].name) == 0) return errnos[i].value;
  char *end;
  long v = strtol(s, &end, 10);
  return (*s && !*end && v > 0 && v < 4096) ? (int)v : 0;
}

static void errno_name(int e, char *out, size_t n) {
  for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
    if (errnos[i].value == e) {
      snprintf(out, n, "%s", errnos[i].name);
      return;
    }
  snprintf(out, n, "errno=%d", e);
}

/* ---- the control file ------------------------------------------------------ */

static int parse_long(const char *s, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < 0) return 0;
  *out = v;
  return 1;
}

/* One line: 1 = a rule, 0 = blank or comment, -1 = bad (reason in *why). */
static int parse_rule(char *line, struct rule *r, const char **why) {
  char *hash = strchr(line, '#');
  if (hash) *hash = 0;
  char *save = NULL;
  char *tok = strtok_r(line, " \t\r", &save);
  if (!tok) return 0;
  memset(r, 0, sizeof *r);
  r->bytes = -1;
  r->count = -1;
  int call = -1;
  for (int c = 0; c < C_CALLS; c++)
    if (strcmp(tok, call_names[c]) == 0) call = c;
  if (call < 0) return *why = "unknown call", -1;
  r->call = (enum call)call;
  int have_path = 0;
  while ((tok = strtok_r(NULL, " \t\r", &save))) {
    char *eq = strchr(tok, '=');
    if (!eq) return *why = "expected key=value", -1;
    *eq = 0;
    const char *v = eq + 1;
    if (strcmp(tok, "path") == 0) {
      size_t n = strlen(v);
      if (n == 0 || n >= MAX_PATTERN) return *why = "bad path", -1;
      memcpy(r->pattern, v, n + 1);
      if (n > 1 && r->pattern[n - 1] == '$') {
        r->pattern[n - 1] = 0;
        r->anchored = 1;
      }
      have_path = 1;
    } else if (strcmp(tok, "errno") == 0) {
      if (!(r->err = errno_value(v))) return *why = "unknown errno", -1;
    } else if (strcmp(tok, "delay_us") == 0) {
      if (!parse_long(v, &r->delay_us)) return *why = "bad delay_us", -1;
    } else if (strcmp(tok, "bytes") == 0) {
      if (!parse_long(v, &r->bytes)) return *why = "bad bytes", -1;
      if (r->call != C_PWRITE && r->call != C_WRITE) return *why = "bytes= is for pwrite and write only", -1;
    } else if (strcmp(tok, "count") == 0) {
      if (!parse_long(v, &r->count)) return *why = "bad count", -1;
    } else if (strcmp(tok, "thread") == 0) {
      size_t n = strlen(v);
      if (n == 0 || n >= sizeof r->thread) return *why = "bad thread (1 to 15 characters)", -1;
      memcpy(r->thread, v, n + 1);
    } else {
      return *why = "unknown key", -1;
    }
  }
  if (!have_path) return *why = "path= is required (Node writes files too)", -1;
  if (!r->err && !r->delay_us && r->bytes < 0) return *why = "nothing to do: give errno=, delay_us= or bytes=", -1;
  return 1;
}

static void load(const char *cf) {
  nrules = 0;
  int fd = CALL_REAL(open, cf, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, control + len, MAX_CONTROL - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
    if (len == MAX_CONTROL) break;
  }
  CALL_REAL(close, fd);
  control[len] = 0;
  char *save = NULL;
  int lineno = 0;
  for (char *line = strtok_r(control, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lineno++; /* blank lines are skipped by strtok_r: numbers count non-empty lines */
    if (nrules == MAX_RULES) {
      fprintf(stderr, "iofault: %s: more than %d rules, the rest ignored\n", cf, MAX_RULES);
      break;
    }
    const char *why = NULL;
    int r = parse_rule(line, &rules[nrules], &why);
    if (r > 0) nrules++;
    if (r < 0) fprintf(stderr, "iofault: %s: rule %d ignored: %s\n", cf, lineno, why);
  }
}

static int same_file_state(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Under lock: reload the rules if the control file changed. */
static void refresh(const char *cf) {
  struct stat st;
  if (stat(cf, &st) != 0) {
    nrules = 0;
    have_loaded = 0;
    return;
  }
  if (have_loaded && same_file_state(&st, &loaded)) return;
  loaded = st;
  have_loaded = 1;
  load(cf);
}

/* ---- deciding one call ----------------------------------------------------- */

static int fd_path(int fd, char *out, size_t n) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t len = readlink(link, out, n - 1);
  if (len < 0) return 0;
  out[len] = 0;
  return 1;
}

/* An absolute path for (dirfd, path) as openat() would resolve it. */
static int full_path(int dirfd, const char *p, char *out, size_t n) {
  if (!p) return 0;
  if (p[0] == '/') {
    int len = snprintf(out, n, "%s", p);
    return len >= 0 && (size_t)len < n;
  }
  char base[PATH_MAX];
  if (dirfd == AT_FDCWD) {
    if (!getcwd(base, sizeof base)) return 0;
  } else if (!fd_path(dirfd, base, sizeof base)) {
    return 0;
  }
  int len = snprintf(out, n, "%s/%s", base, p);
  return len >= 0 && (size_t)len < n;
}

static int matches(const struct rule *r, const char *path) {
  if (r->anchored) {
    size_t lp = strlen(path), lr = strlen(r->pattern);
    return lp >= lr && strcmp(path + lp - lr, r->pattern) == 0;
  }
  return strstr(path, r->pattern) != NULL;
}

static void note(const char *cf, const char *fn, const struct effect *e, const char *path) {
  char logpath[PATH_MAX + 8], what[96] = "", name[32], line[PATH_MAX + 160];
  snprintf(logpath, sizeof logpath, "%s.log", cf);
  size_t w = 0;
  if (e->delay_us) w += (size_t)snprintf(what + w, sizeof what - w, "delay_us=%ld", e->delay_us);
  if (e->bytes >= 0) w += (size_t)snprintf(what + w, sizeof what - w, "%sbytes=%ld", w ? "," : "", e->bytes);
  if (e->err) {
    errno_name(e->err, name, sizeof name);
    snprintf(what + w, sizeof what - w, "%s%s", w ? "," : "", name);
  }
  int n = snprintf(line, sizeof line, "%s %s %s\n", fn, what, path);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  int fd = CALL_REAL(open, logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t wr = CALL_REAL(write, fd, line, (size_t)n); /* O_APPEND: one line, one write */
  (void)wr;
  CALL_REAL(close, fd);
}

/*
 * Does a rule apply to this call? `fd` >= 0: the file is the fd's; otherwise
 * p1 (and p2, for rename) are absolute paths. Fills *e and returns 1 when a
 * rule applies (and logs it); 0 to pass the call through untouched.
 */
static int decide(enum call c, const char *fn, int fd, const char *p1, const char *p2, struct effect *e) {
  if (in_shim) return 0;
  const char *cf = getenv("MSGS_FAULT_FILE");
  if (!cf || !*cf) return 0;
  int saved = errno;
  in_shim = 1;
  int hit = 0;
  char fdp[PATH_MAX];
  const char *path = NULL;
  pthread_mutex_lock(&lock);
  refresh(cf);
  int wanted = 0;
  for (int i = 0; i < nrules; i++) wanted |= rules[i].call == c && rules[i].count != 0;
  if (wanted && fd >= 0 && fd_path(fd, fdp, sizeof fdp)) p1 = fdp, p2 = NULL;
  else if (wanted && fd >= 0) p1 = p2 = NULL;
  size_t lcf = strlen(cf);
  char self[16] = "";
  if (wanted) prctl(PR_GET_NAME, self, 0, 0, 0);
  for (int i = 0; wanted && !hit && i < nrules; i++) {
    struct rule *r = &rules[i];
    if (r->call != c || r->count == 0) continue;
    if (r->thread[0] && strncmp(self, r->thread, strlen(r->thread)) != 0) continue;
    const char *cand[2] = {p1, p2};
    for (int k = 0; k < 2 && !hit; k++) {
      /* Never the control file or the shim's own log. */
      if (!cand[k] || strncmp(cand[k], cf, lcf) == 0 || !matches(r, cand[k])) continue;
      hit = 1;
      path = cand[k];
      if (r->count > 0) r->count--;
      e->err = r->err;
      e->delay_us = r->delay_us;
      e->bytes = r->bytes;
    }
  }
  pthread_mutex_unlock(&lock);
  if (hit) note(cf, fn, e, path);
  in_shim = 0;
  errno = saved;
  return hit;
}

/* The delay, then: 1 = fail the call now (errno set), 0 = go on. */
static int before(const struct effect *e) {
  if (e->delay_us > 0) {
    struct timespec ts = {e->delay_us / 1000000, (e->delay_us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  if (e->err) {
    errno = e->err;
    return 1;
  }
  return 0;
}

static size_t limit(size_t n, const struct effect *e, int hit) {
  return hit && e->bytes >= 0 && (size_t)e->bytes < n ? (size_t)e->bytes : n;
}

/* Copies iov, cut to `bytes` in total; returns the new count. */
static int limit_iov(const struct iovec *iov, int cnt, long bytes, struct iovec *out) {
  int k = 0;
  for (int i = 0; i < cnt && k < IOV_MAX && bytes > 0; i++) {
    out[k] = iov[i];
    if ((long)out[k].iov_len > bytes) out[k].iov_len = (size_t)bytes;
    bytes -= (long)out[k].iov_len;
    k++;
  }
  return k;
}

#define PATH_OF(dirfd, p, buf) (full_path((dirfd), (p), (buf), sizeof(buf)) ? (buf) : NULL)

/* ---- the wrappers ------------------------------------------------------------ */

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  struct effect e;
  int hit = decide(C_PWRITE, "pwrite", fd, NULL, NULL, &e);
  if (hit && before(&e)) return -1;
  return CALL_REAL(pwrite, fd, buf, limit(n, &e, hit), off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
  struct effect e;
  int hit = decide(C_PWRITE, "pwrite64", fd, NULL, NULL, &e);
  if (hit && before(&e)) return -1;
  return CALL_REAL(pwrite64, fd, buf, limit(n, &e, hit), off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
  struct effect e;
  struct iovec cut[IOV_MAX];
  int hit = decide(C_PWRITE, "pwritev", fd, NULL, NULL, &e);
  if (hit && before(&e)) return -1;
  if (hit && e.bytes >= 0) return CALL_REAL(pwritev, fd, cut, limit_iov(iov, cnt, e.bytes, cut), off);
  return CALL_REAL(pwritev, fd, iov, cnt, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off) {
  struct effect e;
  struct iovec cut[IOV_MAX];
  int hit = decide(C_PWRITE, "pwritev64", fd, NULL, NULL, &e);
  if (hit && before(&e)) return -1;
  if (hit && e.bytes >= 0) return CALL_REAL(pwritev64, fd, cut, limit_iov(iov, cnt, e.bytes, cut), off);
  return CALL_REAL(pwritev64, fd, iov, cnt, off);
}

#ifdef HAVE_PWRITEV2
ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags) {
  struct effect e;
  struct iovec cut[IOV_MAX];
  int hit = decide(C_PWRITE, "pwritev2", fd, NULL, NULL, &e);
  if (hit && before(&e)) return -1;
  if (hit && e.bytes >= 0) return CALL_REAL(pwritev2, fd, cut, limit_iov(iov, cnt, e.bytes, cut), off, flags);
  return CALL_REAL(pwritev2, fd, iov, cnt, off, flags);
}
#endif

/* write(): Node writes pipes and files all the time; only path matches count. */
ssize_t write(int fd, const void *buf, size_t n) {
  struct effect e;
  int hit = decide(C_WRITE, "write", fd, NULL, NULL, &e);
  if (hit && before(&e)) return -1;
  return CALL_REAL(write, fd, buf, limit(n, &e, hit));
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  struct effect e;
  struct iovec cut[IOV_MAX];
  int hit = decide(C_WRITE, "writev", fd, NULL, NULL, &e);
  if (hit && before(&e)) return -1;
  if (hit && e.bytes >= 0) return CALL_REAL(writev, fd, cut, limit_iov(iov, cnt, e.bytes, cut));
  return CALL_REAL(writev, fd, iov, cnt);
}

int fdatasync(int fd) {
  struct effect e;
  if (decide(C_FDATASYNC, "fdatasync", fd, NULL, NULL, &e) && before(&e)) return -1;
  return CALL_REAL(fdatasync, fd);
}

int fsync(int fd) {
  struct effect e;
  if (decide(C_FSYNC, "fsync", fd, NULL, NULL, &e) && before(&e)) return -1;
  return CALL_REAL(fsync, fd);
}

int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags) {
  struct effect e;
  if (decide(C_SYNC_FILE_RANGE, "sync_file_range", fd, NULL, NULL, &e) && before(&e)) return -1;
  return CALL_REAL(sync_file_range, fd, off, n, flags);
}

int ftruncate(int fd, off_t len) {
  struct effect e;
  if (decide(C_FTRUNCATE, "ftruncate", fd, NULL, NULL, &e) && before(&e)) return -1;
  return CALL_REAL(ftruncate, fd, len);
}

int ftruncate64(int fd, off64_t len) {
  struct effect e;
  if (decide(C_FTRUNCATE, "ftruncate64", fd, NULL, NULL, &e) && before(&e)) return -1;
  return CALL_REAL(ftruncate64, fd, len);
}

int rename(const char *from, const char *to) {
  struct effect e;
  char a[PATH_MAX], b[PATH_MAX];
  if (decide(C_RENAME, "rename", -1, PATH_OF(AT_FDCWD, from, a), PATH_OF(AT_FDCWD, to, b), &e) && before(&e)) return -1;
  return CALL_REAL(rename, from, to);
}

int renameat(int fromfd, const char *from, int tofd, const char *to) {
  struct effect e;
  char a[PATH_MAX], b[PATH_MAX];
  if (decide(C_RENAME, "renameat", -1, PATH_OF(fromfd, from, a), PATH_OF(tofd, to, b), &e) && before(&e)) return -1;
  return CALL_REAL(renameat, fromfd, from, tofd, to);
}

#ifdef HAVE_RENAMEAT2
int renameat2(int fromfd, const char *from, int tofd, const char *to, unsigned int flags) {
  struct effect e;
  char a[PATH_MAX], b[PATH_MAX];
  if (decide(C_RENAME, "renameat2", -1, PATH_OF(fromfd, from, a), PATH_OF(tofd, to, b), &e) && before(&e)) return -1;
  return CALL_REAL(renameat2, fromfd, from, tofd, to, flags);
}
#endif

int unlink(const char *p) {
  struct effect e;
  char a[PATH_MAX];
  if (decide(C_UNLINK, "unlink", -1, PATH_OF(AT_FDCWD, p, a), NULL, &e) && before(&e)) return -1;
  return CALL_REAL(unlink, p);
}

int unlinkat(int dirfd, const char *p, int flags) {
  struct effect e;
  char a[PATH_MAX];
  if (decide(C_UNLINK, "unlinkat", -1, PATH_OF(dirfd, p, a), NULL, &e) && before(&e)) return -1;
  return CALL_REAL(unlinkat, dirfd, p, flags);
}

/* Linux releases the fd even when close fails: so does an injected failure. */
int close(int fd) {
  struct effect e;
  int hit = decide(C_CLOSE, "close", fd, NULL, NULL, &e);
  if (hit && e.delay_us) {
    struct effect delay_only = {0, e.delay_us, -1};
    before(&delay_only);
  }
  int r = CALL_REAL(close, fd);
  if (hit && e.err) {
    errno = e.err;
    return -1;
  }
  return r;
}

/* ---- open: an injected failure creates nothing ------------------------------- */

static int takes_mode(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

static int open_fault(const char *fn, int dirfd, const char *p) {
  struct effect e;
  char a[PATH_MAX];
  return decide(C_OPEN, fn, -1, PATH_OF(dirfd, p, a), NULL, &e) && before(&e);
}

#define MODE_ARG(flags)              \
  mode_t mode = 0;                   \
  if (takes_mode(flags)) {           \
    va_list ap;                      \
    va_start(ap, flags);             \
    mode = (mode_t)va_arg(ap, int);  \
    va_end(ap);                      \
  }

int open(const char *p, int flags, ...) {
  MODE_ARG(flags)
  if (open_fault("open", AT_FDCWD, p)) return -1;
  return CALL_REAL(open, p, flags, mode);
}

int open64(const char *p, int flags, ...) {
  MODE_ARG(flags)
  if (open_fault("open64", AT_FDCWD, p)) return -1;
  return CALL_REAL(open64, p, flags, mode);
}

int openat(int dirfd, const char *p, int flags, ...) {
  MODE_ARG(flags)
  if (open_fault("openat", dirfd, p)) return -1;
  return CALL_REAL(openat, dirfd, p, flags, mode);
}

int openat64(int dirfd, const char *p, int flags, ...) {
  MODE_ARG(flags)
  if (open_fault("openat64", dirfd, p)) return -1;
  return CALL_REAL(openat64, dirfd, p, flags, mode);
}

int creat(const char *p, mode_t mode) {
  if (open_fault("creat", AT_FDCWD, p)) return -1;
  return CALL_REAL(creat, p, mode);
}

int creat64(const char *p, mode_t mode) {
  if (open_fault("creat64", AT_FDCWD, p)) return -1;
  return CALL_REAL(creat64, p, mode);
}

/* The _FORTIFY_SOURCE entry points (open without a mode). */
int __open_2(const char *p, int flags);
int __open64_2(const char *p, int flags);
int __openat_2(int dirfd, const char *p, int flags);
int __openat64_2(int dirfd, const char *p, int flags);

int __open_2(const char *p, int flags) {
  if (open_fault("open", AT_FDCWD, p)) return -1;
  return CALL_REAL(__open_2, p, flags);
}

int __open64_2(const char *p, int flags) {
  if (open_fault("open64", AT_FDCWD, p)) return -1;
  return CALL_REAL(__open64_2, p, flags);
}

int __openat_2(int dirfd, const char *p, int flags) {
  if (open_fault("openat", dirfd, p)) return -1;
  return CALL_REAL(__openat_2, dirfd, p, flags);
}

int __openat64_2(int dirfd, const char *p, int flags) {
  if (open_fault("openat64", dirfd, p)) return -1;
  return CALL_REAL(__openat64_2, dirfd, p, flags);
}

/* The event loops' poll. */
int epoll_wait(int fd, struct epoll_event *ev, int max, int timeout) {
  struct effect e;
  if (decide(C_EPOLL_WAIT, "epoll_wait", fd, NULL, NULL, &e) && before(&e)) return -1;
  return CALL_REAL(epoll_wait, fd, ev, max, timeout);
}

int epoll_pwait(int fd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask) {
  struct effect e;
  if (decide(C_EPOLL_WAIT, "epoll_pwait", fd, NULL, NULL, &e) && before(&e)) return -1;
  return CALL_REAL(epoll_pwait, fd, ev, max, timeout, mask);
}
