#!/usr/bin/env bash
# Packaging test (run by .ci/run): the npm tarball installs and works
#   1. with its prebuilt addon, on a machine without a compiler: PATH holds only
#      node, npm, sh and tripwires named g++/c++/gcc/cc/cmake/make/ninja/clang++
#      that record any call; PREBUILDS_ONLY=1, npm_config_build_from_source=false;
#   2. without prebuilds/, by building from source with cmake-js;
#   3. and the prebuilt .node needs only glibc, libstdc++, libgcc_s and
#      libevent_core-2.1.so.7 (readelf NEEDED).
# Each install runs a script that starts a MessageServer on port 0, sends
# 1,000 messages with MessageClient, and reads them back with readLog.
# Needs prebuilds/linux-x64/msgserver.node (npm run prebuilds) and network
# access to the npm registry (or a warm npm cache) for the dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$SECONDS
say() { echo "pack-test: $*"; }
die() { echo "pack-test: FAIL: $*" >&2; exit 1; }

prebuild=prebuilds/linux-x64/msgserver.node
[ -f "$prebuild" ] || die "$prebuild is missing: run 'npm run prebuilds' and commit prebuilds/"

work=$(mktemp -d "${TMPDIR:-/tmp}/msgserver-pack-test.XXXXXX")
if [ -z "${KEEP_PACK_TEST:-}" ]; then trap 'rm -rf "$work"' EXIT; else say "keeping $work"; fi

# --- the tarball -------------------------------------------------------------
say "npm pack"
npm pack --pack-destination "$work" --json >"$work/pack.json" 2>"$work/pack.err" ||
  { cat "$work/pack.err" >&2; die "npm pack failed"; }
tgz="$work/$(node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[0].filename)' "$work/pack.json")"
[ -f "$tgz" ] || die "npm pack did not produce $tgz"
tar -tzf "$tgz" >"$work/tarball.txt"
grep -qx "package/$prebuild" "$work/tarball.txt" || die "the tarball has no $prebuild"

# the same tarball without prebuilds/
mkdir "$work/unpacked"
tar -xzf "$tgz" -C "$work/unpacked"
rm -rf "$work/unpacked/package/prebuilds"
tgz_src="$work/msgserver-no-prebuilds.tgz"
tar -czf "$tgz_src" -C "$work/unpacked" package

# --- the script each install must pass ------------------------------------------
cat >"$work/smoke.js" <<'JS'
'use strict';
// Starts a server on port 0, sends 1,000 messages, reads them back.
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { MessageServer, MessageClient, readLog } = require('msgserver');
const { loadAddon } = require('msgserver/dist/native');

const N = 1000;
const pkgDir = path.dirname(require.resolve('msgserver/package.json'));

async function main() {
  // which binary node-gyp-build picked, and was it built from these sources?
  const gypBuild = require(require.resolve('node-gyp-build', { paths: [pkgDir] }));
  const picked = path.relative(pkgDir, gypBuild.path(pkgDir));
  const want = process.env.EXPECT_ADDON;
  assert.equal(picked, want, `loaded ${picked}, expected ${want}`);
  const native = path.join(pkgDir, 'native');
  const names = fs.readdirSync(native).filter((n) => /\.(cc|h)$/.test(n)).sort();
  const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
  const hash = sha(names.map((n) => `${n}:${sha(fs.readFileSync(path.join(native, n)))}\n`).join(''));
  assert.equal(loadAddon().sourceHash, hash, 'the addon was not built from the native/ sources in the package');

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msgserver-smoke-'));
  const file = path.join(dir, 'messages.log');
  const server = new MessageServer({ port: 0, file: { path: file } });
  const { port } = await server.listen();
  const client = await MessageClient.connect({ port, clientId: 4242, firstMsgId: 1 });
  const payload = (i) => `message ${i} ${'x'.repeat(i % 97)}`;
  const acks = await Promise.all(Array.from({ length: N }, (_, i) => client.send(payload(i), { name: `n${i % 10}` })));
  assert.equal(acks.length, N);
  acks.forEach((a, i) => {
    assert.equal(a.statusName, 'OK', `message ${i}: ${a.statusName}`);
    assert.equal(a.msgId, BigInt(i + 1));
  });
  await client.close();
  await server.close();

  let i = 0;
  for await (const rec of readLog(file)) {
    assert.equal(rec.clientId, 4242);
    assert.equal(rec.msgId, BigInt(i + 1));
    assert.equal(rec.name, `n${i % 10}`);
    assert.equal(rec.payload.toString(), payload(i));
    i++;
  }
  assert.equal(i, N, `readLog returned ${i} records, expected ${N}`);
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(`smoke: ${N} messages sent, ACKed and read back (addon ${picked})`);
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
JS

new_project() {
  mkdir -p "$1"
  printf '{ "name": "%s", "version": "1.0.0", "private": true }\n' "$(basename "$1")" >"$1/package.json"
  cp "$work/smoke.js" "$1/"
}
npm_install() { # dir tarball log [env...]
  local dir=$1 tarball=$2 log=$3
  shift 3
  (cd "$dir" && env "$@" npm install --no-audit --no-fund --prefer-offline --foreground-scripts "$tarball") >"$log" 2>&1 ||
    { cat "$log" >&2; die "npm install $(basename "$tarball") failed in $(basename "$dir") (log above)"; }
}

# --- 1. prebuilt binary, no compiler ----------------------------------------
bin="$work/bin"
mkdir "$bin"
ln -s "$(command -v node)" "$bin/node"
ln -s "$(readlink -f "$(command -v npm)")" "$bin/npm"
ln -s /bin/sh "$bin/sh" # npm runs scripts with `sh -c`
for t in g++ c++ gcc cc clang clang++ cmake make ninja ld; do
  printf '#!/bin/sh\necho "%s $*" >>"%s"\nexit 127\n' "$t" "$work/tripwire.log" >"$bin/$t"
  chmod +x "$bin/$t"
done
hidden=(PATH="$bin" PREBUILDS_ONLY=1 npm_config_build_from_source=false)
for t in g++ c++ cmake; do
  env "${hidden[@]}" /bin/sh -c "command -v $t" | grep -q "^$bin/" || die "hidden PATH still finds a real $t"
done

say "1/3 install with prebuilds/, compiler hidden"
new_project "$work/with-prebuild"
t0=$SECONDS
npm_install "$work/with-prebuild" "$tgz" "$work/install-prebuild.log" "${hidden[@]}"
[ ! -s "$work/tripwire.log" ] || { cat "$work/tripwire.log" >&2; die "the prebuilt install ran build tools (above)"; }
inst="$work/with-prebuild/node_modules/msgserver"
[ ! -e "$inst/build" ] || die "the prebuilt install created build/: it compiled"
(cd "$work/with-prebuild" && env "${hidden[@]}" EXPECT_ADDON="$prebuild" node smoke.js) ||
  die "smoke test failed with the prebuilt addon"
[ ! -s "$work/tripwire.log" ] || die "running the package called build tools"
say "    ok ($((SECONDS - t0)) s)"

# --- 2. no prebuilds/: build from source ----------------------------------------
say "2/3 install without prebuilds/, build from source"
new_project "$work/from-source"
t0=$SECONDS
npm_install "$work/from-source" "$tgz_src" "$work/install-source.log"
inst_src="$work/from-source/node_modules/msgserver"
[ ! -e "$inst_src/prebuilds" ] || die "the no-prebuilds tarball still has prebuilds/"
[ -f "$inst_src/build/Release/msgserver.node" ] || { cat "$work/install-source.log" >&2; die "no build/Release/msgserver.node after the source install"; }
(cd "$work/from-source" && EXPECT_ADDON=build/Release/msgserver.node node smoke.js) ||
  die "smoke test failed with the source-built addon"
say "    ok ($((SECONDS - t0)) s)"

# --- 3. what the prebuilt binary links against ---------------------------------
say "3/3 readelf NEEDED of the prebuilt addon"
allowed='^(libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libstdc\+\+\.so\.6|libpthread\.so\.0|libevent_core-2\.1\.so\.7)$'
needed=$(readelf -d -W "$inst/$prebuild" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[ -n "$needed" ] || die "readelf found no NEEDED entries in $prebuild"
extra=$(grep -Ev "$allowed" <<<"$needed" || true)
[ -z "$extra" ] || die "$prebuild needs libraries beyond glibc, libstdc++, libgcc_s and libevent_core: $(echo $extra)"
say "    ok: $(echo $needed)"

say "passed in $((SECONDS - start)) s"
