#include "nats_api.h"

#include <dlfcn.h>

#include <cstdlib>
#include <vector>

namespace msgs {

namespace {

// The soname of Debian's libnats3.4; libnats.so (the -dev symlink) as a
// fallback for a libnats built from source.
constexpr const char* kLibraries[] = {"libnats.so.3.4", "libnats.so"};
constexpr const char* kInstallHint = "install the NATS C client: apt-get install libnats3.4";

struct Loaded {
  NatsApi api;
  bool ok = false;
  std::string why;
};

Loaded load() {
  Loaded l;
  void* h = nullptr;
  std::string errors;
  // MSGSERVER_LIBNATS: a libnats elsewhere than the linker's search path.
  std::vector<const char*> names(std::begin(kLibraries), std::end(kLibraries));
  if (const char* own = getenv("MSGSERVER_LIBNATS"); own && *own) names.assign(1, own);
  for (const char* name : names) {
    h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (h) break;
    const char* e = dlerror();
    errors += std::string(errors.empty() ? "" : "; ") + (e ? e : name);
  }
  if (!h) {
    l.why = "jetstream needs libnats, which cannot be loaded (" + errors + "); " + kInstallHint;
    return l;
  }
#define MSGS_NATS_RESOLVE(f)                                                                     \
  l.api.f = reinterpret_cast<decltype(l.api.f)>(dlsym(h, #f));                                   \
  if (!l.api.f) {                                                                                \
    l.why = std::string("jetstream needs libnats 3.4 or newer: the installed one lacks ") + #f + \
            "; " + kInstallHint;                                                                 \
    return l;                                                                                    \
  }
  MSGS_NATS_FUNCTIONS(MSGS_NATS_RESOLVE)
#undef MSGS_NATS_RESOLVE
  // The handle is never closed: libnats keeps threads and globals for the
  // life of the process.
  l.ok = true;
  return l;
}

}  // namespace

const NatsApi* load_nats(std::string* why) {
  static Loaded loaded = load();  // C++11 magic static: loaded once, thread-safe
  if (!loaded.ok) {
    if (why) *why = loaded.why;
    return nullptr;
  }
  return &loaded.api;
}

}  // namespace msgs
