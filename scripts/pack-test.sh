#!/usr/bin/env bash
# Packaging test (run by .ci/run): the npm tarball installs and works
#   1. with its prebuilt addon, on a machine without a compiler: PATH holds only
#      node, npm, sh and tripwires named g++/c++/gcc/cc/cmake/make/ninja/clang++
#      that record any call; PREBUILDS_ONLY=1, npm_config_build_from_source=false;
#      the install script is approved (it runs, and must not build);
#   2. without prebuilds/ and without cmake-js: the install stops with one
#      message that names what to install (no stack trace);
#   3. without prebuilds/, with cmake-js and node-addon-api in the project: it
#      builds from source against the system libevent;
#   4. and every prebuilt file in the installed package passes
#      scripts/check-prebuilds.js: built from the package's sources, NEEDED only
#      glibc, libgcc_s and the libevent it carries ($ORIGIN), and no symbol
#      version above the baseline the package's README states (objdump -T).
# Each install runs scripts/pack-smoke.js: the exports map (require, import,
# no deep imports), which addon loads, then a MessageServer on port 0, 1,000
# messages with MessageClient, read back with readLog.
# Needs the prebuilds (npm run prebuilds) and network access to the npm
# registry (or a warm npm cache) for the dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$SECONDS
say() { echo "pack-test: $*"; }
die() { echo "pack-test: FAIL: $*" >&2; exit 1; }

for a in x64 arm64; do
  [ -f "prebuilds/linux-$a/msgserver.node" ] || die "prebuilds/linux-$a/msgserver.node is missing: run 'npm run prebuilds' and commit prebuilds/"
done
prebuild=prebuilds/linux-x64/msgserver.node

work=$(mktemp -d "${TMPDIR:-/tmp}/msgserver-pack-test.XXXXXX")
if [ -z "${KEEP_PACK_TEST:-}" ]; then trap 'rm -rf "$work"' EXIT; else say "keeping $work"; fi

# --- the tarball -------------------------------------------------------------
say "npm pack"
npm pack --pack-destination "$work" --json >"$work/pack.json" 2>"$work/pack.err" ||
  { cat "$work/pack.err" >&2; die "npm pack failed"; }
tgz="$work/$(node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[0].filename)' "$work/pack.json")"
[ -f "$tgz" ] || die "npm pack did not produce $tgz"
tar -tzf "$tgz" >"$work/tarball.txt"
for f in "$prebuild" prebuilds/linux-x64/libevent_core-2.1.so.7 prebuilds/linux-arm64/msgserver.node \
  prebuilds/linux-arm64/libevent_core-2.1.so.7 LICENSE THIRD_PARTY_NOTICES; do
  grep -qx "package/$f" "$work/tarball.txt" || die "the tarball has no $f"
done
say "    $(wc -l <"$work/tarball.txt") files, $(du -k "$tgz" | cut -f1) KiB packed"

# the same tarball without prebuilds/
mkdir "$work/unpacked"
tar -xzf "$tgz" -C "$work/unpacked"
rm -rf "$work/unpacked/package/prebuilds"
tgz_src="$work/msgserver-no-prebuilds.tgz"
tar -czf "$tgz_src" -C "$work/unpacked" package

new_project() { # dir tarball: a project whose package.json approves msgserver's install script
  mkdir -p "$1"
  printf '{ "name": "%s", "version": "1.0.0", "private": true, "allowScripts": { "file:%s": true } }\n' \
    "$(basename "$1")" "$2" >"$1/package.json"
}
npm_install() { # dir log [env...] -- packages...
  local dir=$1 log=$2
  shift 2
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  (cd "$dir" && env "${envs[@]}" npm install --no-audit --no-fund --prefer-offline --foreground-scripts "$@") >"$log" 2>&1
}
smoke() { # dir expected-addon [env...]
  local dir=$1 expect=$2
  shift 2
  (cd "$dir" && env "$@" EXPECT_ADDON="$expect" node "$root/scripts/pack-smoke.js" "$dir")
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

say "1/4 install with prebuilds/, compiler hidden"
new_project "$work/with-prebuild" "$tgz"
t0=$SECONDS
npm_install "$work/with-prebuild" "$work/install-prebuild.log" "${hidden[@]}" -- "$tgz" ||
  { cat "$work/install-prebuild.log" >&2; die "npm install of the tarball failed (log above)"; }
grep -q 'node scripts/install.js' "$work/install-prebuild.log" || { cat "$work/install-prebuild.log" >&2; die "the install script did not run"; }
[ ! -s "$work/tripwire.log" ] || { cat "$work/tripwire.log" >&2; die "the prebuilt install ran build tools (above)"; }
inst="$work/with-prebuild/node_modules/msgserver"
[ ! -e "$inst/build" ] || die "the prebuilt install created build/: it compiled"
smoke "$work/with-prebuild" "$prebuild" "${hidden[@]}" || die "smoke test failed with the prebuilt addon"
[ ! -s "$work/tripwire.log" ] || die "running the package called build tools"
size_kb=$(du -sk "$work/with-prebuild/node_modules" | cut -f1)
say "    ok ($((SECONDS - t0)) s); installed: node_modules $((size_kb / 1024)) MiB in $(find "$work/with-prebuild/node_modules" -name package.json -path '*/node_modules/*/package.json' -not -path '*/node_modules/*/node_modules/*/*/package.json' | wc -l) packages, msgserver $(du -sk "$inst" | cut -f1) KiB"

# --- 2. no prebuilds/, no cmake-js: one message -------------------------------------
say "2/4 install without prebuilds/ and without cmake-js: one message"
new_project "$work/no-cmake-js" "$tgz_src"
if npm_install "$work/no-cmake-js" "$work/install-no-cmake-js.log" -- "$tgz_src"; then
  die "the install without prebuilds and cmake-js succeeded; it cannot have built anything"
fi
grep -q 'npm install --save-dev cmake-js@' "$work/install-no-cmake-js.log" ||
  { cat "$work/install-no-cmake-js.log" >&2; die "the failed install does not say to install cmake-js"; }
! grep -qE '^\s+at .*\(.*:[0-9]+:[0-9]+\)$' "$work/install-no-cmake-js.log" ||
  { cat "$work/install-no-cmake-js.log" >&2; die "the failed install printed a stack trace"; }
say "    ok: $(grep -m1 'needs cmake-js' "$work/install-no-cmake-js.log" | sed 's/^npm error //')"

# --- 3. no prebuilds/: build from source ----------------------------------------
say "3/4 install without prebuilds/, with cmake-js: build from source"
new_project "$work/from-source" "$tgz_src"
t0=$SECONDS
dev=$(node -p 'const d = require("./package.json").devDependencies; `cmake-js@${d["cmake-js"]} node-addon-api@${d["node-addon-api"]}`')
# shellcheck disable=SC2086
npm_install "$work/from-source" "$work/install-source.log" -- "$tgz_src" $dev ||
  { cat "$work/install-source.log" >&2; die "the source install failed (log above)"; }
inst_src="$work/from-source/node_modules/msgserver"
[ ! -e "$inst_src/prebuilds" ] || die "the no-prebuilds tarball still has prebuilds/"
[ -f "$inst_src/build/Release/msgserver.node" ] || { cat "$work/install-source.log" >&2; die "no build/Release/msgserver.node after the source install"; }
readelf -d "$inst_src/build/Release/msgserver.node" | grep -q 'NEEDED.*libevent_core' || die "the source build does not link the system libevent"
! readelf -d "$inst_src/build/Release/msgserver.node" | grep -q 'RUNPATH\|RPATH' || die "the source build has a run path (only prebuilds should)"
smoke "$work/from-source" build/Release/msgserver.node || die "smoke test failed with the source-built addon"
say "    ok ($((SECONDS - t0)) s)"

# --- 4. the installed prebuilds: sources, NEEDED, symbol versions ------------------
say "4/4 the installed prebuilds against the installed README's platform table"
node "$root/scripts/check-prebuilds.js" --dir "$inst" | sed 's/^check-prebuilds: /pack-test:     /' ||
  die "the installed prebuilds fail the checks above"

say "passed in $((SECONDS - start)) s"
