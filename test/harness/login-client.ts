// A minimal browser for login flows over plain HTTP: a cookie jar per host, redirects followed
// by hand (each hop visible), and the provider's self-submitting forms (form_post responses,
// the logout confirmation) submitted as a browser's script would. Headers a browser sends on a
// navigation (Sec-Fetch-Mode: navigate, Accept: text/html) are sent unless told otherwise.
import { request } from 'undici';

export interface Hop {
  readonly method: string;
  readonly url: string;
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Send the navigation headers (default true). */
  readonly navigate?: boolean;
  /** The URL of the page that made the request (a form's page), for SameSite (with `sameSite: true`). */
  readonly initiator?: string;
}

export interface LoginClientOptions {
  /**
   * Withhold SameSite=Lax and Strict cookies from a cross-site POST, as browsers do (RFC 6265bis
   * §5.6.7.1; hosts differing is taken as sites differing). Default false: every cookie of the host is sent.
   */
  readonly sameSite?: boolean;
}

const NAVIGATION = { accept: 'text/html,application/xhtml+xml', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' };

export class LoginClient {
  /** Cookies by host name (ports share cookies, as in a browser). */
  private readonly jar = new Map<string, Map<string, string>>();
  /** The SameSite attribute of each cookie set by a response, by host then name (lower case; absent: `lax`, as browsers default). */
  private readonly sameSites = new Map<string, Map<string, string>>();

  constructor(private readonly options: LoginClientOptions = {}) {}

  cookie(url: string, name: string): string | undefined {
    return this.jar.get(new URL(url).hostname)?.get(name);
  }

  setCookie(url: string, name: string, value: string): void {
    const host = new URL(url).hostname;
    let cookies = this.jar.get(host);
    if (cookies === undefined) this.jar.set(host, cookies = new Map<string, string>());
    cookies.set(name, value);
  }

  deleteCookie(url: string, name: string): void {
    this.jar.get(new URL(url).hostname)?.delete(name);
  }

  /** Every cookie of a host, as a Cookie header value. */
  cookieHeader(url: string): string {
    const cookies: Map<string, string> = this.jar.get(new URL(url).hostname) ?? new Map<string, string>();
    return [...cookies.entries()].map(([n, v]) => `${n}=${v}`).join('; ');
  }

  /** The cookies a browser sends on a cross-site POST: SameSite=None only. */
  private crossSiteCookieHeader(url: string): string {
    const host = new URL(url).hostname;
    const cookies: Map<string, string> = this.jar.get(host) ?? new Map<string, string>();
    return [...cookies.entries()].filter(([n]) => this.sameSites.get(host)?.get(n) === 'none').map(([n, v]) => `${n}=${v}`).join('; ');
  }

  /** One request, no redirect followed; Set-Cookie applied to the jar. */
  async send(url: string, options: RequestOptions = {}): Promise<Hop> {
    const method = options.method ?? 'GET';
    const crossSitePost = this.options.sameSite === true && options.initiator !== undefined && method !== 'GET' && method !== 'HEAD' &&
      new URL(options.initiator).hostname !== new URL(url).hostname;
    const cookie = crossSitePost ? this.crossSiteCookieHeader(url) : this.cookieHeader(url);
    const headers: Record<string, string> = { ...(options.navigate === false ? {} : NAVIGATION), ...(cookie === '' ? {} : { cookie }), ...options.headers };
    const res = await request(url, { method: method as 'GET', headers, ...(options.body === undefined ? {} : { body: options.body }), headersTimeout: 10_000, bodyTimeout: 10_000 });
    const body = await res.body.text();
    const setCookies = res.headers['set-cookie'];
    for (const line of typeof setCookies === 'string' ? [setCookies] : setCookies ?? []) this.apply(url, line);
    return { method, url, status: res.statusCode, headers: res.headers, body };
  }

  /**
   * Requests `url` and follows redirects and self-submitting forms until a page that is neither,
   * at most `maxHops` steps. `stopAt(url)`: stop before requesting a URL (to look at a callback).
   */
  async follow(url: string, options: RequestOptions = {}, stopAt: (url: string) => boolean = () => false, maxHops = 20): Promise<{ final: Hop; hops: Hop[]; stoppedAt: string | null }> {
    const hops: Hop[] = [];
    let next: { url: string; options: RequestOptions } | null = { url, options };
    while (next !== null) {
      if (hops.length >= maxHops) throw new Error(`more than ${maxHops} hops: ${hops.map((h) => `${h.status} ${h.url}`).join(' → ')}`);
      if (hops.length > 0 && stopAt(next.url)) return { final: hops.at(-1) as Hop, hops, stoppedAt: next.url };
      const hop = await this.send(next.url, next.options);
      hops.push(hop);
      next = this.nextStep(hop);
    }
    return { final: hops.at(-1) as Hop, hops, stoppedAt: null };
  }

  private nextStep(hop: Hop): { url: string; options: RequestOptions } | null {
    const location = hop.headers.location;
    if (hop.status >= 300 && hop.status < 400 && typeof location === 'string') {
      const target = new URL(location, hop.url).href;
      // 307/308 repeat the method and body; 301, 302 and 303 turn into a GET (as browsers do).
      return hop.status === 307 || hop.status === 308 ? { url: target, options: { method: hop.method } } : { url: target, options: {} };
    }
    const form = selfSubmittingForm(hop.body);
    if (hop.status === 200 && form !== null) {
      return {
        url: new URL(form.action, hop.url).href,
        options: { method: 'POST', initiator: hop.url, body: form.fields.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(hop.url).origin, 'sec-fetch-site': 'cross-site' } },
      };
    }
    return null;
  }

  private apply(url: string, line: string): void {
    const [pair = '', ...attributes] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) return;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=thu, 01 jan 1970/i.test(a));
    if (expired) this.deleteCookie(url, name);
    else this.setCookie(url, name, value);
    const sameSite = attributes.map((a) => /^\s*samesite=(\w+)\s*$/i.exec(a)?.[1]?.toLowerCase()).find((v) => v !== undefined) ?? 'lax';
    const host = new URL(url).hostname;
    let sites = this.sameSites.get(host);
    if (sites === undefined) this.sameSites.set(host, sites = new Map<string, string>());
    sites.set(name, sameSite);
  }
}

/**
 * The first form of a page as a browser would submit it with `fields` typed in (a login form, a
 * consent or logout confirmation without a script): its absolute action URL and the request, hidden
 * inputs and the given fields as application/x-www-form-urlencoded, sent from the page's origin.
 * Null when the page has no form.
 */
export function formSubmission(hop: Hop, fields: Readonly<Record<string, string>> = {}): { url: string; options: RequestOptions } | null {
  const form = /<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(hop.body);
  if (form === null) return null;
  const body = new URLSearchParams();
  for (const input of (form[2] ?? '').matchAll(/<input[^>]*>/gi)) {
    const name = /name="([^"]*)"/.exec(input[0])?.[1];
    if (name === undefined || name in fields || !/type="hidden"/i.test(input[0])) continue;
    body.append(name, decodeEntities(/value="([^"]*)"/.exec(input[0])?.[1] ?? ''));
  }
  for (const [name, value] of Object.entries(fields)) body.append(name, value);
  return {
    url: new URL(decodeEntities(form[1] ?? ''), hop.url).href,
    options: { method: 'POST', body: body.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(hop.url).origin, 'sec-fetch-site': 'same-origin' } },
  };
}

/** A page whose script submits its one form at once (oidc-provider's form_post and logout confirmation): its action and fields. */
function selfSubmittingForm(html: string): { action: string; fields: URLSearchParams } | null {
  if (!/\.submit\(\)/.test(html)) return null;
  const form = /<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (form === null) return null;
  const fields = new URLSearchParams();
  for (const input of (form[2] ?? '').matchAll(/<input[^>]*>/gi)) {
    const name = /name="([^"]*)"/.exec(input[0])?.[1];
    const value = /value="([^"]*)"/.exec(input[0])?.[1] ?? '';
    if (name !== undefined) fields.append(name, decodeEntities(value));
  }
  // The logout confirmation's button, which the script's submit stands in for.
  if (/name="logout"/.test(html) && !fields.has('logout')) fields.set('logout', 'yes');
  return { action: decodeEntities(form[1] ?? ''), fields };
}

function decodeEntities(text: string): string {
  return text.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}
