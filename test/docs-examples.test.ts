// Type test: every ```ts example in README.md and docs/*.md compiles against
// the package's published types (dist/*.d.ts), so the docs cannot drift from
// the exported API. Fragments may use the names declared in PRELUDE.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { tempDir } from './helpers';

const root = path.join(__dirname, '..');
const PRELUDE = `
import type { ServerOptions, MessageClient as _MC, MessageServer as _MS } from 'msgserver';
declare const options: ServerOptions;
declare const source: string[];
declare const pending: Promise<unknown>[];
`;

function examples(): Array<{ file: string; index: number; code: string }> {
  const files = ['README.md', ...fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const out: Array<{ file: string; index: number; code: string }> = [];
  for (const file of files) {
    const text = fs.readFileSync(path.join(root, file), 'utf8');
    const re = /```ts\n([\s\S]*?)```/g;
    let m;
    let index = 0;
    while ((m = re.exec(text))) out.push({ file, index: index++, code: m[1] });
  }
  return out;
}

/** Imports go to the top; the rest runs inside an async function, with the API names in scope. */
function toModule(code: string, needsApi: boolean): string {
  const lines = code.split('\n');
  const imports: string[] = [];
  const body: string[] = [];
  let inImport = false;
  for (const l of lines) {
    if (/^import\b/.test(l) || inImport) {
      imports.push(l);
      inImport = !/;\s*$/.test(l);
    } else {
      body.push(l);
    }
  }
  const api = needsApi && !imports.some((l) => /from 'msgserver'/.test(l))
    ? "import { MessageServer, MessageClient, readLog, verifyLog } from 'msgserver';\ndeclare const server: MessageServer;\ndeclare const client: MessageClient;\n"
    : '';
  return `${imports.join('\n')}\n${api}${PRELUDE}\nexport async function example(): Promise<void> {\n${body.join('\n')}\n}\n`;
}

test('every TypeScript example in the docs compiles against the published types', () => {
  const list = examples();
  assert.ok(list.length >= 8, `${list.length} examples found`);
  const dir = tempDir('msgserver-docs-');
  const files: string[] = [];
  for (const ex of list) {
    const name = `${ex.file.replace(/[/.]/g, '_')}_${ex.index}.ts`;
    const standalone = /^\s*import\b/m.test(ex.code) && /from 'msgserver'/.test(ex.code);
    fs.writeFileSync(path.join(dir, name), toModule(ex.code, !standalone));
    files.push(name);
  }
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'es2022',
        module: 'node16',
        moduleResolution: 'node16',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        noUnusedLocals: false,
        types: ['node'],
        typeRoots: [path.join(root, 'node_modules', '@types')],
        paths: { msgserver: [path.join(root, 'dist', 'index.d.ts')], 'prom-client': [path.join(root, 'node_modules', 'prom-client')] },
      },
      files,
    }),
  );
  const tsc = path.join(root, 'node_modules', '.bin', 'tsc');
  const r = spawnSync(tsc, ['-p', dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `the docs' examples do not compile:\n${r.stdout}${r.stderr}`);
});

/**
 * User docs describe the software and how it behaves, not how the project was
 * made: no "this machine", no workplace, no tickets. Measured figures name the
 * machine only as "a 2-vCPU VM". (docs/architecture.md explains the code to
 * its maintainers and bench/BENCHMARKS.md records runs: not checked.)
 */
test('user docs and messages describe the software, not its making', () => {
  const MAKING = [/\bthis machine\b/i, /\bworkplace\b/i, /\b\d+-core machine\b/i, /\bthe issue\b/i, /\bissue's\b/i, /\bon this box\b/i];
  const files = [
    'README.md',
    ...fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md') && f !== 'architecture.md').map((f) => `docs/${f}`),
  ];
  const hits: string[] = [];
  for (const file of files) {
    fs.readFileSync(path.join(root, file), 'utf8').split('\n').forEach((line, i) => {
      for (const re of MAKING) if (re.test(line)) hits.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  // The CLIs' messages too (a "2-core" or "this workplace" must not reach a user's terminal).
  for (const f of fs.readdirSync(path.join(root, 'lib', 'cli'))) {
    fs.readFileSync(path.join(root, 'lib', 'cli', f), 'utf8').split('\n').forEach((line, i) => {
      for (const re of MAKING) if (re.test(line)) hits.push(`lib/cli/${f}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(hits, []);
});
