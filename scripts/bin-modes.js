#!/usr/bin/env node
// Makes the CLIs in dist/cli executable after tsc wrote them (tsc writes
// 0644). npm does this for an installed dependency's bins, but not for the
// package's own checkout, where `npx msgserver` runs them directly.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const pkg = require('../package.json');
for (const rel of Object.values(pkg.bin)) {
  const file = path.join(__dirname, '..', rel);
  if (fs.existsSync(file)) fs.chmodSync(file, 0o755);
}
