// One browser login through the gateway, before the load of the session scenarios: the gateway's
// login path, the provider's authorization endpoint (its `auto` interactions log the bench user in
// without a page), the gateway's callback, then the protected page. Redirects are followed by hand
// with a cookie jar per host name (ports share cookies, as in a browser); the session cookie the
// callback sets is what every load request then sends.
import { request } from 'undici';

const MAX_HOPS = 20;
/** What a browser sends on a navigation: the gateway answers a navigation without a session with a login redirect. */
const NAVIGATION = { accept: 'text/html,application/xhtml+xml', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' };

/** The session cookie's name for the oidc authenticator `name`. */
export const sessionCookieName = (name) => `__Host-portcullis-session-${name}`;

/**
 * Logs in at `loginUrl` (the gateway's login path with `?rd=`), follows every redirect, and
 * resolves with the value of `cookieName` once the last page answers 200. Fails with the hops seen
 * otherwise.
 */
export async function loginForSession(loginUrl, cookieName) {
  const jar = new Map();
  const hops = [];
  let url = loginUrl;
  for (;;) {
    if (hops.length >= MAX_HOPS) throw new Error(`login: more than ${MAX_HOPS} hops: ${hops.join(' → ')}`);
    const host = new URL(url).hostname;
    const cookies = jar.get(host) ?? new Map();
    jar.set(host, cookies);
    const cookie = [...cookies].map(([n, v]) => `${n}=${v}`).join('; ');
    const res = await request(url, { headers: { ...NAVIGATION, ...(cookie === '' ? {} : { cookie }) }, headersTimeout: 10_000, bodyTimeout: 10_000 });
    const body = await res.body.text();
    hops.push(`${res.statusCode} ${url}`);
    const setCookie = res.headers['set-cookie'];
    for (const line of typeof setCookie === 'string' ? [setCookie] : setCookie ?? []) {
      const pair = line.split(';', 1)[0];
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const [name, value] = [pair.slice(0, eq).trim(), pair.slice(eq + 1).trim()];
      if (/;\s*max-age=0\s*(;|$)/i.test(line) || value === '') cookies.delete(name);
      else cookies.set(name, value);
    }
    const location = res.headers.location;
    if (res.statusCode >= 300 && res.statusCode < 400 && typeof location === 'string') {
      url = new URL(location, url).href;
      continue;
    }
    if (res.statusCode !== 200) throw new Error(`login: ${hops.join(' → ')}: ${body.slice(0, 200)}`);
    const session = jar.get(new URL(loginUrl).hostname)?.get(cookieName);
    if (session === undefined) throw new Error(`login: no ${cookieName} cookie after ${hops.join(' → ')}`);
    return session;
  }
}
