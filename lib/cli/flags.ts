// The command-line parser the four CLIs share, with our own messages: an
// unknown flag suggests the closest known one, a missing value says which
// flag wants one, and a value that starts with '-' ("--client-id -1") is
// taken as the value, so the number check can say what is allowed (node's
// parseArgs calls that "ambiguous"). No I/O here: errors are UsageErrors.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Bad command line: the CLI prints one line (the message and "see --help") and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface FlagSpec {
  /** Long name, without the dashes. */
  name: string;
  /** One-letter alias, without the dash. */
  short?: string;
  /** 'string' takes a value (--port 9000, --port=9000, -n 5, -n5); 'boolean' takes none. */
  type: 'string' | 'boolean';
}

export interface ParsedFlags {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** The flags every CLI has. */
export const COMMON_FLAGS: readonly FlagSpec[] = [
  { name: 'help', short: 'h', type: 'boolean' },
  { name: 'version', type: 'boolean' },
];

/** Edit distance (insertions, deletions, substitutions, transpositions). */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The known flag closest to `unknown` (both without dashes), or undefined
 * when none is close: a known flag it is a prefix of (--max-conn), else the
 * smallest edit distance within about a third of the name's length.
 */
export function closestFlag(unknown: string, known: readonly string[]): string | undefined {
  const u = unknown.toLowerCase();
  const prefixed = known.filter((k) => k.startsWith(u) && u.length >= 3);
  if (prefixed.length === 1) return prefixed[0];
  let best: string | undefined;
  let bestDist = Infinity;
  for (const k of known) {
    const dist = distance(u, k);
    if (dist < bestDist) {
      best = k;
      bestDist = dist;
    }
  }
  const limit = Math.max(2, Math.floor(u.length / 3));
  return bestDist <= limit ? best : undefined;
}

function unknownFlag(token: string, specs: readonly FlagSpec[]): UsageError {
  const name = token.replace(/^-+/, '').split('=')[0];
  const guess = closestFlag(name, specs.map((s) => s.name));
  return new UsageError(`unknown flag ${token.split('=')[0]}${guess ? `; did you mean --${guess}?` : ''}`);
}

/** A token that is meant as a flag, not as a value: --word or -letter. */
function looksLikeFlag(token: string): boolean {
  return /^--[^-]/.test(token) || /^-[a-zA-Z]/.test(token);
}

/**
 * Parses argv against `specs`. A repeated flag: the last one wins. `--` ends
 * the flags (what follows is positional). A value may start with '-' unless
 * it looks like a flag (--word, -letter): "--client-id -1" gives '-1'.
 */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[], opts: { positionals: boolean }): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short as string, s]));
  const values: Record<string, string | boolean | undefined> = {};
  const positionals: string[] = [];
  const positional = (token: string): void => {
    if (!opts.positionals) throw new UsageError(`unexpected argument '${token}'`);
    positionals.push(token);
  };
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (token === '--') {
      for (const rest of argv.slice(i + 1)) positional(rest);
      break;
    }
    if (token.startsWith('--')) {
      const eq = token.indexOf('=');
      const name = token.slice(2, eq < 0 ? undefined : eq);
      const spec = byName.get(name);
      if (!spec) throw unknownFlag(token, specs);
      if (spec.type === 'boolean') {
        if (eq >= 0) throw new UsageError(`--${name} takes no value (got '${token.slice(eq + 1)}')`);
        values[name] = true;
        continue;
      }
      if (eq >= 0) {
        values[name] = token.slice(eq + 1);
        continue;
      }
      const next = argv[i + 1];
      if (next === undefined || looksLikeFlag(next)) throw new UsageError(`--${name} needs a value`);
      values[name] = next;
      i++;
      continue;
    }
    if (token.length > 1 && token.startsWith('-') && !/^-\d/.test(token)) {
      // -h, -f, -n 5, -n5, and grouped booleans such as -fq.
      for (let j = 1; j < token.length; j++) {
        const spec = byShort.get(token[j]);
        if (!spec) {
          const known = specs.filter((s) => s.short).map((s) => `-${s.short}`);
          throw new UsageError(`unknown flag -${token[j]}${known.length ? ` (the short flags are ${known.join(', ')})` : ''}`);
        }
        if (spec.type === 'boolean') {
          values[spec.name] = true;
          continue;
        }
        const attached = token.slice(j + 1);
        if (attached !== '') {
          values[spec.name] = attached;
        } else {
          const next = argv[i + 1];
          if (next === undefined || looksLikeFlag(next)) throw new UsageError(`-${spec.short} (--${spec.name}) needs a value`);
          values[spec.name] = next;
          i++;
        }
        break;
      }
      continue;
    }
    positional(token);
  }
  return { values, positionals };
}

/**
 * An integer flag value in min..max, with a message that says what is
 * allowed. Plain decimal digits only (no 1e3, 0x10, 1.0 or spaces).
 */
export function parseIntFlag(flag: string, raw: string, min: number, max: number): number {
  const t = raw.trim();
  const n = /^-?\d+$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${flag} must be an integer ${min}..${max}, got '${raw}'`);
  }
  return n;
}

/** The package's version, from its package.json (dist/cli/ -> the package root). */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** What a CLI prints for --version. */
export function versionLine(cli: string): string {
  return `${cli} ${packageVersion()} (node ${process.version})`;
}

/** The one line a flag error prints (after the CLI's name). */
export function usageLine(cli: string, err: UsageError): string {
  return `${cli}: ${err.message} (see ${cli} --help)`;
}
