#!/usr/bin/env bash
# CI stage: the README's commands on a fresh machine. Makes a minimal Debian 12
# root (debootstrap --variant=minbase bookworm), copies in only the running
# Node and npm (plus this machine's CA bundle and npm configuration, so npm
# reaches its registry as the host does), clones this repository's HEAD commit
# into it, and inside chroot runs
#   1. the Quick start: npm install && npx msgserver; one message sent with
#      msgclient must come back ACKed OK and be in messages.log;
#   2. the test command: sh scripts/setup.sh && npm test.
# Nothing of the host's environment leaks in (env -i): MSGS_REQUIRE_NATS is
# not set there, so the NATS/HAProxy suites skip, as on a user's machine.
#
# Needs root, debootstrap, git, and the network to Debian's mirror (the one
# apt uses here) and the npm registry. Packages debootstrap downloads are
# cached in /var/cache/msgs-debootstrap. KEEP_FRESH_ROOT=1 keeps the root.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
start=$SECONDS
say() { echo "fresh-root: $* [$((SECONDS - start)) s]"; }
die() { echo "fresh-root: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, bind mounts)"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
. scripts/debian-mirror.sh

work=$(mktemp -d /var/tmp/msgs-fresh-root.XXXXXX)
rootfs=$work/root
mounts=()
cleanup() {
  local rc=$? m i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    m=${mounts[i]}
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "fresh-root: could not unmount $m" >&2
  done
  # never delete while anything is still mounted below the root (that would
  # delete the host's /dev, /proc or /sys contents)
  if grep -q " $work/" /proc/mounts; then
    echo "fresh-root: $work still has mounts; not deleting it" >&2
  elif [ -n "${KEEP_FRESH_ROOT:-}" ]; then
    echo "fresh-root: kept $rootfs"
  else
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- a fresh Debian 12 ---------------------------------------------------------
cache=/var/cache/msgs-debootstrap
mkdir -p "$cache"
say "debootstrap --variant=minbase bookworm ($DEBIAN_MIRROR)"
debootstrap --variant=minbase --cache-dir="$cache" bookworm "$rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb $DEBIAN_SECURITY_MIRROR bookworm-security main
EOF
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
say "root ready: $(. "$rootfs/etc/os-release" && echo "$PRETTY_NAME"), glibc $(chroot "$rootfs" ldd --version | head -n1 | awk '{print $NF}')"

# --- only Node and npm ------------------------------------------------------------
node_bin=$(command -v node)
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")") # .../node_modules/npm
install -D -m 755 "$node_bin" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules"
cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
# The CA bundle at a path of its own: installing ca-certificates in the root
# (setup.sh's packages pull it in) rewrites /etc/ssl/certs/ca-certificates.crt.
ca=/opt/host-ca/ca-certificates.crt
mkdir -p "$rootfs/opt/host-ca"
cat /etc/ssl/certs/ca-certificates.crt ${NODE_EXTRA_CA_CERTS:+"$NODE_EXTRA_CA_CERTS"} 2>/dev/null >"$rootfs$ca" || true
[ -s "$rootfs$ca" ] || die "no CA bundle found on this machine"
# npm's configuration, with its cafile pointing at that copy
npmrc() { [ -f "$1" ] && sed "s#^\(\s*cafile\s*=\).*#\1$ca#" "$1" >"$2" || true; }
mkdir -p "$rootfs/usr/local/etc"
npmrc /usr/etc/npmrc "$rootfs/usr/local/etc/npmrc" # the global config (prefix /usr here, /usr/local there)
npmrc /etc/npmrc "$rootfs/etc/npmrc"
npmrc "$HOME/.npmrc" "$rootfs/root/.npmrc"
say "copied Node $(node --version) and npm $(npm --version)"

# --- the commit -------------------------------------------------------------------
# exactly HEAD, also when it is a detached commit on no branch
git clone -q --no-checkout "$repo" "$rootfs/root/msgserver"
git -C "$rootfs/root/msgserver" fetch -q "$repo" HEAD
git -C "$rootfs/root/msgserver" checkout -q --detach FETCH_HEAD
[ "$(git -C "$rootfs/root/msgserver" rev-parse HEAD)" = "$(git rev-parse HEAD)" ] || die "the clone is not at HEAD"
say "cloned $(git -C "$rootfs/root/msgserver" log -1 --format='%h %s' | cut -c1-70)"

for m in proc sys dev dev/pts; do
  mount --bind "/$m" "$rootfs/$m"
  mounts+=("$rootfs/$m")
done

in_root() { # runs bash -c "$1" in the root, as a user's login would: a clean environment
  chroot "$rootfs" /usr/bin/env -i HOME=/root USER=root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin NODE_EXTRA_CA_CERTS="$ca" \
    /bin/bash -euo pipefail -c "$1"
}

# --- 1. the Quick start -----------------------------------------------------------------
say "1/2 Quick start: npm install && npx msgserver, one message with msgclient"
in_root '
cd /root/msgserver
npm install --no-audit --no-fund >/tmp/npm-install.log 2>&1 || { cat /tmp/npm-install.log; exit 1; }
echo "fresh-root:   npm install: ok"
# in a process group of its own: npx does not pass SIGTERM on to the server,
# so stop() signals the whole group (npm, sh, node) and waits for all of it
setsid npx msgserver >/tmp/msgserver.log 2>&1 &
server=$!
stop() {
  kill -TERM -- "-$server" 2>/dev/null || return 0
  for i in $(seq 1 100); do kill -0 -- "-$server" 2>/dev/null || return 0; sleep 0.1; done
  echo "the server did not stop within 10 s of SIGTERM"; kill -KILL -- "-$server" 2>/dev/null; return 1
}
trap stop EXIT
for i in $(seq 1 120); do
  grep -q "listening on" /tmp/msgserver.log && break
  kill -0 "$server" 2>/dev/null || { cat /tmp/msgserver.log; echo "the server exited"; exit 1; }
  sleep 0.5
done
grep -q "listening on" /tmp/msgserver.log || { cat /tmp/msgserver.log; echo "the server did not start listening"; exit 1; }
echo "fresh-root:   $(grep -m1 "listening on" /tmp/msgserver.log)"
out=$(npx msgclient --port 9000 hello-from-a-fresh-root 2>&1) || { echo "$out"; exit 1; }
echo "fresh-root:   msgclient: $out"
case $out in "ack msg_id=1 status=OK"*) ;; *) cat /tmp/msgserver.log; echo "no OK ACK"; exit 1 ;; esac
trap - EXIT
stop
grep -q "\"msg\":\"closed\"" /tmp/msgserver.log || { cat /tmp/msgserver.log; echo "the server did not close on SIGTERM"; exit 1; }
records=$(npx msglog cat messages.log)
[ "$(echo "$records" | wc -l)" = 1 ] && echo "$records" | grep -q "\"payload\":\"hello-from-a-fresh-root\"" ||
  { echo "$records"; echo "messages.log does not hold exactly that message"; exit 1; }
echo "fresh-root:   server stopped; messages.log holds the message: $records"
' || die "the Quick start failed in the fresh root"

# --- 2. the test command --------------------------------------------------------------------
say "2/2 sh scripts/setup.sh && npm test"
in_root '
cd /root/msgserver
sh scripts/setup.sh </dev/null 2>&1
if npm test >/tmp/npm-test.log 2>&1; then rc=0; else rc=$?; fi
grep -E "^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) " /tmp/npm-test.log | sed "s/^/fresh-root:   /" || true
sed -n "s/^ok [0-9]* - .*# SKIP \(.*\)/\1/p" /tmp/npm-test.log | sort | uniq -c | sed "s/^ */fresh-root:   skipped: /" || true
[ "$rc" = 0 ] || { grep -A 30 "^not ok" /tmp/npm-test.log | head -n 300; tail -n 20 /tmp/npm-test.log; echo "npm test exited with $rc"; exit 1; }
' || die "sh scripts/setup.sh && npm test failed in the fresh root"
say "passed"
