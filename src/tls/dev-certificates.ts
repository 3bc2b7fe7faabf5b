// Development certificates: a local CA, a server certificate for this machine and client
// certificates with SPIFFE IDs, written as the files `portcullis certs dev` and the demo use.
import { randomBytes } from 'node:crypto';
import { lstatSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { makeDirectory } from '../lib/make-directory.js';
import { issueCertificate, issueCertificateAuthority } from './issue-certificates.js';

/** The trust domain of the SPIFFE IDs a client gets when none is given. */
export const DEV_TRUST_DOMAIN = 'portcullis.local';

/** The client made when none is asked for: `client-demo.crt`, `spiffe://portcullis.local/ns/demo/sa/client`. */
export const DEFAULT_CLIENT = 'demo';

/** The SPIFFE ID of a client given by name alone: the name is its namespace. */
export const defaultSpiffeId = (name: string): string => `spiffe://${DEV_TRUST_DOMAIN}/ns/${name}/sa/client`;

/** What the server certificate always names: this machine, by name and on both loopbacks. */
export const LOCAL_NAMES: readonly string[] = ['localhost', '127.0.0.1', '::1'];

/** Default and largest lifetime in days: 825 is the most a private CA's server certificate may have for macOS and iOS to accept it. */
export const DEV_DAYS = { default: 90, max: 825 } as const;

/** A client certificate to make. */
export interface DevClient {
  /** Its file names: `client-<name>.crt` and `.key`; also the certificate's common name. */
  readonly name: string;
  readonly spiffeId: string;
}

/** What to make. */
export interface DevCertificateRequest {
  /** Further DNS names and IP addresses for the server certificate (beyond LOCAL_NAMES). */
  readonly names: readonly string[];
  readonly clients: readonly DevClient[];
  readonly days: number;
}

/** One file of the set, its bytes and what it is for. */
export interface DevFile {
  readonly name: string;
  readonly contents: string;
  /** 0600 for private keys, 0644 for certificates. */
  readonly mode: number;
  readonly what: string;
}

const CLIENT_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const DNS_NAME = /^(?=.{1,253}$)(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Why `name` cannot be a client's name (it names files and a SPIFFE path segment), or null. */
export function clientNameProblem(name: string): string | null {
  return CLIENT_NAME.test(name) ? null : 'a client name is 1 to 63 lower-case letters, digits and dashes, starting and ending with a letter or digit';
}

/** Why `name` cannot go into the server certificate (a DNS name, `*.` wildcard allowed, or an IP address), or null. */
export function serverNameProblem(name: string): string | null {
  if (isIP(name) !== 0 || DNS_NAME.test(name)) return null;
  return 'a server name is a DNS name (lower case, *.example.test allowed) or an IP address';
}

/**
 * Why `id` is not a SPIFFE ID (SPIFFE ID specification §2: `spiffe://`, a lower-case trust
 * domain, then a path of non-empty segments of letters, digits, `.`, `-`, `_`, none `.` or `..`;
 * no query, fragment, port or user; at most 2048 bytes), or null.
 */
export function spiffeIdProblem(id: string): string | null {
  const wrong = (why: string): string => `not a SPIFFE ID: ${why} (like spiffe://example.org/ns/payments/sa/api)`;
  if (Buffer.byteLength(id) > 2048) return wrong('longer than 2048 bytes');
  if (!id.startsWith('spiffe://')) return wrong('it must start with spiffe://');
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const domain = slash < 0 ? rest : rest.slice(0, slash);
  if (!TRUST_DOMAIN.test(domain)) return wrong('the trust domain is lower-case letters, digits, ".", "-" and "_"');
  if (slash < 0) return wrong('a workload ID has a path after the trust domain');
  const segments = rest.slice(slash + 1).split('/');
  for (const s of segments) {
    if (s === '') return wrong('empty path segment or trailing "/"');
    if (s === '.' || s === '..') return wrong('"." and ".." are not path segments');
    if (!PATH_SEGMENT.test(s)) return wrong('path segments are letters, digits, ".", "-" and "_"');
  }
  return null;
}

const DAY_MS = 86_400_000;

/** The file names a request makes, in the order they are written. */
export function devFileNames(request: Pick<DevCertificateRequest, 'clients'>): string[] {
  return ['ca.crt', 'ca.key', 'server.crt', 'server.key', ...request.clients.flatMap((c) => [`client-${c.name}.crt`, `client-${c.name}.key`])];
}

/**
 * Issues the set: a root CA, a server certificate (serverAuth; localhost, 127.0.0.1, ::1 and
 * `names`) whose file carries the CA after it, and a clientAuth certificate per client with its
 * SPIFFE ID as the only URI SAN. All ECDSA P-256, valid from an hour ago for `days` days.
 */
export async function issueDevCertificates(request: DevCertificateRequest, now: number = Date.now()): Promise<DevFile[]> {
  const validity = { notBefore: new Date(now - 3_600_000), notAfter: new Date(now + request.days * DAY_MS) };
  const ca = await issueCertificateAuthority('Portcullis Development CA', { ...validity, subjectExtra: 'O=Portcullis development only', pathLength: 0 });
  const all = [...LOCAL_NAMES, ...request.names.filter((n) => !LOCAL_NAMES.includes(n))];
  const server = await issueCertificate({
    commonName: 'localhost',
    dns: all.filter((n) => isIP(n) === 0),
    ips: all.filter((n) => isIP(n) !== 0),
    extendedKeyUsage: ['serverAuth'],
    ...validity,
  }, ca);
  const files: DevFile[] = [
    { name: 'ca.crt', contents: ca.cert, mode: 0o644, what: 'the CA certificate: what clients trust (curl --cacert) and what clientAuth.ca names' },
    { name: 'ca.key', contents: ca.key, mode: 0o600, what: 'the CA private key: whoever reads it can issue certificates this CA vouches for' },
    { name: 'server.crt', contents: server.cert + ca.cert, mode: 0o644, what: `the server certificate (${all.join(', ')}), then the CA` },
    { name: 'server.key', contents: server.key, mode: 0o600, what: 'its private key' },
  ];
  for (const client of request.clients) {
    const cert = await issueCertificate({ commonName: client.name, uris: [client.spiffeId], extendedKeyUsage: ['clientAuth'], ...validity }, ca);
    files.push(
      { name: `client-${client.name}.crt`, contents: cert.cert, mode: 0o644, what: `a client certificate for ${client.spiffeId}` },
      { name: `client-${client.name}.key`, contents: cert.key, mode: 0o600, what: 'its private key' },
    );
  }
  return files;
}

/** Files of the set that already exist in `dir` (as anything: a file, a link, a directory). */
export function existingDevFiles(dir: string, names: readonly string[]): string[] {
  return names.filter((name) => {
    try {
      lstatSync(join(dir, name));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
      throw err;
    }
  });
}

/**
 * Writes the files into `dir` (created 0700 with its missing parents). Without `replace`, a file
 * that exists is never touched: each is created exclusively (O_EXCL, so a link planted there is
 * not followed) and the first that exists throws EEXIST. With `replace`, each is written to a
 * fresh name and renamed over the old, so a replaced key gets mode 0600 whatever the old file had.
 */
export function writeDevFiles(dir: string, files: readonly DevFile[], replace: boolean): void {
  makeDirectory(dir, 0o700);
  for (const file of files) {
    const path = join(dir, file.name);
    if (!replace) {
      writeFileSync(path, file.contents, { mode: file.mode, flag: 'wx' });
      continue;
    }
    const temporary = join(dir, `.${file.name}.${randomBytes(6).toString('hex')}`);
    try {
      writeFileSync(temporary, file.contents, { mode: file.mode, flag: 'wx' });
      renameSync(temporary, path);
    } catch (err) {
      rmSync(temporary, { force: true });
      throw err;
    }
  }
}
