# Sourced by scripts that fetch from Debian (prebuild-libevent.sh,
# ci-fresh-root.sh): sets DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR to the
# mirrors this machine's apt uses (/etc/apt/sources.list{,.d/*}), so they work
# where only those mirrors are reachable. MSGS_DEBIAN_MIRROR and
# MSGS_DEBIAN_SECURITY_MIRROR override them.
debian_uris() {
  # deb822 "URIs:" lines and one-line "deb[-src] [opts] URI suite ..." entries
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && cat "$f"
  done |
    sed -n -e 's/^[[:space:]]*URIs:[[:space:]]*//p' \
      -e 's/^[[:space:]]*deb\(-src\)\?[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\3/p' |
    tr ' \t' '\n\n' | sed -e '/^$/d' -e 's:/*$::'
}
DEBIAN_MIRROR=${MSGS_DEBIAN_MIRROR:-$(debian_uris | grep -E '^https?://.*/debian$' | head -n1 || true)}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${MSGS_DEBIAN_SECURITY_MIRROR:-$(debian_uris | grep -E '^https?://.*/debian-security$' | head -n1 || true)}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
