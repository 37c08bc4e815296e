#!/bin/sh
# Prepares a clone of msgserver for `npm test` on Debian or Ubuntu: installs
# the build packages with apt-get (through sudo when not root), then the npm
# dependencies (npm ci).
#
#   sh scripts/setup.sh && npm test
#
# Options:
#   --prebuilds   also what `npm run prebuilds` needs: the arm64 cross
#                 compiler, qemu-user-static, Debian's arm64 C library (and
#                 libssl-dev:arm64 headers), dpkg-dev, binutils
#   --no-npm      install the system packages only
#   -y            do not ask before installing (also when stdin is not a terminal)
#
# The packages (Debian 12 names):
#   cmake g++ make pkg-config libevent-dev   the native unit tests and source builds
#   libssl-dev                               OpenSSL 3 headers (TLS; the addon uses Node's own OpenSSL)
#   ninja-build                              faster native builds
#   libnats-dev                              the JetStream sink in source builds
# The test suites that need nats-server and haproxy skip without them
# (apt-get install nats-server haproxy to run them too).
set -eu
cd "$(dirname "$0")/.."

say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

prebuilds=0 npm=1 yes=0
for a in "$@"; do
  case $a in
    --prebuilds) prebuilds=1 ;;
    --no-npm) npm=0 ;;
    -y | --yes) yes=1 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $a (see: sh scripts/setup.sh --help)" ;;
  esac
done

[ "$(uname -s)" = Linux ] || die "msgserver's engine runs on Linux only (eventfd, epoll)"
command -v apt-get >/dev/null 2>&1 ||
  die "apt-get not found: this script is for Debian/Ubuntu. Elsewhere install cmake, a C++17 compiler, make, pkg-config and libevent 2.1's headers, then run npm ci"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
  die "node and npm are needed first (Node 20, 22, 24 or 26): https://nodejs.org/"

packages="cmake g++ make pkg-config libevent-dev libssl-dev ninja-build libnats-dev"
arm64_packages=""
if [ "$prebuilds" = 1 ]; then
  packages="$packages gcc dpkg-dev binutils g++-aarch64-linux-gnu qemu-user-static"
  arm64_packages="libc6:arm64 libstdc++6:arm64 libssl-dev:arm64"
fi

# what is not installed yet
missing=""
for p in $packages $arm64_packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
missing=${missing# }

if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    sudo=""
  elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    die "not root and no sudo: as root, run apt-get update && apt-get install $missing"
  fi
  say "installing with apt-get${sudo:+ (through sudo)}: $missing"
  if [ "$yes" = 0 ] && [ -t 0 ]; then
    printf 'setup: continue? [Y/n] '
    read -r answer || answer=n
    case $answer in [nN]*) die "stopped; nothing installed" ;; esac
  fi
  if [ -n "$arm64_packages" ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    say "adding the arm64 architecture to dpkg (for $arm64_packages)"
    $sudo dpkg --add-architecture arm64
  fi
  $sudo apt-get update -qq || die "apt-get update failed (network? the mirrors in /etc/apt/sources.list*)"
  # shellcheck disable=SC2086
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
    die "apt-get install $missing failed (run it by hand to see why)"
  say "installed: $missing"
else
  say "the build packages are installed already ($packages${arm64_packages:+ $arm64_packages})"
fi

if [ "$npm" = 1 ]; then
  say "npm ci"
  npm ci --no-audit --no-fund
fi
say "ready: npm test"
