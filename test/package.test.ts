// Packaging: what `npm pack` ships, whether the committed prebuild was built
// from the current native/ sources, and what the loader says when the addon
// cannot load. (scripts/pack-test.sh installs the real tarball; .ci/run runs it.)
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

const root = path.join(__dirname, '..');
const prebuildsDir = path.join(root, 'prebuilds');
const prebuild = path.join(prebuildsDir, 'linux-x64', 'msgserver.node');
const nativeJs = path.join(root, 'dist', 'native.js');

/** The hash CMakeLists.txt embeds as MSGS_SOURCE_HASH (exported as sourceHash). */
function nativeSourceHash(dir: string): string {
  const sha = (b: Buffer | string): string => crypto.createHash('sha256').update(b).digest('hex');
  const names = fs
    .readdirSync(dir)
    .filter((n) => /\.(cc|h)$/.test(n))
    .sort();
  return sha(names.map((n) => `${n}:${sha(fs.readFileSync(path.join(dir, n)))}\n`).join(''));
}

function walk(dir: string, base = dir): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p, base) : [path.relative(base, p).split(path.sep).join('/')];
  });
}

// Everything the tarball may hold. Anything else (tests, build outputs, bench
// results, logs, docs) is a packaging bug; widen this list on purpose only.
const ALLOWED: RegExp[] = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE(\.\w+)?$/,
  /^CMakeLists\.txt$/,
  /^scripts\/install\.js$/,
  /^native\/[^/]+\.(cc|h)$/,
  /^dist\/.+\.(js|js\.map|d\.ts|d\.ts\.map)$/,
  /^prebuilds\/[^/]+\/[^/]+\.node$/,
];

test('npm pack ships dist/, prebuilds/, native/ sources, CMakeLists.txt and the install script, nothing else', () => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const files: string[] = (JSON.parse(out) as { files: { path: string }[] }[])[0].files.map((f) => f.path);
  const have = new Set(files);
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    main: string;
    types: string;
    bin: Record<string, string>;
  };

  const required = [
    'package.json',
    'README.md',
    'CMakeLists.txt',
    'scripts/install.js',
    pkg.main,
    pkg.types,
    'dist/native.js',
    ...Object.values(pkg.bin),
    ...walk(path.join(root, 'native'))
      .filter((n) => /\.(cc|h)$/.test(n))
      .map((n) => `native/${n}`),
    // the committed prebuilds, once there are any
    ...walk(prebuildsDir).map((n) => `prebuilds/${n}`),
  ].map((p) => p.replace(/^\.\//, ''));
  const missing = required.filter((p) => !have.has(p));
  assert.deepEqual(missing, [], `npm pack leaves out: ${missing.join(', ')}`);

  const extra = files.filter((f) => !ALLOWED.some((re) => re.test(f)));
  assert.deepEqual(extra, [], `npm pack ships files that do not belong in the package: ${extra.join(', ')}`);
  for (const f of files) {
    assert.doesNotMatch(f, /^(test|build[^/]*|dist-test|bench|fuzz|node_modules|docs|\.ci)\//, `${f} must not be packed`);
    assert.doesNotMatch(f, /\.(log|o|a|tgz)$|CMakeCache|crash-/, `${f} looks like a build output or a log`);
  }

  // every dist/ file comes from a lib/ source (no stale outputs of deleted modules)
  const stale = files
    .filter((f) => f.startsWith('dist/'))
    .map((f) => f.replace(/^dist\//, 'lib/').replace(/\.(js|js\.map|d\.ts|d\.ts\.map)$/, '.ts'))
    .filter((src) => !fs.existsSync(path.join(root, src)));
  assert.deepEqual(stale, [], `dist/ holds outputs without a lib/ source (rebuild dist/): ${stale.join(', ')}`);
});

test(
  'the committed prebuild was built from the current native/ sources',
  {
    skip: !fs.existsSync(prebuildsDir)
      ? 'prebuilds/ does not exist yet (native/ is still changing; `npm run prebuilds` creates it)'
      : `${process.platform}-${process.arch}` !== 'linux-x64'
        ? `prebuilds/linux-x64 cannot load on ${process.platform}-${process.arch}`
        : false,
  },
  () => {
    assert.ok(fs.existsSync(prebuild), `prebuilds/ exists but ${path.relative(root, prebuild)} does not: run \`npm run prebuilds\``);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const addon = require(prebuild) as { sourceHash: string };
    const want = nativeSourceHash(path.join(root, 'native'));
    assert.equal(
      addon.sourceHash,
      want,
      `${path.relative(root, prebuild)} is stale: it was built from native/ sources hashing to ${addon.sourceHash}, ` +
        `native/ now hashes to ${want}. Run \`npm run prebuilds\` and commit prebuilds/.`,
    );
  },
);

// Runs loadAddon() in a child process; returns the error message it threw.
function loaderError(env: Record<string, string | undefined>, nativeModule = nativeJs): string {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const k of Object.keys(childEnv)) if (childEnv[k] === undefined) delete childEnv[k];
  const r = spawnSync(
    process.execPath,
    [
      '-e',
      'try { require(process.argv[1]).loadAddon(); } catch (e) { process.stdout.write(e.message); process.exit(3); }',
      nativeModule,
    ],
    { env: childEnv, encoding: 'utf8' },
  );
  assert.equal(r.status, 3, `loadAddon() should have thrown; stderr: ${r.stderr}`);
  return r.stdout;
}

const BUILD_FIX = /apt-get install libevent-dev cmake g\+\+.*npm rebuild msgserver/;

// A package directory holding dist/native.js and, optionally, a prebuild.
function fakePackage(prebuildBytes?: Buffer): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msgserver-loader-'));
  fs.mkdirSync(path.join(dir, 'dist'));
  fs.copyFileSync(nativeJs, path.join(dir, 'dist', 'native.js'));
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "name": "msgserver", "version": "0.0.0" }\n');
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  if (prebuildBytes) {
    const p = path.join(dir, 'prebuilds', `${process.platform}-${process.arch}`, 'msgserver.node');
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, prebuildBytes);
  }
  return dir;
}

test('loader error: no prebuild for this platform and no build names both, and how to build', () => {
  const dir = fakePackage();
  try {
    const msg = loaderError({ MSGSERVER_ADDON: undefined }, path.join(dir, 'dist', 'native.js'));
    assert.match(msg, /no prebuilt binary/i);
    assert.match(msg, new RegExp(`${process.platform}-${process.arch}`));
    assert.match(msg, BUILD_FIX);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("loader error: a prebuild for another platform names the loader's reason and how to build for this one", () => {
  // a 32-bit ELF where a linux-x64 binary should be: "wrong ELF class: ELFCLASS32"
  const elf32 = Buffer.alloc(64);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]).copy(elf32);
  const dir = fakePackage(elf32);
  try {
    const msg = loaderError({ MSGSERVER_ADDON: undefined }, path.join(dir, 'dist', 'native.js'));
    assert.match(msg, /wrong ELF class|invalid ELF header|file too short/);
    assert.match(msg, BUILD_FIX);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loader error: MSGSERVER_ADDON pointing at nothing names the variable and the path', () => {
  const bogus = path.join(os.tmpdir(), 'msgserver-no-such-dir', 'msgserver.node');
  const msg = loaderError({ MSGSERVER_ADDON: bogus });
  assert.ok(msg.includes(bogus), msg);
  assert.match(msg, /MSGSERVER_ADDON/);
});

const someBuild = [prebuild, path.join(root, 'build', 'Release', 'msgserver.node')].find((p) => fs.existsSync(p));
test(
  'loader error: a missing libevent runtime names the library and the package to install',
  { skip: someBuild ? false : 'no built addon (prebuilds/ or build/Release) to copy' },
  () => {
    // a copy of the addon whose NEEDED entry names a libevent that does not exist
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msgserver-noevent-'));
    try {
      const bin = fs.readFileSync(someBuild!);
      const from = Buffer.from('libevent_core-2.1.so.7');
      const at = bin.indexOf(from);
      assert.ok(at >= 0, 'the addon does not link libevent_core-2.1.so.7');
      Buffer.from('libevent_core-2.1.so.0').copy(bin, at);
      fs.writeFileSync(path.join(dir, 'msgserver.node'), bin);
      const msg = loaderError({ MSGSERVER_ADDON: path.join(dir, 'msgserver.node') });
      assert.match(msg, /libevent_core-2\.1\.so\.0/);
      assert.match(msg, /apt-get install libevent-2\.1-7/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
