import { isIP } from 'node:net';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Whether `url` names this machine (plain http is accepted there only). */
export function isLoopbackUrl(url: URL): boolean {
  return LOOPBACK_HOSTS.has(url.hostname) || (isIP(url.hostname) === 4 && url.hostname.startsWith('127.'));
}

/**
 * Why `value` cannot be an authorization server URL (issuer, introspection endpoint), or null:
 * https, or http on a loopback host only — a token sent for introspection in clear text, or an
 * answer that can be replaced in transit, would hand out identities. No userinfo.
 */
export function endpointUrlProblem(value: string): string | null {
  let url: URL;
  try { url = new URL(value); } catch { return `${value.slice(0, 100)} is not a valid URL: write one like https://as.example.com/oauth2/introspect`; }
  if (url.username !== '' || url.password !== '') return 'must not contain credentials (the client authenticates with clientSecret or privateKey)';
  if (url.protocol === 'https:') return null;
  if (url.protocol === 'http:' && isLoopbackUrl(url)) return null;
  return 'must be https (plain http is accepted for loopback hosts only: localhost, 127.0.0.1, [::1])';
}
