#!/usr/bin/env bash
# Builds and tests msgserver as a machine without libnats-dev would: the NATS
# headers are hidden (an empty directory bind-mounted over /usr/include/nats
# in a private mount namespace), so CMake must choose the JetStream sink that
# refuses to start. Runs the native unit tests and the end-to-end suites
# against that addon, and the test that checks its "not in this build"
# message. Needs root (unshare -m) and a prior `npm run build:ts` + test
# compile (dist/, dist-test/).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${MSGS_NO_NATS_INNER:-}" != 1 ]; then
  empty=$(mktemp -d)
  trap 'rmdir "$empty"' EXIT
  exec unshare -m env MSGS_NO_NATS_INNER=1 MSGS_EMPTY_DIR="$empty" bash "$0" "$@"
fi

if [ -d /usr/include/nats ]; then
  mount --bind "$MSGS_EMPTY_DIR" /usr/include/nats
fi
test ! -e /usr/include/nats/nats.h || { echo "ci-no-nats: nats.h is still visible" >&2; exit 1; }

rm -rf build-nonats build-tests-nonats
npx cmake-js rebuild --out build-nonats --CDMSGS_BUILD_BENCH=OFF 2>&1 | grep -E "nats.h|error|warning" || true
addon="$PWD/build-nonats/Release/msgserver.node"
test -f "$addon"
MSGSERVER_ADDON="$addon" node -e '
  const a = require("./dist/server/native").loadAddon();
  const why = a.jetstreamAvailability();
  if (!/not in this build/.test(why)) { console.error("ci-no-nats: the addon has the JetStream sink: " + why); process.exit(1); }
  console.log("ci-no-nats: " + why);'

MSGS_NATIVE_TESTS_DIR=build-tests-nonats node scripts/native-tests.js

# The JetStream suites need the sink; here only its refusal is tested.
env -u MSGS_REQUIRE_NATS MSGSERVER_ADDON="$addon" node --test --test-concurrency=1 \
  dist-test/e2e.test.js dist-test/lifecycle.test.js dist-test/hooks.test.js dist-test/durability.test.js \
  dist-test/bad-input.test.js dist-test/io-faults.test.js
env -u MSGS_REQUIRE_NATS MSGSERVER_ADDON="$addon" node --test --test-name-pattern 'without libnats' dist-test/jetstream.test.js
