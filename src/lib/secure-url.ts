import { isIP } from 'node:net';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Whether `url` names this machine (plain http is accepted there only). */
function isLoopbackUrl(url: URL): boolean {
  return LOOPBACK_HOSTS.has(url.hostname) || (isIP(url.hostname) === 4 && url.hostname.startsWith('127.'));
}

/**
 * Why `value` cannot be a URL the gateway fetches keys from or sends credentials to (a JWK Set, an
 * authorization server's metadata, introspection or token endpoint), or null: https, or http on a
 * loopback host only — keys fetched, or a token or client secret sent, in clear text can be read or
 * replaced in transit. No userinfo: credentials go in their own options.
 * `example` completes the message for a value that is not a URL.
 */
export function secureUrlProblem(value: string, example: string): string | null {
  let url: URL;
  try { url = new URL(value); } catch { return `is not a valid URL: write one like ${example}`; }
  if (url.username !== '' || url.password !== '') return 'must not contain credentials';
  if (url.protocol === 'https:') return null;
  if (url.protocol === 'http:' && isLoopbackUrl(url)) return null;
  return 'must be https (plain http is accepted for loopback hosts only: localhost, 127.0.0.1, [::1])';
}
