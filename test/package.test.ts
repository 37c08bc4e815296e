// Packaging: what `npm pack` ships (and nothing else), the package's metadata
// (exports map, licenses, dependencies, engines), whether the committed
// prebuilds were built from the current sources and keep the README's
// platform baseline (scripts/check-prebuilds.js), that the x64 prebuild loads
// with PREBUILDS_ONLY=1 together with the libevent it carries, and what the
// loader says when the addon cannot load. (scripts/pack-test.sh installs the
// real tarball; .ci/run runs it, and this file under Node 22, 24 and 26.)
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

const root = path.join(__dirname, '..');
const prebuildsDir = path.join(root, 'prebuilds');
const prebuild = path.join(prebuildsDir, 'linux-x64', 'msgserver.node');
const nativeJs = path.join(root, 'dist', 'server', 'native.js');

// eslint-disable-next-line @typescript-eslint/no-require-imports
const checks = require(path.join(root, 'scripts', 'check-prebuilds.js')) as {
  checkPrebuilds(opts: { dir?: string; arches?: string[] }): { ok: boolean; lines: string[] };
  nativeSourceHash(root: string): string;
};

interface PackageJson {
  main: string;
  types: string;
  bin: Record<string, string>;
  exports: Record<string, string | Record<string, string>>;
  engines: { node: string };
  license: string;
  repository?: unknown;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as PackageJson;

function walk(dir: string, base = dir): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p, base) : [path.relative(base, p).split(path.sep).join('/')];
  });
}

// Everything the tarball may hold. Anything else (tests, build outputs, bench
// results, logs) is a packaging bug; widen this list on purpose only.
const ALLOWED: RegExp[] = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE$/,
  /^THIRD_PARTY_NOTICES$/,
  /^CMakeLists\.txt$/,
  /^scripts\/install\.js$/,
  /^native\/[^/]+\.(cc|h)$/,
  /^bench\/loadgen\/[^/]+\.(cc|h)$/, // the bench engine's sources, for source builds
  /^docs\/[^/]+\.md$/,
  /^bench\/BENCHMARKS\.md$/, // linked from the README
  /^bench\/benchmarks-[a-z]+\.svg$/, // the plots BENCHMARKS.md shows
  /^examples\/(systemd\/msgserver\.service|docker\/Dockerfile)$/, // linked from docs/operations.md
  /^dist\/.+\.(js|js\.map|d\.ts)$/,
  /^prebuilds\/linux-(x64|arm64)\/(msgserver\.node|libevent_core-2\.1\.so\.7|msgbench\/msgbench\.node)$/,
];

let packedCache: string[] | undefined;
function packedFiles(): string[] {
  if (!packedCache) {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    packedCache = (JSON.parse(out) as { files: { path: string }[] }[])[0].files.map((f) => f.path);
  }
  return packedCache;
}

test('npm pack ships dist/, prebuilds/, sources, docs, licenses and the install script, nothing else', () => {
  const files = packedFiles();
  const have = new Set(files);
  const required = [
    'package.json',
    'README.md',
    'LICENSE',
    'THIRD_PARTY_NOTICES',
    'CMakeLists.txt',
    'scripts/install.js',
    pkg.main,
    pkg.types,
    'dist/server/native.js',
    ...Object.values(pkg.bin),
    ...walk(path.join(root, 'native'))
      .filter((n) => /\.(cc|h)$/.test(n))
      .map((n) => `native/${n}`),
    ...walk(path.join(root, 'bench', 'loadgen'))
      .filter((n) => /\.(cc|h)$/.test(n))
      .map((n) => `bench/loadgen/${n}`),
    // the committed prebuilds, once there are any
    ...walk(prebuildsDir).map((n) => `prebuilds/${n}`),
  ].map((p) => p.replace(/^\.\//, ''));
  const missing = required.filter((p) => !have.has(p));
  assert.deepEqual(missing, [], `npm pack leaves out: ${missing.join(', ')}`);

  const extra = files.filter((f) => !ALLOWED.some((re) => re.test(f)));
  assert.deepEqual(extra, [], `npm pack ships files that do not belong in the package: ${extra.join(', ')}`);
  for (const f of files) {
    assert.doesNotMatch(f, /^(test|build[^/]*|dist-test|fuzz|node_modules|\.ci|cmake)\//, `${f} must not be packed`);
    assert.doesNotMatch(f, /\.(log|o|a|tgz)$|CMakeCache|crash-/, `${f} looks like a build output or a log`);
  }

  // every dist/ file comes from a lib/ source (no stale outputs of deleted modules)
  const stale = files
    .filter((f) => f.startsWith('dist/'))
    .map((f) => f.replace(/^dist\//, 'lib/').replace(/\.(js|js\.map|d\.ts)$/, '.ts'))
    .filter((src) => !fs.existsSync(path.join(root, src)));
  assert.deepEqual(stale, [], `dist/ holds outputs without a lib/ source (rebuild dist/): ${stale.join(', ')}`);
});

test('the docs the README links to are in the package', () => {
  const have = new Set(packedFiles());
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const links = [...readme.matchAll(/\]\(((?!https?:|#)[^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1].replace(/^\.\//, ''));
  assert.ok(links.length >= 3, `only ${links.length} relative links found in README.md`);
  const missing = [...new Set(links)].filter((l) => !have.has(l));
  assert.deepEqual(missing, [], `README.md links to files the package does not ship: ${missing.join(', ')}`);
});

test('the shipped source maps carry their sources (the package has no lib/)', () => {
  const files = packedFiles();
  const maps = files.filter((f) => f.endsWith('.js.map'));
  const broken: string[] = [];
  for (const m of maps) {
    const map = JSON.parse(fs.readFileSync(path.join(root, m), 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
    map.sources.forEach((s, i) => {
      const shipped = files.includes(path.posix.normalize(path.posix.join(path.posix.dirname(m), s)));
      if (!shipped && typeof map.sourcesContent?.[i] !== 'string') broken.push(`${m} -> ${s}`);
    });
  }
  assert.deepEqual(
    broken.slice(0, 5),
    [],
    `${broken.length} source map entries point at files the package does not ship; ` +
      'set "inlineSources": true in tsconfig.json (or stop shipping maps)',
  );
});

test('package.json: exports map, license files, no build-only runtime dependencies, engines = what CI runs', () => {
  // the public entry points only: the package root (types, require and import) and package.json
  assert.deepEqual(Object.keys(pkg.exports).sort(), ['.', './package.json']);
  const main = pkg.exports['.'] as Record<string, string>;
  assert.equal(main.types, `./${pkg.types}`);
  for (const cond of ['require', 'import', 'default']) assert.equal(main[cond], `./${pkg.main}`, `exports["."].${cond}`);
  assert.equal(pkg.exports['./package.json'], './package.json');

  assert.equal(pkg.license, 'MIT');
  const license = fs.readFileSync(path.join(root, 'LICENSE'), 'utf8');
  assert.match(license, /^MIT License/);
  assert.match(license, /msgserver contributors/);
  const notices = fs.readFileSync(path.join(root, 'THIRD_PARTY_NOTICES'), 'utf8');
  assert.match(notices, /libevent/);
  assert.match(notices, /Niels Provos/, "THIRD_PARTY_NOTICES lacks libevent's license text");
  assert.match(notices, /node-addon-api/);

  // a placeholder repository is worse than none
  if (pkg.repository !== undefined) assert.doesNotMatch(JSON.stringify(pkg.repository), /example|TODO|your-?org|placeholder/i);

  // only the source-build fallback needs these; scripts/install.js says how to get them
  for (const buildOnly of ['cmake-js', 'node-addon-api', 'node-api-headers', 'prebuildify', 'typescript']) {
    assert.ok(!(buildOnly in pkg.dependencies), `${buildOnly} is a build tool, not a runtime dependency`);
  }
  for (const need of ['cmake-js', 'node-addon-api']) assert.ok(need in pkg.devDependencies, `${need} must stay a devDependency`);

  // engines: the Node versions CI runs: the machine's Node 20 for everything
  // (.ci/run), and scripts/ci-node-versions.sh's for the addon's suites
  const ci = fs.readFileSync(path.join(root, 'scripts', 'ci-node-versions.sh'), 'utf8');
  const versions = /^VERSIONS="([\d ]+)"/m.exec(ci)?.[1].split(' ') ?? [];
  assert.ok(versions.length >= 3, 'scripts/ci-node-versions.sh has no VERSIONS="..." line');
  const tested = [...new Set(['20', ...versions])].sort((a, b) => Number(a) - Number(b));
  assert.equal(pkg.engines.node, tested.join(' || '), 'engines.node must list exactly the Node versions CI runs');
});

test(
  'the committed prebuilds were built from the current sources and keep the README baseline (NEEDED, symbol versions)',
  { skip: !fs.existsSync(prebuildsDir) ? 'prebuilds/ does not exist yet (`npm run prebuilds` creates it)' : false },
  () => {
    const { ok, lines } = checks.checkPrebuilds({ dir: root });
    assert.ok(ok, `${lines.filter((l) => l.startsWith('FAIL')).join('\n')}\nRun \`npm run prebuilds\` and commit prebuilds/.`);
  },
);

test(
  'PREBUILDS_ONLY=1: the loader picks prebuilds/linux-x64/msgserver.node, with the libevent next to it',
  {
    skip: !fs.existsSync(prebuild)
      ? 'no prebuilds/linux-x64/msgserver.node'
      : `${process.platform}-${process.arch}` !== 'linux-x64'
        ? `prebuilds/linux-x64 cannot load on ${process.platform}-${process.arch}`
        : false,
  },
  () => {
    const code = `
      const native = require(process.argv[1]);
      const picked = require(require.resolve('node-gyp-build', { paths: [process.argv[2]] })).path(process.argv[2]);
      const addon = native.loadAddon();
      const libs = require('node:fs').readFileSync('/proc/self/maps', 'utf8').split('\\n')
        .map((l) => l.split(/\\s+/)[5]).filter((p) => p && /libevent_core|libstdc\\+\\+/.test(p));
      process.stdout.write(JSON.stringify({ picked, sourceHash: addon.sourceHash, libs: [...new Set(libs)] }));`;
    const env: NodeJS.ProcessEnv = { ...process.env, PREBUILDS_ONLY: '1' };
    delete env.MSGSERVER_ADDON;
    const r = spawnSync(process.execPath, ['-e', code, nativeJs, root], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as { picked: string; sourceHash: string; libs: string[] };
    assert.equal(got.picked, prebuild);
    assert.equal(got.sourceHash, checks.nativeSourceHash(root), 'the x64 prebuild is stale: run `npm run prebuilds`');
    const libevent = got.libs.filter((l) => /libevent_core/.test(l));
    assert.deepEqual(libevent, [path.join(prebuildsDir, 'linux-x64', 'libevent_core-2.1.so.7')], 'the prebuild must use the libevent it carries');
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

// A package directory holding dist/server/native.js and, optionally, a prebuild.
function fakePackage(prebuildBytes?: Buffer): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msgserver-loader-'));
  fs.mkdirSync(path.join(dir, 'dist', 'server'), { recursive: true });
  fs.copyFileSync(nativeJs, path.join(dir, 'dist', 'server', 'native.js'));
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
    const msg = loaderError({ MSGSERVER_ADDON: undefined }, path.join(dir, 'dist', 'server', 'native.js'));
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
    const msg = loaderError({ MSGSERVER_ADDON: undefined }, path.join(dir, 'dist', 'server', 'native.js'));
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
