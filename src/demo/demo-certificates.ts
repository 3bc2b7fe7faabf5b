// The demo's HTTPS material: a development CA and a server certificate made for the run, in its
// state directory (removed when the demo stops), as `portcullis certs dev` makes them.
import { isIP } from 'node:net';
import { join } from 'node:path';
import { DEFAULT_CLIENT, DEV_DAYS, LOCAL_NAMES, defaultSpiffeId, issueDevCertificates, serverNameProblem, writeDevFiles } from '../tls/dev-certificates.js';

/** Where the demo's certificates are. */
export interface DemoCertificates {
  /** The directory the config's `${DEMO_TLS_DIR}` names. */
  readonly dir: string;
  /** The CA certificate clients trust (`curl --cacert`), and the one the gateway checks client certificates against. */
  readonly caFile: string;
  /** The client certificate the demo's mTLS route accepts, its key and SPIFFE ID. */
  readonly client: { readonly cert: string; readonly key: string; readonly spiffeId: string };
}

/** Addresses that bind every interface: reached on loopback, which the certificate names already. */
const WILDCARDS = new Set(['0.0.0.0', '::']);

/**
 * Makes the run's CA, server certificate and client certificate (`demo`, with the SPIFFE ID the
 * quickstart's mtls authenticator maps) in `dir`: for localhost, 127.0.0.1 and ::1, and for
 * the address the demo listens on when it is another one (`--host myhost.lan`), so the URLs the
 * demo prints verify.
 */
export async function demoCertificates(dir: string, host: string): Promise<DemoCertificates> {
  const name = isIP(host) === 0 ? host.toLowerCase() : host;
  const names = WILDCARDS.has(name) || LOCAL_NAMES.includes(name) || serverNameProblem(name) !== null ? [] : [name];
  const spiffeId = defaultSpiffeId(DEFAULT_CLIENT);
  const files = await issueDevCertificates({ names, clients: [{ name: DEFAULT_CLIENT, spiffeId }], days: DEV_DAYS.default });
  writeDevFiles(dir, files, false);
  return { dir, caFile: join(dir, 'ca.crt'), client: { cert: join(dir, `client-${DEFAULT_CLIENT}.crt`), key: join(dir, `client-${DEFAULT_CLIENT}.key`), spiffeId } };
}
