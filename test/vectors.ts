// The golden vector files of test/vectors/ (`kind key=value ... hex=...`
// lines, see test/vectors/generate.py), shared by the codec and record tests.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

export type Vector = { line: number; kind: string; f: Record<string, string> };

export function loadVectors(file: string): Vector[] {
  const text = fs.readFileSync(path.join(__dirname, '..', 'test', 'vectors', file), 'utf8');
  const out: Vector[] = [];
  text.split('\n').forEach((line, i) => {
    if (line === '' || line.startsWith('#')) return;
    const [kind, ...words] = line.split(' ');
    const f: Record<string, string> = {};
    for (const w of words) {
      const eq = w.indexOf('=');
      assert.ok(eq > 0, `${file}:${i + 1}: bad field ${w}`);
      f[w.slice(0, eq)] = w.slice(eq + 1);
    }
    out.push({ line: i + 1, kind, f });
  });
  assert.ok(out.length > 0, `${file} has no vectors`);
  return out;
}

export const hex = (v: Vector, k: string): Buffer => {
  assert.ok(k in v.f, `line ${v.line}: missing ${k}`);
  return Buffer.from(v.f[k], 'hex');
};
