#!/usr/bin/env node
// Stands in for node-gyp when prebuildify runs (`prebuildify --node-gyp
// scripts/cmake-js-shim.js`): prebuildify has no cmake-js backend, and passing
// cmake-js itself fails because cmake-js reads `--target=<node version>` as a
// build target. This drops node-gyp's arguments (rebuild, --target, --devdir,
// --release, ...) and runs `cmake-js rebuild`, keeping only --arch and --debug.
// The project is built in Node-API mode (package.json "binary.napi_versions"),
// so the Node version does not matter and no headers are downloaded.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const args = ['rebuild'];
for (const a of process.argv.slice(2)) {
  const arch = /^--arch=(.+)$/.exec(a);
  if (arch) args.push('--arch', arch[1]);
  else if (a === '--debug') args.push('--debug');
}
const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
console.log(`cmake-js-shim: cmake-js ${args.join(' ')}`);
const r = spawnSync(process.execPath, [cmakeJs, ...args], { cwd: root, stdio: 'inherit' });
if (r.error) {
  console.error(`cmake-js-shim: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
