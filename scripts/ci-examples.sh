#!/usr/bin/env bash
# Checks the deployment examples (docs/operations.md says what is and is not
# tested):
# - examples/systemd/msgserver.service: `systemd-analyze verify` on a copy
#   whose ExecStart points at this checkout's dist/cli/msgserver.js (verify
#   needs the binary to exist), then the directives the docs promise.
# - examples/docker/Dockerfile: no Docker engine runs in CI, so it is not
#   built; its structure is linted: a node base image, a non-root USER, a
#   VOLUME, a HEALTHCHECK on /healthz, an exec-form ENTRYPOINT of the bin.
# Needs `npm run build:ts` (dist/) and systemd-analyze (Debian's systemd).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fail() { echo "ci-examples: $*" >&2; exit 1; }

unit=${MSGS_EXAMPLE_UNIT:-examples/systemd/msgserver.service}
docker=${MSGS_EXAMPLE_DOCKERFILE:-examples/docker/Dockerfile}
bin="$root/dist/cli/msgserver.js"
test -f "$unit" || fail "$unit is missing"
test -f "$docker" || fail "$docker is missing"
test -x "$bin" || fail "$bin is missing or not executable (build first: npx tsc -p tsconfig.json && node scripts/bin-modes.js)"
command -v systemd-analyze >/dev/null || fail "systemd-analyze is not installed (apt-get install systemd)"

# ---- systemd ----
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The same unit, with ExecStart pointing at this checkout's bin.
sed -E "s#^ExecStart=/usr/local/bin/msgserver #ExecStart=$bin #" "$unit" >"$work/msgserver.service"
grep -q "^ExecStart=$bin " "$work/msgserver.service" || fail "ExecStart in $unit is not /usr/local/bin/msgserver ..."
# verify warns about the User= that does not exist here; only real errors fail it.
out=$(systemd-analyze verify --man=no "$work/msgserver.service" 2>&1) || { echo "$out" >&2; fail "systemd-analyze verify failed"; }
bad=$(echo "$out" | grep -v -E "^$|User|Group|msgserver\.service: Failed to (add dependency|load)|network-online" || true)
if echo "$out" | grep -qiE "unknown (key|section|lvalue)|invalid|failed to parse|ignoring"; then
  echo "$out" >&2
  fail "systemd-analyze verify reported problems in the unit"
fi
[ -z "$bad" ] || echo "ci-examples: systemd-analyze says: $bad"

need() { grep -qE "$2" "$1" || fail "$1: missing $3"; }
need "$unit" '^ExecStart=/[^ ]*/msgserver ' 'ExecStart running the installed bin directly'
if grep -qE '^ExecStart=.*(npx|npm )' "$unit"; then fail "$unit: ExecStart must not go through npx/npm (they do not forward signals)"; fi
need "$unit" '^ExecReload=/bin/kill -HUP \$MAINPID$' 'ExecReload=/bin/kill -HUP $MAINPID'
need "$unit" '^KillSignal=SIGTERM$' 'KillSignal=SIGTERM'
need "$unit" '^Restart=on-failure$' 'Restart=on-failure'
need "$unit" '^LimitNOFILE=[0-9]+$' 'LimitNOFILE'
need "$unit" '^TimeoutStopSec=[0-9]+$' 'TimeoutStopSec'
# The stop timeout must exceed the CLI's close timeout (close() waits up to 5 s for ACKs).
stop=$(sed -nE 's/^TimeoutStopSec=([0-9]+)$/\1/p' "$unit")
close_ms=$(grep -oE 'timeoutMs \?\? [0-9_]+' lib/server/server.ts | head -1 | grep -oE '[0-9_]+$' | tr -d _)
[ -n "$close_ms" ] || fail "cannot find close()'s default timeout in lib/server/server.ts"
[ "$((stop * 1000))" -gt "$close_ms" ] || fail "TimeoutStopSec=$stop is not above the close timeout ($close_ms ms)"
echo "ci-examples: $unit verified (systemd-analyze verify; TimeoutStopSec=$stop s > close timeout $close_ms ms)"

# ---- Docker (lint only: no engine here) ----
need "$docker" '^FROM node:[0-9]+' 'a node base image (FROM node:<version>...)'
need "$docker" '^USER [a-z_][a-z0-9_-]*$' 'a USER line'
if grep -qE '^USER (root|0)$' "$docker"; then fail "$docker: runs as root"; fi
need "$docker" '^VOLUME ' 'a VOLUME for the log'
need "$docker" '^HEALTHCHECK .*' 'a HEALTHCHECK'
grep -A2 '^HEALTHCHECK' "$docker" | grep -q '/healthz' || fail "$docker: the HEALTHCHECK does not ask /healthz"
need "$docker" '^ENTRYPOINT \["msgserver"' 'an exec-form ENTRYPOINT running the msgserver bin'
need "$docker" '^STOPSIGNAL SIGTERM$' 'STOPSIGNAL SIGTERM'
# The volume holds the log path the image configures.
vol=$(sed -nE 's/^VOLUME \["([^"]+)"\]$/\1/p' "$docker")
logpath=$(grep -oE 'MSGSERVER_FILE=[^ \\]+' "$docker" | head -1 | cut -d= -f2)
[ -n "$vol" ] && [ -n "$logpath" ] || fail "$docker: VOLUME [\"...\"] and MSGSERVER_FILE must both be set"
case "$logpath" in "$vol"/*) ;; *) fail "$docker: the log ($logpath) is not on the volume ($vol)";; esac
# USER comes after the package install (which needs root) and before ENTRYPOINT.
u=$(grep -n '^USER ' "$docker" | head -1 | cut -d: -f1)
e=$(grep -n '^ENTRYPOINT ' "$docker" | cut -d: -f1)
i=$(grep -n 'npm install -g' "$docker" | head -1 | cut -d: -f1)
[ "$i" -lt "$u" ] && [ "$u" -lt "$e" ] || fail "$docker: USER must come after the install and before ENTRYPOINT"
# The HEALTHCHECK command is valid JavaScript (node -e ...).
js=$(grep -A1 '^HEALTHCHECK' "$docker" | tail -1 | python3 -c 'import json,sys; l=sys.stdin.read().strip(); print(json.loads(l[len("CMD "):])[2])')
node --check <(echo "$js") >/dev/null 2>&1 || node -e "new Function(process.argv[1])" "$js" || fail "$docker: the HEALTHCHECK script does not parse"
echo "ci-examples: $docker linted (not built: no Docker engine)"
