/**
 * Browser origins (RFC 6454 §6.2, the Fetch standard's serialisation): `scheme://host[:port]`, in
 * lower case, without the default port, a path, user info or a trailing dot. A policy allows an
 * origin only when the `Origin` header is exactly such a serialisation and equals an allowed origin,
 * or fits a pattern's one label: the value echoed in `Access-Control-Allow-Origin` is then the
 * exact text the browser compares with its own origin.
 */

import { isIP } from 'node:net';

/** The longest `Origin` value looked at: scheme, a 253-character host and a port, with room to spare. */
export const MAX_ORIGIN_LENGTH = 300;

// One DNS label (RFC 1123 §2.1 letters, digits and hyphens), lower case as browsers serialise it.
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const PORT = '(?::([1-9][0-9]{0,4}))?';
const SERIALISED = new RegExp(`^(https?)://(${LABEL}(?:\\.${LABEL})*|\\[[0-9a-f:.]{2,45}\\])${PORT}$`);
const LABEL_ONLY = new RegExp(`^${LABEL}$`);
const DEFAULT_PORT: Readonly<Record<string, string>> = { http: '80', https: '443' };

/** One allowed origin: exact, or `scheme://*.suffix[:port]` (exactly one label in place of `*`). */
export type OriginRule =
  | { readonly kind: 'exact'; readonly origin: string }
  | { readonly kind: 'label'; readonly prefix: string; readonly suffix: string };

/** What an allowed-origins list compiles to: every origin (`*`), or exact origins and one-label patterns. */
export interface OriginSet {
  readonly any: boolean;
  readonly exact: ReadonlySet<string>;
  readonly patterns: readonly Extract<OriginRule, { kind: 'label' }>[];
}

/**
 * Whether `value` is a serialised origin a browser could send, in its one canonical spelling:
 * http or https, a lower-case host name (or a bracketed IPv6 literal), no default port, nothing
 * after the authority. `null` (sandboxed frames, `file:` pages, redirects) is not one.
 */
export function isSerialisedOrigin(value: string): boolean {
  if (value.length > MAX_ORIGIN_LENGTH) return false;
  const m = SERIALISED.exec(value);
  if (m === null) return false;
  const [, scheme, host = '', port] = m;
  if (host.length > 253 || (host.startsWith('[') && isIP(host.slice(1, -1)) !== 6)) return false;
  return port === undefined || (Number(port) <= 65535 && port !== DEFAULT_PORT[scheme ?? '']);
}

/**
 * Compiles one configured origin. Returns the rule, or what is wrong with it in words that say
 * what would be right.
 */
export function compileOrigin(text: string): OriginRule | { readonly problem: string } {
  if (text === 'null') return { problem: '"null" is the origin of sandboxed frames, file: pages and redirected requests: any page can send it, so allowing it allows every page; list the real origins' };
  const star = text.indexOf('*');
  if (star === -1) {
    if (isSerialisedOrigin(text)) return { kind: 'exact', origin: text };
    return { problem: `"${text}" ${originFault(text)}` };
  }
  const m = /^(https?):\/\/\*\.([^/:]+)(:[0-9]+)?$/.exec(text);
  if (m === null) return { problem: `"${text}": a pattern is scheme://*.domain[:port], with "*" the whole first label (https://*.example.com)` };
  const [, scheme, domain, port = ''] = m;
  const sample = `${scheme ?? ''}://x.${domain ?? ''}${port}`;
  if (!isSerialisedOrigin(sample)) return { problem: `"${text}": after "*." ${originFault(sample).replace(/^is /, 'the rest ')}` };
  if ((domain ?? '').split('.').length < 2) return { problem: `"${text}": "*" would stand for a label directly under the top-level domain "${domain ?? ''}"; allow origins under a domain you own (https://*.example.com)` };
  return { kind: 'label', prefix: `${scheme ?? ''}://`, suffix: `.${domain ?? ''}${port}` };
}

/** Why a configured origin is not a serialised origin, starting "is …" or "has …". */
function originFault(text: string): string {
  if (!/^https?:\/\//.test(text)) return 'is not an http or https origin: write scheme://host[:port], like https://app.example.com';
  if (/^https?:\/\/[^/]*\//.test(text)) return 'has a path: an origin is scheme://host[:port] only (browsers never send a path)';
  if (/[A-Z]/.test(text)) return `has upper case: browsers send origins in lower case, write ${text.toLowerCase()}`;
  if (/\.(?::[0-9]+)?$/.test(text)) return 'ends its host with a dot: browsers send the host without it';
  if (/^http:\/\/[^/]*:80$|^https:\/\/[^/]*:443$/.test(text)) return `has the scheme's default port: browsers leave it out, write ${text.replace(/:[0-9]+$/, '')}`;
  if (text.includes('@')) return 'has user information: an origin is scheme://host[:port] only';
  return 'is not an origin: write scheme://host[:port] with a lower-case host name and a port from 1 to 65535, like https://app.example.com';
}

/** Compiles an allowed-origins list; problems are reported per index through `report`. */
export function compileOrigins(list: readonly string[], report: (index: number, message: string) => void): OriginSet {
  const exact = new Set<string>();
  const patterns: Extract<OriginRule, { kind: 'label' }>[] = [];
  let any = false;
  list.forEach((text, i) => {
    if (text === '*') {
      if (list.length > 1) report(i, '"*" allows every origin already: list either "*" alone or the origins to allow');
      any = true;
      return;
    }
    const rule = compileOrigin(text);
    if ('problem' in rule) report(i, rule.problem);
    else if (rule.kind === 'exact') exact.add(rule.origin);
    else patterns.push(rule);
  });
  return { any, exact, patterns };
}

/**
 * Whether an `Origin` header value is allowed by the set. Only a canonical serialised origin can
 * be (see isSerialisedOrigin): `null`, upper case, a trailing dot, a path, a default port or a
 * second origin in the same value never is. A pattern's `*` stands for exactly one label, so
 * `https://*.example.com` takes `https://app.example.com` but not `https://example.com`,
 * `https://a.b.example.com` or `https://evil.com.example.com`.
 */
export function originAllowed(set: OriginSet, origin: string): boolean {
  if (!isSerialisedOrigin(origin)) return false;
  if (set.exact.has(origin)) return true;
  for (const p of set.patterns) {
    if (!origin.startsWith(p.prefix) || !origin.endsWith(p.suffix)) continue;
    const label = origin.slice(p.prefix.length, origin.length - p.suffix.length);
    if (LABEL_ONLY.test(label)) return true;
  }
  return false;
}
