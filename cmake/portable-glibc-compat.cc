// Linked into the portable prebuilds only (CMakeLists.txt, MSGS_PORTABLE=ON).
//
// The static libstdc++ of GCC 12, built on glibc 2.36, calls arc4random()
// (std::random_device, pulled in by the library's own string instantiations
// even when msgserver never uses it). glibc has arc4random only since 2.36, so
// the call alone would make the prebuild need GLIBC_2.36. This hidden
// definition satisfies the call inside the module, with the same meaning
// (random bytes from the kernel's CSPRNG, getrandom(2): glibc 2.25), so the
// prebuild needs only the glibc baseline the README states.
#include <sys/random.h>

#include <cerrno>
#include <cstdint>

extern "C" __attribute__((visibility("hidden"))) uint32_t arc4random(void) {
  uint32_t v = 0;
  unsigned char* p = reinterpret_cast<unsigned char*>(&v);
  size_t got = 0;
  while (got < sizeof v) {
    ssize_t n = getrandom(p + got, sizeof v - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
    else if (n < 0 && errno != EINTR) __builtin_trap();  // no kernel CSPRNG: cannot happen on Linux >= 3.17
  }
  return v;
}
