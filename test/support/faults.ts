// Disk faults for the tests, injected from outside the product: the
// LD_PRELOAD shim test/faults/iofault.c (its header documents the rule
// format) is built once per source version with the C compiler, and preloaded
// into a server child process (test/fixtures/server-child.ts), never into the
// test runner. The test rewrites the rules while the server runs and reads
// back which faults fired.
//
//   const faults = withFaults();
//   const server = await startServerChild(options, faults.env);
//   faults.set(`fdatasync path=${file} errno=EIO`);
//   ... faults.injected()  // ["fdatasync EIO /tmp/.../d.log", ...]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { LogEntry, ServerStats } from '../../dist/index';

const ROOT = path.join(__dirname, '..', '..');
const SOURCE = path.join(ROOT, 'test', 'faults', 'iofault.c');
const CHILD = path.join(__dirname, '..', 'fixtures', 'server-child.js');

let built: { so: string } | { skip: string } | null = null;

/**
 * Builds the shim (once per process; the result is kept in build-tests/ under
 * a name that carries the source's hash, so later runs reuse it). Returns the
 * path of iofault.so, or a reason to skip: not Linux, or no C compiler (which
 * fails instead of skipping when $CI is set: CI always has one). A compiler
 * that rejects the source throws; $CC overrides `cc`.
 */
function build(): { so: string } | { skip: string } {
  if (built) return built;
  if (process.platform !== 'linux') return (built = { skip: 'the fault shim needs Linux (LD_PRELOAD, /proc/self/fd)' });
  const cc = process.env.CC || 'cc';
  const probe = spawnSync(cc, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    const reason = `no C compiler (${cc}) to build test/faults/iofault.c`;
    if (process.env.CI) throw new Error(`${reason}; CI must have one`);
    return (built = { skip: reason });
  }
  const src = fs.readFileSync(SOURCE);
  const hash = createHash('sha256').update(src).update(probe.stdout).digest('hex').slice(0, 16);
  const dir = path.join(ROOT, 'build-tests');
  const so = path.join(dir, `iofault-${hash}.so`);
  if (!fs.existsSync(so)) {
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${so}.${process.pid}.tmp`; // test files run in parallel processes: build aside, rename
    const r = spawnSync(cc, ['-shared', '-fPIC', '-O2', '-Wall', '-o', tmp, SOURCE, '-ldl', '-lpthread'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cannot build ${SOURCE}:\n${r.error?.message ?? ''}${r.stderr}`);
    // It must build without warnings (cc -Wall); a new compiler's new warning is shown, not fatal.
    if (r.stderr.trim() !== '') console.warn(`# warnings building ${SOURCE}:\n${r.stderr}`);
    fs.renameSync(tmp, so);
  }
  return (built = { so });
}

/** A reason to skip the tests that need the shim, or false when it is built. Use as `{ skip: faultShimSkip() }`. */
export function faultShimSkip(): string | false {
  const b = build();
  return 'skip' in b ? b.skip : false;
}

export interface Faults {
  /** The environment for the server child: LD_PRELOAD (the shim after any preload already set, e.g. a sanitizer runtime, which must stay first) and MSGS_FAULT_FILE. */
  env: NodeJS.ProcessEnv;
  /** The control file. */
  file: string;
  /** Replaces the rules (one per line, see iofault.c); '' = no faults. Takes effect at the server's next intercepted call. */
  set(rules: string): void;
  /** The faults the shim injected so far, one line each: "<function> <effect> <path>". */
  injected(): string[];
}

/** A fresh control file (no faults yet) and the env that preloads the shim. */
export function withFaults(): Faults {
  const b = build();
  if ('skip' in b) throw new Error(`withFaults(): ${b.skip}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msgserver-faults-'));
  const file = path.join(dir, 'rules');
  fs.writeFileSync(file, '');
  let generation = 0;
  const preload = [process.env.LD_PRELOAD, b.so].filter((s) => s !== undefined && s !== '').join(':');
  return {
    env: { ...process.env, LD_PRELOAD: preload, MSGS_FAULT_FILE: file },
    file,
    set(rules: string): void {
      // A new file renamed over the old one: a new inode, so the shim sees the
      // change even if two rewrites fall into the same mtime tick.
      const tmp = `${file}.tmp`;
      fs.writeFileSync(tmp, `# generation ${++generation}\n${rules}\n`);
      fs.renameSync(tmp, file);
    },
    injected(): string[] {
      try {
        return fs.readFileSync(`${file}.log`, 'utf8').split('\n').filter((l) => l !== '');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
    },
  };
}

// ---- a server in a child process --------------------------------------------

export type IoOp = 'write' | 'fsync' | 'truncate' | 'rename' | 'dirSync' | 'open' | 'close' | 'delete' | 'writeback';

/** stats() with the per-kind counts of failed system calls on the log. */
export type FaultStats = ServerStats & { ioErrors: Record<IoOp, number> };

/** An 'error' event of the server, as the child saw it: the Error's own fields and its message. */
export interface ServerErrorEvent {
  name: string;
  message: string;
  code?: string;
  op?: string;
  path?: string;
  errno?: number;
  syscall?: string;
  [k: string]: unknown;
}

export interface ServerChild {
  proc: ChildProcess;
  port: number;
  /** Every line the child printed, parsed, in order. */
  lines: Array<Record<string, any>>;
  errors(): ServerErrorEvent[];
  logs(): LogEntry[];
  rotations(): Array<{ closed: string; next: string }>;
  stats(): Promise<FaultStats>;
  /** The Prometheus text of collectMetrics(server). */
  metrics(): Promise<string>;
  /** SIGTERM (the server closes: drain, flush, fsync) and the exit code. */
  stop(): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Starts test/fixtures/server-child.js with `env` (e.g. withFaults().env); resolves once it listens. */
export function startServerChild(options: object, env: NodeJS.ProcessEnv = process.env): Promise<ServerChild> {
  const proc = spawn(process.execPath, [CHILD, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'], env });
  const lines: Array<Record<string, any>> = [];
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  proc.on('message', (m: { id: number; failed?: string }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.failed !== undefined) p.reject(new Error(m.failed));
    else p.resolve(m);
  });
  void exited.then((code) => {
    for (const p of pending.values()) p.reject(new Error(`server child exited (${code})`));
    pending.clear();
  });
  const request = <T>(cmd: string, field: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve: (m) => resolve(m[field] as T), reject });
      proc.send({ id, cmd }, (err) => {
        if (err) {
          pending.delete(id);
          reject(err);
        }
      });
    });
  const pick = <T>(key: string): T[] => lines.filter((l) => key in l).map((l) => l[key] as T);
  return new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (d: string) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const o = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        lines.push(o);
        if (typeof o.error === 'string') reject(new Error(`server child: ${o.error}`));
        if (typeof o.listening === 'number') {
          resolve({
            proc,
            port: o.listening,
            lines,
            errors: () => pick<ServerErrorEvent>('serverError'),
            logs: () => pick<LogEntry>('log'),
            rotations: () => pick<{ closed: string; next: string }>('rotate'),
            stats: () => request<FaultStats>('stats', 'stats'),
            metrics: () => request<string>('metrics', 'metrics'),
            stop: () => {
              if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
              return exited;
            },
            exited,
          });
        }
      }
    });
    void exited.then((code) => reject(new Error(`server child exited (${code}) before listening`)));
  });
}

/**
 * Polls `check` until it returns something other than undefined/false, or
 * fails after `timeoutMs` with `what` and the last value seen. For conditions
 * the server reaches asynchronously (counters, events): never a fixed sleep.
 */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
