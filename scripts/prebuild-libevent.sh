#!/usr/bin/env bash
# Builds the libevent_core-2.1.so.7 that a prebuilt addon ships next to itself
# (prebuilds/linux-<arch>/, found through the addon's $ORIGIN run path), from
# Debian 12's libevent source package with its security updates, and a private
# sysroot (headers, .so, pkg-config file) that scripts/prebuild.js links the
# prebuild against. Source builds of msgserver never use it: they link the
# system libevent.
#
# Why not Debian's binary: Debian 12's libevent_core-2.1.so.7 is built on
# glibc 2.36 and calls its arc4random()/arc4random_buf() (GLIBC_2.36), so it
# does not load on glibc 2.34/2.35 (RHEL 9, Ubuntu 22.04). Built here with
# libevent's own arc4random (what libevent does on glibc < 2.36), the library
# needs GLIBC_2.33 at most; everything else is Debian's source and patches.
# Debian 11's binary needs only glibc 2.25 but lacks the security fixes that
# Debian 12 carries.
#
# Usage: scripts/prebuild-libevent.sh x64|arm64 OUT_DIR
#   OUT_DIR/include/event2/...          headers (with this build's event-config.h)
#   OUT_DIR/lib/libevent_core-2.1.so.7  the library to ship (stripped)
#   OUT_DIR/lib/pkgconfig/libevent_core.pc
#   OUT_DIR/copyright                   Debian's copyright file (the license texts)
#   OUT_DIR/VERSION                     the Debian source version
# Reuses OUT_DIR when it was built from the same source version by this same
# script. Downloads (apt lists, source package) are cached in
# $MSGS_LIBEVENT_CACHE (default /var/cache/msgs-libevent, or
# ~/.cache/msgs-libevent when that is not writable).
# Needs: apt-get, dpkg-source (dpkg-dev), make, gcc (x64) or
# gcc-aarch64-linux-gnu (arm64). Network: Debian's mirrors (the ones apt uses).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
arch=${1:?usage: prebuild-libevent.sh x64|arm64 OUT_DIR}
out=${2:?usage: prebuild-libevent.sh x64|arm64 OUT_DIR}
say() { echo "prebuild-libevent($arch): $*"; }
die() { echo "prebuild-libevent($arch): $*" >&2; exit 1; }

case $arch in
  x64) triplet=x86_64-linux-gnu; extra_cflags='-fcf-protection' ;;
  arm64) triplet=aarch64-linux-gnu; extra_cflags='-mbranch-protection=standard' ;;
  *) die "unknown architecture $arch (x64 or arm64)" ;;
esac
cc=$triplet-gcc
strip=$triplet-strip
command -v "$cc" >/dev/null || { [ "$arch" = x64 ] && command -v gcc >/dev/null && cc=gcc && strip=strip; } ||
  die "no C compiler for $arch: apt-get install $([ "$arch" = x64 ] && echo gcc || echo gcc-aarch64-linux-gnu)"
command -v "$strip" >/dev/null || strip=strip
for t in apt-get dpkg-source make; do
  command -v "$t" >/dev/null || die "$t is missing: apt-get install $([ "$t" = dpkg-source ] && echo dpkg-dev || echo "$t")"
done

cache=${MSGS_LIBEVENT_CACHE:-/var/cache/msgs-libevent}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/msgs-libevent
  mkdir -p "$cache"
fi
recipe=$(sha256sum "$0" | cut -c1-16)

# --- the source package (Debian 12 + its security updates) -------------------
# A private apt state: only deb-src entries, nothing of the host's apt touched.
. "$here/debian-mirror.sh"
apt_dir=$cache/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts" "$apt_dir/prefs" "$cache/src"
: >"$apt_dir/status"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || die "$keyring is missing: apt-get install debian-archive-keyring"
cat >"$apt_dir/sources.list" <<EOF
deb-src [signed-by=$keyring] $DEBIAN_MIRROR bookworm main
deb-src [signed-by=$keyring] $DEBIAN_MIRROR bookworm-updates main
deb-src [signed-by=$keyring] $DEBIAN_SECURITY_MIRROR bookworm-security main
EOF
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
  -o "Dir::Etc::PreferencesParts=$apt_dir/prefs" -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::State::status=$apt_dir/status" -o "Dir::Cache=$apt_dir/cache" -o Acquire::Languages=none
  -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
dsc=
if apt-get "${apt_opts[@]}" -qq update 2>"$cache/apt-update.err"; then
  version=$(apt-get "${apt_opts[@]}" -qq source --print-uris libevent 2>/dev/null |
    sed -n "s/.* libevent_\([^ ]*\)\.dsc .*/\1/p" | head -n1)
  [ -n "$version" ] || die "no libevent source package in Debian 12 at $DEBIAN_MIRROR"
  dsc=$cache/src/libevent_$version.dsc
  if [ ! -f "$dsc" ]; then
    say "downloading Debian's libevent $version source from $DEBIAN_MIRROR"
    (cd "$cache/src" && apt-get "${apt_opts[@]}" -qq source --download-only libevent >/dev/null) ||
      die "apt-get source libevent failed"
  fi
else
  # offline: the newest source package downloaded before
  dsc=$(ls -1 "$cache"/src/libevent_*.dsc 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$dsc" ] || { cat "$cache/apt-update.err" >&2; die "cannot reach Debian's mirror ($DEBIAN_MIRROR) and no libevent source is cached in $cache/src"; }
  version=$(basename "$dsc" .dsc | sed 's/^libevent_//')
  say "Debian's mirror is not reachable; using the cached source $version"
fi

stamp="$version recipe $recipe"
if [ -f "$out/VERSION" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ] && [ -f "$out/lib/libevent_core-2.1.so.7" ]; then
  say "up to date: $out (libevent $version)"
  exit 0
fi

# --- build -------------------------------------------------------------------
build=$cache/build-$arch
rm -rf "$build"
dpkg-source --no-check -x "$dsc" "$build" >/dev/null
cd "$build"
# Debian's patches touch Makefile.am (a linker flag); keep the shipped
# configure/Makefile.in and do not let make re-run automake.
touch aclocal.m4 && sleep 1 && touch configure Makefile.in config.h.in
cat >"$build/no-glibc-arc4random.h" <<'EOF'
/* Forced in front of every libevent source: glibc 2.36 declares arc4random(3)
 * in <stdlib.h>; libevent then includes its own copy as static functions with
 * the same names. Renaming them keeps the library off GLIBC_2.36. */
#include <stdlib.h>
#define arc4random msgs_libevent_arc4random
#define arc4random_buf msgs_libevent_arc4random_buf
#define arc4random_uniform msgs_libevent_arc4random_uniform
EOF
# Debian's flags (hardening=+all), its configure options, and no glibc arc4random.
say "configure (Debian libevent $version, --host=$triplet)"
./configure -q --host="$triplet" --prefix=/usr \
  --disable-openssl --disable-libevent-regress --disable-samples --disable-static \
  ac_cv_func_arc4random=no ac_cv_func_arc4random_buf=no ac_cv_func_arc4random_addrandom=no \
  CC="$cc" CFLAGS="-g -O2 -fstack-protector-strong -Wformat -Werror=format-security $extra_cflags" \
  CPPFLAGS="-D_FORTIFY_SOURCE=2" LDFLAGS="-Wl,-z,relro -Wl,-z,now" >"$build/configure.log" 2>&1 ||
  { tail -n 30 "$build/configure.log" >&2; die "configure failed (log: $build/configure.log)"; }
say "make libevent_core"
{ make -j"$(nproc)" include/event2/event-config.h &&
  make -j"$(nproc)" CPPFLAGS="-D_FORTIFY_SOURCE=2 -D_GNU_SOURCE -include $build/no-glibc-arc4random.h" libevent_core.la; } \
  >"$build/make.log" 2>&1 || { tail -n 30 "$build/make.log" >&2; die "make failed (log: $build/make.log)"; }

so=$build/.libs/libevent_core-2.1.so.7
[ -f "$so" ] || die "the build made no $so"
if objdump -T "$so" | grep -q 'arc4random'; then die "$so still calls glibc's arc4random"; fi

# --- the sysroot ---------------------------------------------------------------
rm -rf "$out"
mkdir -p "$out/include/event2" "$out/lib/pkgconfig"
cp include/*.h "$out/include/"
cp include/event2/*.h "$out/include/event2/"
cp "$(readlink -f "$so")" "$out/lib/libevent_core-2.1.so.7"
"$strip" --strip-unneeded "$out/lib/libevent_core-2.1.so.7"
ln -s libevent_core-2.1.so.7 "$out/lib/libevent_core.so"
cat >"$out/lib/pkgconfig/libevent_core.pc" <<EOF
prefix=$out
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: libevent_core
Description: libevent_core (Debian $version, built by scripts/prebuild-libevent.sh for $triplet)
Version: 2.1.12-stable
Libs: -L\${libdir} -levent_core
Cflags: -I\${includedir}
EOF
cp debian/copyright "$out/copyright"
echo "$version" >"$out/VERSION"
echo "$stamp" >"$out/.stamp"
say "built $out/lib/libevent_core-2.1.so.7 (Debian libevent $version)"
