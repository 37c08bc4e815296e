// A small parser for the Prometheus text exposition format (0.0.4), written
// for the tests so they check the format itself rather than trusting the
// library that produced it. parseExposition() asserts validity as it parses.
import assert from 'node:assert/strict';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string | undefined;
  type: string | undefined;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

function parseValue(raw: string, line: string): number {
  if (raw === '+Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  if (raw === 'NaN') return NaN;
  assert.match(raw, /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/, `not a number in: ${line}`);
  return Number(raw);
}

function parseLabels(body: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    const eq = body.indexOf('=', i);
    assert.ok(eq > i, `bad labels in: ${line}`);
    const name = body.slice(i, eq);
    assert.match(name, LABEL_NAME, `bad label name in: ${line}`);
    assert.equal(body[eq + 1], '"', `label value not quoted in: ${line}`);
    let j = eq + 2;
    let value = '';
    for (; j < body.length && body[j] !== '"'; j++) {
      if (body[j] === '\\') {
        j++;
        const c = body[j];
        value += c === 'n' ? '\n' : c;
      } else {
        value += body[j];
      }
    }
    assert.equal(body[j], '"', `unterminated label value in: ${line}`);
    assert.ok(!(name in labels), `duplicate label ${name} in: ${line}`);
    labels[name] = value;
    i = j + 1;
    if (body[i] === ',') i++;
  }
  return labels;
}

/** The family a sample belongs to: histogram/summary samples carry a suffix. */
function familyOf(families: Map<string, Family>, name: string): Family | undefined {
  const exact = families.get(name);
  if (exact) return exact;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  const base = m ? families.get(m[1]) : undefined;
  return base && (base.type === 'histogram' || base.type === 'summary') ? base : undefined;
}

/**
 * Parses exposition text; asserts it is valid: every sample belongs to a family
 * with HELP and TYPE given before it, names and labels are well formed, values
 * are numbers, no series appears twice, the text ends with a newline.
 */
export function parseExposition(text: string): Map<string, Family> {
  assert.ok(text.endsWith('\n'), 'exposition ends with a newline');
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) {
      f = { name, help: undefined, type: undefined, samples: [] };
      families.set(name, f);
    }
    return f;
  };
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) continue; // a plain comment
      assert.match(m[2], NAME, `bad metric name in: ${line}`);
      const f = family(m[2]);
      if (m[1] === 'HELP') {
        assert.equal(f.help, undefined, `second HELP for ${m[2]}`);
        f.help = m[3];
      } else {
        assert.equal(f.type, undefined, `second TYPE for ${m[2]}`);
        assert.ok(TYPES.includes(m[3]), `bad TYPE in: ${line}`);
        assert.equal(f.samples.length, 0, `TYPE after samples for ${m[2]}`);
        f.type = m[3];
      }
      continue;
    }
    const m = /^([^\s{]+)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?$/.exec(line);
    assert.ok(m, `unparsable sample line: ${line}`);
    const [, name, labelBody, rawValue] = m;
    assert.match(name, NAME, `bad metric name in: ${line}`);
    const labels = labelBody ? parseLabels(labelBody, line) : {};
    const value = parseValue(rawValue, line);
    const f = familyOf(families, name);
    assert.ok(f, `sample ${name} has no HELP/TYPE before it`);
    assert.ok(f.help !== undefined && f.help !== '', `${f.name} has no HELP`);
    assert.ok(f.type !== undefined, `${f.name} has no TYPE`);
    const key = `${name}{${Object.entries(labels).sort().map(([k, v]) => `${k}=${v}`).join(',')}}`;
    assert.ok(!seen.has(key), `series ${key} appears twice`);
    seen.add(key);
    if (f.type === 'counter') assert.ok(value >= 0, `negative counter: ${line}`);
    f.samples.push({ name, labels, value });
  }
  return families;
}

/** The value of one series; fails when it is missing. */
export function sample(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const f = familyOf(families, name);
  assert.ok(f, `no family for ${name}`);
  const s = f.samples.find(
    (x) => x.name === name && Object.keys(labels).length === Object.keys(x.labels).length && Object.entries(labels).every(([k, v]) => x.labels[k] === v),
  );
  assert.ok(s, `no sample ${name}${JSON.stringify(labels)}`);
  return s.value;
}
