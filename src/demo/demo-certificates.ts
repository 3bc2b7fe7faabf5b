// The demo's HTTPS material: a development CA and a server certificate made for the run, in its
// state directory (removed when the demo stops), as `portcullis certs dev` makes them.
import { isIP } from 'node:net';
import { join } from 'node:path';
import { DEV_DAYS, LOCAL_NAMES, issueDevCertificates, serverNameProblem, writeDevFiles } from '../tls/dev-certificates.js';

/** Where the demo's certificates are. */
export interface DemoCertificates {
  /** The directory the config's `${DEMO_TLS_DIR}` names. */
  readonly dir: string;
  /** The CA certificate clients trust (`curl --cacert`). */
  readonly caFile: string;
}

/** Addresses that bind every interface: reached on loopback, which the certificate names already. */
const WILDCARDS = new Set(['0.0.0.0', '::']);

/**
 * Makes the run's CA and server certificate in `dir`: for localhost, 127.0.0.1 and ::1, and for
 * the address the demo listens on when it is another one (`--host myhost.lan`), so the URLs the
 * demo prints verify.
 */
export async function demoCertificates(dir: string, host: string): Promise<DemoCertificates> {
  const name = isIP(host) === 0 ? host.toLowerCase() : host;
  const names = WILDCARDS.has(name) || LOCAL_NAMES.includes(name) || serverNameProblem(name) !== null ? [] : [name];
  const files = await issueDevCertificates({ names, clients: [], days: DEV_DAYS.default });
  writeDevFiles(dir, files, false);
  return { dir, caFile: join(dir, 'ca.crt') };
}
