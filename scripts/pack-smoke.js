#!/usr/bin/env node
// The end-to-end check each installed copy of the package must pass
// (scripts/pack-test.sh, scripts/ci-arm64.sh): in PROJECT_DIR, where
// `npm install <the tarball>` ran, it
//   - requires 'msgserver' and imports it as ESM (the exports map), and checks
//     that internal files are not importable;
//   - checks which binary node-gyp-build picks (EXPECT_ADDON, relative to the
//     package) and that it was built from the package's native/ sources;
//   - when the prebuild carries libevent, checks that it is the libevent the
//     process loaded;
//   - starts a MessageServer on port 0, sends 1,000 messages with
//     MessageClient, and reads them back with readLog.
// Usage: node scripts/pack-smoke.js PROJECT_DIR   (env EXPECT_ADDON=prebuilds/linux-x64/msgserver.node)
'use strict';
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const { createRequire } = require('node:module');
const os = require('node:os');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

const N = 1000;
const project = path.resolve(process.argv[2] || '.');
const req = createRequire(path.join(project, 'package.json'));

async function main() {
  const t0 = Date.now();
  const pkgDir = path.dirname(req.resolve('msgserver/package.json'));
  const { MessageServer, MessageClient, readLog } = req('msgserver');

  // the exports map: ESM import works with named exports; internals are not exported
  const esm = await import(pathToFileURL(req.resolve('msgserver')).href);
  assert.equal(typeof esm.MessageServer, 'function', 'import { MessageServer } from "msgserver" does not work');
  assert.throws(() => req('msgserver/dist/server/native.js'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });

  // which binary node-gyp-build picked, and was it built from these sources?
  const gypBuild = req(req.resolve('node-gyp-build', { paths: [pkgDir] }));
  const picked = path.relative(pkgDir, gypBuild.path(pkgDir));
  const want = process.env.EXPECT_ADDON;
  if (want) assert.equal(picked, want, `loaded ${picked}, expected ${want}`);
  const native = path.join(pkgDir, 'native');
  const names = fs.readdirSync(native).filter((n) => /\.(cc|h)$/.test(n)).sort();
  const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
  const hash = sha(names.map((n) => `${n}:${sha(fs.readFileSync(path.join(native, n)))}\n`).join(''));
  // loaded the way the package's loader does (node-gyp-build on the package directory)
  assert.equal(gypBuild(pkgDir).sourceHash, hash, 'the addon was not built from the native/ sources in the package');

  const bundled = path.join(path.dirname(path.join(pkgDir, picked)), 'libevent_core-2.1.so.7');
  const loaded = fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .map((l) => l.split(/\s+/)[5])
    .filter((p) => p && /libevent_core/.test(p));
  if (fs.existsSync(bundled)) assert.deepEqual([...new Set(loaded)], [bundled], 'the prebuild did not use the libevent it carries');

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
  console.log(
    `smoke: ${process.arch} Node ${process.version}: ${N} messages sent, ACKed and read back ` +
      `(addon ${picked}${loaded.length ? `, ${path.relative(pkgDir, loaded[0])}` : ''}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
