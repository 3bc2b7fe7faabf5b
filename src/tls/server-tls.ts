import { createHash, X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { ConfigProblem } from '../config/errors.js';
import type { ConfigPath, ConfigSource } from '../config/config-source.js';
import type { RawHttpsListen } from '../config/schema-listen.js';
import { inUse, type CertificateInUse } from './certificate-expiry.js';
import { clientAuthContext, compileClientAuth, type ClientAuth } from './client-auth.js';
import { isServerName, normaliseServerName, SniTable } from './sni-table.js';
import { DEFAULT_TLS_PROFILE, TLS_PROFILE_OPTIONS } from './tls-profile.js';

/**
 * The HTTPS listener's material, compiled from `listen.https`: the options of its secure context
 * and what it serves. Live on reload: a reload (or a change of a file it was read from) swaps it
 * into the running listener; new handshakes use it, open connections finish on the old.
 */
export interface ServerTls {
  /** The default certificate's secure context, with the profile's protocol versions, ciphers and curves. */
  readonly context: SecureContextOptions;
  /** The certificates of `listen.https.certificates`, by server name. */
  readonly sni: SniTable;
  /** OCSP responses (DER) to staple, by the SHA-256 (hex) of the DER certificate they are for. */
  readonly staples: ReadonlyMap<string, Buffer>;
  /** What it serves, for the expiry metric and warnings. */
  readonly certificates: readonly CertificateInUse[];
  /** Client certificates asked for (`clientAuth`), or null; its CAs and CRLs are already in `context`. */
  readonly clientAuth: ClientAuth | null;
}

/** TLS 1.2 and 1.3 only, whatever a client offers (the floor of every profile). */
export const MIN_TLS_VERSION = 'TLSv1.2';

/** Where in gateway.yaml, for problems. */
const AT = ['listen', 'https'] as const;

/** One certificate and key as read and checked. */
interface Served {
  readonly leaf: X509Certificate;
  readonly options: SecureContextOptions;
}

/**
 * Reads and checks the HTTPS listener's certificates and keys (through the config's file reader, so
 * they count in the config version): PEM that parses, a key that matches the certificate, a
 * certificate valid now; the SNI names of the others, unique across them; the OCSP staples. Every
 * problem is located at its option; null when there is one.
 */
export function compileServerTls(raw: RawHttpsListen | undefined, loaded: ConfigSource, problems: ConfigProblem[], now: Date): ServerTls | null {
  if (raw === undefined) return null;
  const before = problems.length;
  const clientAuth = compileClientAuth(raw.clientAuth, loaded, problems, now);
  // Every secure context the listener serves (the default and each SNI one) carries the profile and
  // the client CAs and CRLs: a client naming another certificate's server name is verified alike.
  const profile: Readonly<SecureContextOptions> = { ...TLS_PROFILE_OPTIONS[raw.profile ?? DEFAULT_TLS_PROFILE], ...clientAuthContext(clientAuth) };
  const staples = new Map<string, Buffer>();
  const served = readServed(raw, [...AT], profile, loaded, problems, now);
  if (served !== null) readStaple(raw.ocspStaple, served.leaf, [...AT, 'ocspStaple'], loaded, problems, staples);
  const sni = new SniTable();
  const certificates: CertificateInUse[] = served === null ? [] : [inUse('server', 'listen.https', served.leaf)];
  /** Which certificate claimed each name first, for the duplicate's message. */
  const claimed = new Map<string, number>();
  (raw.certificates ?? []).forEach((entry, i) => {
    const at: ConfigPath = [...AT, 'certificates', i];
    const one = readServed(entry, at, profile, loaded, problems, now);
    if (one === null) return;
    readStaple(entry.ocspStaple, one.leaf, [...at, 'ocspStaple'], loaded, problems, staples);
    certificates.push(inUse('server', `listen.https.certificates[${i}]`, one.leaf));
    let context: SecureContext;
    try { context = createSecureContext(one.options); } catch { return; } // reported by readServed
    const names = entry.names === undefined ? defaultNames(one.leaf) : entry.names.map((n) => normaliseServerName(n));
    if (names.length === 0) problems.push(loaded.problem([...at, 'cert'], `${entry.cert} names no DNS name (no DNS subjectAltName, no CN) to serve it for; list the server names under names`));
    for (const [j, name] of names.entries()) {
      const where: ConfigPath = entry.names === undefined ? [...at, 'cert'] : [...at, 'names', j];
      if (!isServerName(name)) { problems.push(loaded.problem(where, `"${name}" is not a server name; write a DNS name like api.example.com, or *.example.com for every name one label below example.com`)); continue; }
      const first = claimed.get(name);
      if (first === i) continue; // listed twice for one certificate: the same answer
      if (first !== undefined) { problems.push(loaded.problem(where, `"${name}" is served by listen.https.certificates[${first}] already; a server name picks one certificate, so give it to one of them only`)); continue; }
      claimed.set(name, i);
      sni.add(name, context);
    }
  });
  if (problems.length > before || served === null) return null;
  return { context: served.options, sni, staples, certificates, clientAuth };
}

/** A certificate's DNS subjectAltNames, or its CN when it has none (RFC 6125 §6.4.4), normalised. */
function defaultNames(leaf: X509Certificate): string[] {
  const sans = (leaf.subjectAltName ?? '').split(/,\s*/).filter((s) => s.startsWith('DNS:')).map((s) => normaliseServerName(s.slice(4)));
  if (sans.length > 0) return [...new Set(sans)];
  const cn = /^CN=(.+)$/m.exec(leaf.subject)?.[1];
  return cn === undefined ? [] : [normaliseServerName(cn)];
}

/** Reads one cert/key pair at `at` and checks it as the default certificate is checked. */
function readServed(raw: { readonly cert: string; readonly key: string }, at: ConfigPath, profile: Readonly<SecureContextOptions>, loaded: ConfigSource, problems: ConfigProblem[], now: Date): Served | null {
  const before = problems.length;
  const certText = readPem(raw.cert, [...at, 'cert'], loaded, problems);
  const keyText = readPem(raw.key, [...at, 'key'], loaded, problems);
  if (certText === null || keyText === null) return null;
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certText);
  } catch (err) {
    problems.push(loaded.problem([...at, 'cert'], `${raw.cert} holds no readable PEM certificate (${(err as Error).message}); expected a \`-----BEGIN CERTIFICATE-----\` block, the server certificate first`));
    return null;
  }
  const validity = validityProblem(leaf, now);
  if (validity !== null) problems.push(loaded.problem([...at, 'cert'], `${raw.cert}: ${validity}`));
  const options: SecureContextOptions = { ...profile, cert: certText, key: keyText };
  try {
    createSecureContext(options);
  } catch (err) {
    const message = (err as Error).message;
    problems.push(loaded.problem([...at, 'key'], /mismatch/i.test(message)
      ? `${raw.key} is not the private key of the certificate in ${raw.cert}; give the key the certificate was issued for`
      : `${raw.key} cannot be used with ${raw.cert}: ${message}; expected an unencrypted PEM private key`));
  }
  return problems.length > before ? null : { leaf, options };
}

/** Reads an OCSP response file for `leaf`: DER, a SEQUENCE (RFC 6960 §4.2.1) of at most the config-file limit. */
function readStaple(file: string | undefined, leaf: X509Certificate, at: ConfigPath, loaded: ConfigSource, problems: ConfigProblem[], staples: Map<string, Buffer>): void {
  if (file === undefined) return;
  const read = loaded.files.readBytes(file);
  if (!read.ok) { problems.push(loaded.problem(at, `${read.message}; give the path of a DER OCSP response (openssl ocsp -respout), relative to the config file`)); return; }
  if (read.bytes.length < 2 || read.bytes[0] !== 0x30) { problems.push(loaded.problem(at, `${file} is not a DER OCSP response (it must start with an ASN.1 SEQUENCE); write the response as openssl ocsp -respout does, not PEM or text`)); return; }
  staples.set(derDigest(leaf.raw), read.bytes);
}

/** The key of a certificate in `ServerTls.staples`: SHA-256 (hex) of its DER. */
export function derDigest(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

function readPem(file: string, at: ConfigPath, loaded: ConfigSource, problems: ConfigProblem[]): string | null {
  const read = loaded.files.readText(file);
  if (!read.ok) {
    problems.push(loaded.problem(at, `${read.message}; give the path of a PEM file, relative to the config file`));
    return null;
  }
  return read.text;
}

/** Why a certificate cannot be served now, or null. */
export function validityProblem(cert: X509Certificate, now: Date): string | null {
  if (now.getTime() > Date.parse(cert.validTo)) return `the certificate expired on ${new Date(cert.validTo).toISOString()}; renew it`;
  if (now.getTime() < Date.parse(cert.validFrom)) return `the certificate is not valid before ${new Date(cert.validFrom).toISOString()}; check the clock or the certificate`;
  return null;
}
