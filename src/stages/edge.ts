import { isPreflight } from '../cors/policy.js';
import { parseTarget, type TargetOptions } from '../http/target.js';
import { METHOD_OVERRIDE_PARAM, paramValues } from '../http/query.js';
import { deny, type Denial } from '../pipeline/denials.js';
import type { Exchange, Route, Stage } from '../pipeline/exchange.js';
import type { Router } from '../routing/router.js';

/**
 * The edge stages: checks every request passes before and while it is routed, whatever route it
 * takes. Each is one named step; pipeline/request-path.ts puts them in order.
 */

/** The audit trail must be able to take the request's record: no unrecorded traffic. */
export function auditReady(healthy: () => boolean): Stage {
  return { name: 'audit-ready', run: () => (healthy() ? undefined : deny('audit_unavailable', 'audit trail is not accepting records')) };
}

/** A trusted proxy's X-Forwarded-For must name addresses only: the client address decides limits and key CIDRs. */
export const forwardedFor: Stage = {
  name: 'forwarded-for',
  run: (ex) => (ex.clientIpResolved ? undefined : deny('invalid_header', 'X-Forwarded-For from a trusted proxy has a hop that is not an address')),
};

/** The request target in origin form, canonical (see http/target.ts). */
export function target(options: TargetOptions): Stage {
  return {
    name: 'target',
    run(ex) {
      const parsed = parseTarget(ex.req.url ?? '', options);
      if ('code' in parsed) return parsed;
      ex.target = parsed;
      return undefined;
    },
  };
}

/**
 * Node counts header fields only up to its limit; one more than the limit is refused here. HTTP/2
 * pseudo-header fields (`:method`, `:path`, …) stand for the request line and do not count.
 */
export function headerCount(maxHeaderCount: number): Stage {
  return {
    name: 'header-count',
    run(ex) {
      const raw = ex.req.rawHeaders;
      if (raw.length <= maxHeaderCount * 2) return undefined;
      let fields = raw.length / 2;
      if (ex.req.httpVersionMajor === 2) for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).charCodeAt(0) === 58) fields--;
      return fields > maxHeaderCount ? deny('headers_too_large', `${fields} header fields, limit ${maxHeaderCount}`) : undefined;
    },
  };
}

// A reg-name (RFC 3986 §3.2.2) of letters, digits, `-`, `.` and `_` (Compose and Kubernetes
// service names), or an IP literal, with an optional port of 0 to 65535.
const HOST = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?|\[[0-9A-Fa-f:.]{2,45}\])(?::(?:6553[0-5]|655[0-2]\d|65[0-4]\d{2}|6[0-4]\d{3}|[1-5]\d{4}|\d{1,4}))?$/;

/** Exactly one well-formed Host (on HTTP/2, `:authority`); its normalised name is what routes match on. */
export const host: Stage = {
  name: 'host',
  run(ex) {
    const inbound = inboundOf(ex);
    // RFC 9113 §8.3.1: a Host naming another host than :authority makes the request malformed.
    if (inbound.authorityMismatch) return deny('invalid_header', ':authority and Host name different hosts');
    if (inbound.hostCount !== 1 || inbound.host === null || !HOST.test(inbound.host) || inbound.host.includes('..')) {
      return deny('invalid_header', inbound.hostCount > 1 ? 'several Host headers' : 'missing or malformed Host header');
    }
    ex.host = hostName(inbound.host);
    return undefined;
  },
};

/**
 * RFC 9112 §6.1: a Transfer-Encoding in an HTTP/1.0 message is a framing fault (the sender and an
 * HTTP/1.0 hop disagree on where the body ends).
 */
export const framing: Stage = {
  name: 'framing',
  run: (ex) => (ex.req.httpVersionMajor === 1 && ex.req.httpVersionMinor === 0 && ex.req.headers['transfer-encoding'] !== undefined
    ? deny('bad_request', 'Transfer-Encoding in an HTTP/1.0 request')
    : undefined),
};

/**
 * Nothing is tunnelled. An h2c offer may be ignored (RFC 9110 §7.8) and is answered over HTTP/1.1;
 * every other upgrade is refused. Node's parser stops reading a connection after an upgrade offer,
 * so the connection closes after this answer either way.
 */
export const upgrade: Stage = {
  name: 'upgrade',
  run(ex) {
    const offer = ex.req.headers.upgrade;
    if (offer === undefined) return undefined;
    ex.closeAfter = true;
    return offer.trim().toLowerCase() === 'h2c' ? undefined : deny('upgrade_refused', `Upgrade: ${offer.slice(0, 40)}`);
  },
};

/** Only `Expect: 100-continue`, and the 100 is sent only when the request will be forwarded. */
export const expect: Stage = {
  name: 'expect',
  run(ex) {
    const value = ex.req.headers.expect;
    return value !== undefined && value.toLowerCase() !== '100-continue' ? deny('expectation_failed', `Expect: ${value.slice(0, 40)}`) : undefined;
  },
};

/** A header some stage decides on may not be repeated or ambiguous (see http/headers.ts). */
export const headerAmbiguity: Stage = {
  name: 'header-ambiguity',
  run(ex) {
    const ambiguous = inboundOf(ex).ambiguous;
    return ambiguous === null ? undefined : deny('ambiguous_header', ambiguous);
  },
};

/**
 * The most specific route decides (404 when none matches the path, 405 with Allow when its methods
 * differ). A CORS preflight goes to the route of the method it asks about, if that route has a policy.
 */
export function route(router: Router<Route>): Stage {
  return {
    name: 'route',
    run(ex) {
      const segments = (ex.target as NonNullable<Exchange['target']>).segments;
      if (isPreflight(ex.req)) {
        // A preflight asks whether another method may be sent: the route that would take that
        // method answers it when it has a CORS policy, whether or not it accepts OPTIONS.
        const asked = router.match(segments, ex.req.headers['access-control-request-method'] ?? '', ex.host);
        if (asked.kind === 'found' && asked.route.cors !== null) { ex.route = asked.route; return undefined; }
      }
      const match = router.match(segments, ex.req.method ?? '', ex.host);
      if (match.kind === 'not_found') return deny('route_not_found', 'no route matches the path'); // the record has the path once, in `path`
      if (match.kind === 'method_not_allowed') {
        const allow = match.allow.join(', ');
        return deny('method_not_allowed', `${ex.req.method ?? ''} not in ${allow}`, { allow });
      }
      ex.route = match.route;
      return undefined;
    },
  };
}

/**
 * A method override (header or `_method` query parameter) is forwarded only on a route that
 * allows overrides, only once, and only to a method the route accepts; elsewhere it was already
 * dropped with the other proxy-asserted headers (and the parameter is dropped from the query).
 */
export const methodOverride: Stage = {
  name: 'method-override',
  run(ex) {
    const routed = ex.route as Route;
    if (!routed.allowMethodOverride) return undefined;
    const inbound = inboundOf(ex);
    const query = (ex.target as NonNullable<Exchange['target']>).query;
    const fromQuery = query === '' ? [] : paramValues(query, METHOD_OVERRIDE_PARAM);
    const first = inbound.methodOverride ?? (fromQuery[0] === undefined ? null : { name: `query ${METHOD_OVERRIDE_PARAM}`, value: fromQuery[0] });
    if (first === null) return undefined;
    const refused = checkOverride(routed, first, inbound.methodOverrides + fromQuery.length, ex.req.headers.origin !== undefined);
    if (refused === undefined) ex.methodOverride = first.value.trim();
    return refused;
  },
};

/** Methods a browser sends cross-origin without a preflight (the Fetch standard's CORS-safelisted methods). */
const SAFELISTED_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST']);

function checkOverride(routed: Route, override: { readonly name: string; readonly value: string }, count: number, fromBrowser: boolean): Denial | undefined {
  if (count > 1) return deny('ambiguous_header', `${count} method-override headers`);
  const method = override.value.trim();
  const allowed = routed.methods;
  if (allowed === null || !allowed.has(method)) {
    const allow = allowed === null ? '' : [...allowed].sort().join(', ');
    return deny('method_not_allowed', `${override.name}: ${method.slice(0, 20)} not in ${allow}`, { allow });
  }
  // A page's form POST with `?_method=DELETE` needs no preflight: on a route with a CORS policy, a
  // browser's request (it carries Origin) may become only a method the policy would have let a
  // preflight ask for, so an override never grants what the policy refuses (CSRF).
  const cors = routed.cors;
  if (fromBrowser && cors !== null && !SAFELISTED_METHODS.has(method) && !cors.methods.has(method)) {
    return deny('method_not_allowed', `${override.name}: ${method.slice(0, 20)} from a browser origin, and CORS policy ${cors.name} does not allow it`, { allow: [...allowed].sort().join(', ') });
  }
  return undefined;
}

function inboundOf(ex: Exchange): NonNullable<Exchange['inbound']> {
  return ex.inbound as NonNullable<Exchange['inbound']>;
}

/** Lower case, port removed, one trailing dot removed: `API.example.com.:443` → `api.example.com`. */
export function hostName(value: string): string {
  let name = value;
  if (name.startsWith('[')) name = name.slice(0, name.indexOf(']') + 1);
  else { const colon = name.indexOf(':'); if (colon !== -1) name = name.slice(0, colon); }
  if (name.endsWith('.')) name = name.slice(0, -1);
  return name.toLowerCase();
}
