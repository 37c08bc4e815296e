// Certificates for the TLS tests, made with the openssl CLI: a CA, a server
// certificate for localhost/127.0.0.1, client certificates, a second
// unrelated CA with its own client, an expired client certificate. All keys
// are ECDSA P-256.
//
// Where the openssl CLI is missing (a fresh machine with only Node), the
// copies in test/fixtures/tls/ are used instead: the same set, made by this
// module (`node dist-test/support/certs.js <dir>` writes them), valid for 100
// years except the expired one.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from '../helpers';

export interface CertSet {
  dir: string;
  /** The CA that signs the server and the good clients. */
  caCert: string;
  caKey: string;
  /** CN=localhost, SAN DNS:localhost, IP:127.0.0.1, signed by ca. */
  serverCert: string;
  serverKey: string;
  /** A second server certificate (same names, same CA, new key): for reload tests. */
  server2Cert: string;
  server2Key: string;
  /** CN=client-a, signed by ca. */
  clientCert: string;
  clientKey: string;
  /** CN=client-b, signed by ca. */
  client2Cert: string;
  client2Key: string;
  /** An unrelated CA and a client (CN=client-a, the same name) signed by it. */
  otherCaCert: string;
  otherCaKey: string;
  otherClientCert: string;
  otherClientKey: string;
  /** A server certificate signed by the unrelated CA (a client trusting ca must refuse it). */
  otherServerCert: string;
  otherServerKey: string;
  /** CN=client-a, signed by ca, valid only in 2000. */
  expiredClientCert: string;
  expiredClientKey: string;
}

const NAMES = [
  'ca', 'server', 'server2', 'client', 'client2', 'otherCa', 'otherClient', 'otherServer', 'expiredClient',
] as const;

function fileSet(dir: string): CertSet {
  const set: Record<string, string> = { dir };
  for (const n of NAMES) {
    set[`${n}Cert`] = path.join(dir, `${n}.pem`);
    set[`${n}Key`] = path.join(dir, `${n}.key`);
  }
  return set as unknown as CertSet;
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function key(dir: string, name: string): void {
  openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`]);
}

function selfSignedCa(dir: string, name: string, cn: string, days: number): void {
  key(dir, name);
  openssl(dir, ['req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-days', String(days),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-out', `${name}.pem`]);
}

// Signs a leaf with `openssl ca`, which accepts explicit start and end dates
// (so an expired certificate can be made) and copies the extensions given.
function leaf(dir: string, name: string, ca: string, cn: string, ext: string, dates: { start: string; end: string }): void {
  key(dir, name);
  openssl(dir, ['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`]);
  const cnf = path.join(dir, `${name}.cnf`);
  const db = path.join(dir, `${name}.idx`);
  fs.writeFileSync(db, '');
  fs.writeFileSync(path.join(dir, `${name}.serial`), `${Math.floor(Math.random() * 0xffffff).toString(16).padStart(8, "0")}\n`);
  fs.writeFileSync(cnf, [
    '[ca]', 'default_ca = d',
    '[d]', `database = ${db}`, `new_certs_dir = ${dir}`, `serial = ${path.join(dir, `${name}.serial`)}`,
    'default_md = sha256', 'policy = p', 'unique_subject = no', 'copy_extensions = none', 'x509_extensions = e',
    '[p]', 'commonName = supplied',
    '[e]', ext, 'basicConstraints = CA:FALSE', '',
  ].join('\n'));
  openssl(dir, ['ca', '-batch', '-notext', '-config', cnf, '-cert', `${ca}.pem`, '-keyfile', `${ca}.key`,
    '-in', `${name}.csr`, '-startdate', dates.start, '-enddate', dates.end, '-out', `${name}.pem`]);
  for (const f of [`${name}.csr`, `${name}.cnf`, `${name}.idx`, `${name}.idx.attr`, `${name}.serial`, `${name}.idx.old`, `${name}.idx.attr.old`, `${name}.serial.old`]) {
    fs.rmSync(path.join(dir, f), { force: true });
  }
  for (const f of fs.readdirSync(dir)) if (/^[0-9A-F]+\.pem$/.test(f)) fs.rmSync(path.join(dir, f));
}

/** Makes the whole set in `dir` with the openssl CLI. */
export function makeCerts(dir: string, validDays = 30): CertSet {
  dir = path.resolve(dir);
  fs.mkdirSync(dir, { recursive: true });
  const now = Date.now();
  const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  const valid = { start: stamp(now - 86_400_000), end: stamp(now + validDays * 86_400_000) };
  const serverExt = 'subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1\nextendedKeyUsage = serverAuth';
  const clientExt = 'extendedKeyUsage = clientAuth';
  selfSignedCa(dir, 'ca', 'msgserver test CA', validDays + 2);
  selfSignedCa(dir, 'otherCa', 'unrelated test CA', validDays + 2);
  leaf(dir, 'server', 'ca', 'localhost', serverExt, valid);
  leaf(dir, 'server2', 'ca', 'localhost', serverExt, valid);
  leaf(dir, 'client', 'ca', 'client-a', clientExt, valid);
  leaf(dir, 'client2', 'ca', 'client-b', clientExt, valid);
  leaf(dir, 'otherClient', 'otherCa', 'client-a', clientExt, valid);
  leaf(dir, 'otherServer', 'otherCa', 'localhost', serverExt, valid);
  leaf(dir, 'expiredClient', 'ca', 'client-a', clientExt, { start: '20000101000000Z', end: '20010101000000Z' });
  return fileSet(dir);
}

const FIXTURES = path.join(__dirname, '..', '..', 'test', 'fixtures', 'tls');

/**
 * A fresh set in a temp directory: made with openssl when it is installed,
 * else copied from test/fixtures/tls/.
 */
export function testCerts(): CertSet {
  const dir = tempDir('msgserver-certs-');
  if (hasOpenssl()) return makeCerts(dir);
  for (const f of fs.readdirSync(FIXTURES)) fs.copyFileSync(path.join(FIXTURES, f), path.join(dir, f));
  return fileSet(dir);
}

if (require.main === module) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node dist-test/support/certs.js <dir>');
    process.exit(2);
  }
  makeCerts(dir, 36500);
  console.log(`wrote ${NAMES.length} certificates and keys to ${dir}`);
}
