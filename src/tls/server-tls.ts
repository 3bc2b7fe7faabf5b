import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { ConfigProblem } from '../config/errors.js';
import type { ConfigSource } from '../config/config-source.js';
import type { RawHttpsListen } from '../config/schema-listen.js';
import { inUse, type CertificateInUse } from './certificate-expiry.js';
import { clientAuthContext, compileClientAuth, type ClientAuth } from './client-auth.js';

/**
 * The HTTPS listener's material, compiled from `listen.https`: the options of its secure context
 * and what it serves. Live on reload: a reload (or a change of a file it was read from) swaps it
 * into the running listener; new handshakes use it, open connections finish on the old.
 */
export interface ServerTls {
  readonly context: SecureContextOptions;
  /** What it serves, for the expiry metric and warnings. */
  readonly certificates: readonly CertificateInUse[];
  /** Client certificates asked for (`clientAuth`), or null; its CAs and CRLs are already in `context`. */
  readonly clientAuth: ClientAuth | null;
}

/** TLS 1.2 and 1.3 only, whatever a client offers. */
export const MIN_TLS_VERSION = 'TLSv1.2';

/** Where in gateway.yaml, for problems. */
const AT = ['listen', 'https'] as const;

/**
 * Reads and checks the HTTPS listener's certificate and key (through the config's file reader, so
 * they count in the config version): PEM that parses, a key that matches the certificate, a
 * certificate valid now. Every problem is located at its option; null when there is one.
 */
export function compileServerTls(raw: RawHttpsListen | undefined, loaded: ConfigSource, problems: ConfigProblem[], now: Date): ServerTls | null {
  if (raw === undefined) return null;
  const before = problems.length;
  const certText = readPem(raw.cert, 'cert', loaded, problems);
  const keyText = readPem(raw.key, 'key', loaded, problems);
  const clientAuth = compileClientAuth(raw.clientAuth, loaded, problems, now);
  if (certText === null || keyText === null) return null;
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certText);
  } catch (err) {
    problems.push(loaded.problem([...AT, 'cert'], `${raw.cert} holds no readable PEM certificate (${(err as Error).message}); expected a \`-----BEGIN CERTIFICATE-----\` block, the server certificate first`));
    return null;
  }
  const validity = validityProblem(leaf, now);
  if (validity !== null) problems.push(loaded.problem([...AT, 'cert'], `${raw.cert}: ${validity}`));
  // Every secure context the listener serves carries the client CAs and CRLs.
  const context: SecureContextOptions = { cert: certText, key: keyText, minVersion: MIN_TLS_VERSION, ...clientAuthContext(clientAuth) };
  try {
    createSecureContext(context);
  } catch (err) {
    const message = (err as Error).message;
    problems.push(loaded.problem([...AT, 'key'], /mismatch/i.test(message)
      ? `${raw.key} is not the private key of the certificate in ${raw.cert}; give the key the certificate was issued for`
      : `${raw.key} cannot be used with ${raw.cert}: ${message}; expected an unencrypted PEM private key`));
  }
  if (problems.length > before) return null;
  return { context, certificates: [inUse('server', 'listen.https', leaf)], clientAuth };
}

function readPem(file: string, option: string, loaded: ConfigSource, problems: ConfigProblem[]): string | null {
  const read = loaded.files.readText(file);
  if (!read.ok) {
    problems.push(loaded.problem([...AT, option], `${read.message}; give the path of a PEM file, relative to the config file`));
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
