// One clear line for a failure to start: what failed, why (the errno's name
// in brackets), and the flag or action that fixes it. Pure: msgserver logs
// the line (fatal) and exits 1.
import * as path from 'node:path';

/** The fields of a system error (Node's, or listen()'s from the engine). */
interface SystemFacts {
  message?: string;
  code?: unknown;
  syscall?: unknown;
  address?: unknown;
  port?: unknown;
  path?: unknown;
}

/** Where the server was told to listen and write (the resolved config's values). */
export interface StartContext {
  host: string;
  port: number;
  file: string;
  rotating: boolean;
}

const SOCKET_CALLS = new Set(['socket', 'bind', 'listen', 'getaddrinfo']);

function facts(err: unknown): SystemFacts {
  return err !== null && typeof err === 'object' ? (err as SystemFacts) : { message: String(err) };
}

/** Why a listen()/bind() for host:port failed, and the flag that fixes it (`portFlag`, `hostFlag`). */
function socketLine(what: string, f: SystemFacts, host: string, port: number, portFlag: string, hostFlag: string): string {
  const at = `${host}:${port}`;
  switch (f.code) {
    case 'EADDRINUSE':
      return `${what}: cannot listen on ${at}: port ${port} is already in use (EADDRINUSE); stop the program using it, or choose another port with ${portFlag} <n> (${portFlag} 0 picks a free one)`;
    case 'EACCES':
    case 'EPERM':
      return `${what}: cannot listen on ${at}: permission denied (${String(f.code)}); ports below 1024 need privileges: choose a port of 1024 or more with ${portFlag} <n>`;
    case 'EADDRNOTAVAIL':
      return `${what}: cannot listen on ${at}: ${host} is not an address of this host (EADDRNOTAVAIL); choose another with ${hostFlag} (127.0.0.1, 0.0.0.0 for every interface)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `${what}: cannot listen on ${at}: cannot resolve the host name '${host}' (${String(f.code)}); choose another with ${hostFlag}`;
    default:
      return `${what}: cannot listen on ${at}: ${f.message ?? String(f.code)}; check ${hostFlag} and ${portFlag}`;
  }
}

/** Why the log file could not be opened or recovered, and the fix. */
function fileLine(f: SystemFacts, ctx: StartContext): string {
  const p = typeof f.path === 'string' ? f.path : ctx.file;
  const code = typeof f.code === 'string' ? f.code : '';
  const which = ctx.rotating ? 'the log directory' : 'the log file';
  switch (code) {
    case 'ENOENT':
      return `cannot open ${which} ${p}: its directory ${path.dirname(p)} does not exist (ENOENT); create it, or choose another path with --file`;
    case 'EACCES':
    case 'EPERM':
      return `cannot open ${which} ${p}: permission denied (${code}); change its permissions, or choose another path with --file`;
    case 'EROFS':
      return `cannot open ${which} ${p}: the file system is read-only (EROFS); choose a writable path with --file`;
    case 'EISDIR':
      return `cannot open the log file ${p}: it is a directory (EISDIR); give a file path with --file (a directory of segments is for rotation: --rotate-bytes)`;
    case 'ENOTDIR':
      return ctx.rotating
        ? `cannot use ${p} as the log directory: it (or a part of its path) is a file (ENOTDIR); with rotation on, --file names a directory`
        : `cannot open the log file ${p}: a part of its path is a file, not a directory (ENOTDIR); check --file`;
    case 'ENOSPC':
      return `cannot start ${which} ${p}: no space left on the device (ENOSPC); free some space, or choose another path with --file`;
    case 'ERR_MSGS_LOG_CORRUPT':
      return `${f.message ?? `${p} is corrupt`}`.replace(
        /start with file\.repair = true to set the damaged file aside/,
        `start with --repair to set the damaged file aside and continue in a clean one, or inspect it with: msglog verify ${p}`,
      );
    case 'ERR_MSGS_NOT_A_LOG':
      return `${p} is not a msgserver log (bad file header), so it is not appended to; choose another path with --file (the original server's text log needs --format text)`;
    default:
      return `cannot open ${which} ${p}: ${f.message ?? code}; check --file`;
  }
}

/**
 * The one line for a listen() rejection: the cause and the fix. A failure
 * with no known shape keeps its own message (prefixed "cannot start").
 */
export function explainStartFailure(err: unknown, ctx: StartContext): string {
  const f = facts(err);
  const syscall = typeof f.syscall === 'string' ? f.syscall : '';
  if (SOCKET_CALLS.has(syscall)) return socketLine('msgserver', f, ctx.host, ctx.port, '--port', '--host').replace(/^msgserver: /, '');
  if (typeof f.path === 'string' || (typeof f.code === 'string' && f.code.startsWith('ERR_MSGS_') && f.code !== 'ERR_MSGS_START')) {
    return fileLine(f, ctx);
  }
  return `cannot start: ${f.message ?? String(err)}`;
}

/** The one line for a metrics endpoint that cannot listen. */
export function explainMetricsFailure(err: unknown, host: string, port: number): string {
  return socketLine('metrics', facts(err), host, port, '--metrics-port', '--metrics-host');
}
