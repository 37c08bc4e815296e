// The auth section's principals as the engine takes them: the tokens file
// (JSON, read here at listen() and at every reload()) and auth.principals
// (certificate names). Only hashes cross into the engine; tokens never exist
// on the server side at all.
import * as fs from 'node:fs';

import { CLIENT_ID_RANGES_ALLOWED, type ClientIdRanges, type ResolvedConfig } from './config';

/** One principal for the engine (native/auth.h Principal). clientIds: [from, to, from, to, ...]. */
export interface NativePrincipal {
  name: string;
  token: boolean;
  sha256: Buffer | null;
  clientIds: number[];
}

/**
 * The tokens file or a TLS file could not be used (listen() rejects with it;
 * reload() reports it and keeps the previous credentials). `path` names the
 * file.
 */
export class CredentialsError extends Error {
  readonly code: 'ERR_MSGS_TOKENS_FILE' | 'ERR_MSGS_TLS_FILES';
  readonly path: string | undefined;

  constructor(message: string, code: 'ERR_MSGS_TOKENS_FILE' | 'ERR_MSGS_TLS_FILES', path?: string) {
    super(message);
    this.name = 'CredentialsError';
    this.code = code;
    this.path = path;
  }
}

function flat(ranges: ClientIdRanges): number[] {
  return ranges.flatMap(([from, to]) => [from, to]);
}

function isRanges(v: unknown): v is ClientIdRanges {
  return (
    Array.isArray(v) &&
    v.every((r) => Array.isArray(r) && r.length === 2 && r.every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff) && r[0] <= r[1])
  );
}

/** Parses a tokens file's text; every problem is named with its entry. */
export function parseTokensFile(text: string, file: string): NativePrincipal[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CredentialsError(`auth.tokensFile ${file}: not valid JSON (${(err as Error).message})`, 'ERR_MSGS_TOKENS_FILE', file);
  }
  if (!Array.isArray(parsed)) {
    throw new CredentialsError(`auth.tokensFile ${file}: expected a JSON array of { name, sha256, clientIds }`, 'ERR_MSGS_TOKENS_FILE', file);
  }
  const problems: string[] = [];
  const names = new Set<string>();
  const out: NativePrincipal[] = [];
  parsed.forEach((e: unknown, i: number) => {
    const at = `entry ${i}`;
    if (e === null || typeof e !== 'object' || Array.isArray(e)) {
      problems.push(`${at}: expected an object { name, sha256, clientIds }`);
      return;
    }
    const { name, sha256, clientIds } = e as Record<string, unknown>;
    if (typeof name !== 'string' || name === '') problems.push(`${at}: name must be a non-empty string`);
    else if (names.has(name)) problems.push(`${at}: name '${name}' appears twice`);
    else names.add(name);
    if (typeof sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(sha256)) {
      problems.push(`${at}: sha256 must be 64 hex digits (printf %s "$TOKEN" | sha256sum)`);
    }
    if (!isRanges(clientIds)) problems.push(`${at}: clientIds must be ${CLIENT_ID_RANGES_ALLOWED}`);
    if (problems.length === 0) {
      out.push({ name: name as string, token: true, sha256: Buffer.from(sha256 as string, 'hex'), clientIds: flat(clientIds as ClientIdRanges) });
    }
  });
  if (problems.length > 0) {
    throw new CredentialsError(`auth.tokensFile ${file}: ${problems.join('; ')}`, 'ERR_MSGS_TOKENS_FILE', file);
  }
  return out;
}

/** Every principal of `cfg.auth` (empty without auth): reads the tokens file now. */
export function loadPrincipals(cfg: ResolvedConfig): NativePrincipal[] {
  const auth = cfg.auth;
  if (!auth) return [];
  const out: NativePrincipal[] = [];
  if (auth.tokensFile) {
    let text: string;
    try {
      text = fs.readFileSync(auth.tokensFile, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new CredentialsError(`auth.tokensFile ${auth.tokensFile}: cannot read it (${e.code ?? e.message})`, 'ERR_MSGS_TOKENS_FILE', auth.tokensFile);
    }
    out.push(...parseTokensFile(text, auth.tokensFile));
  }
  for (const [name, ranges] of Object.entries(auth.principals ?? {})) {
    out.push({ name, token: false, sha256: null, clientIds: flat(ranges) });
  }
  return out;
}

/**
 * Client ids that more than one principal may use, as one line per pair
 * ("'a' and 'b' share client ids 100..199"). Allowed, because rotating a
 * token means two tokens for the same ids for a while; but two holders of the
 * same ids defeat replicated mode's deduplication, so the server warns.
 */
export function sharedClientIds(principals: NativePrincipal[]): string[] {
  const spans: { from: number; to: number; name: string }[] = [];
  for (const p of principals) {
    for (let i = 0; i < p.clientIds.length; i += 2) spans.push({ from: p.clientIds[i], to: p.clientIds[i + 1], name: p.name });
  }
  spans.sort((a, b) => a.from - b.from || a.to - b.to);
  const out: string[] = [];
  for (let i = 0; i < spans.length; i++) {
    for (let j = i + 1; j < spans.length && spans[j].from <= spans[i].to; j++) {
      if (spans[j].name === spans[i].name) continue;
      const from = spans[j].from;
      const to = Math.min(spans[i].to, spans[j].to);
      out.push(`'${spans[i].name}' and '${spans[j].name}' share client ids ${from === to ? from : `${from}..${to}`}`);
    }
  }
  return out;
}
