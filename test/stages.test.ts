import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { compileConfig, type CompiledConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { syntheticExchange, type ExplainRequest } from '../src/explain/explain.js';
import { isDenial, redirect, type Exchange, type Stage, type StageResult } from '../src/pipeline/exchange.js';
import { requestPath, runStages, type RequestPath } from '../src/pipeline/request-path.js';
import { upstreamRequest } from '../src/proxy/upstream-request.js';
import { toYaml } from './harness/gateway.js';

// Each stage on an exchange built in process (the same opening as the server's), without sockets.
const config: CompiledConfig = compileConfig(loadConfigText(toYaml({
  trustedProxies: ['10.0.0.0/8'],
  upstreams: { app: { targets: ['http://127.0.0.1:9'] }, legacy: { targets: ['http://127.0.0.1:9'], preserveHost: true } },
  authenticators: { users: { type: 'jwt', issuer: 'https://issuer.example', audience: 'api', secret: 'a-secret-of-at-least-thirty-two-bytes!!', algorithms: ['HS256'] } },
  rateLimits: { perIp: { algorithm: 'fixed-window', limit: 100, per: '1m', by: ['ip'] } },
  routes: [
    { name: 'orders', match: { methods: ['GET', 'POST'], path: '/api/{tenant}/orders/**' }, upstream: 'app', authenticate: ['users'],
      authorize: { scopes: ['orders:read'], tenant: { param: 'tenant' } }, rateLimit: 'perIp',
      limits: { maxBodyBytes: 100, contentTypes: ['application/json'] } },
    { name: 'legacy', match: { methods: ['GET', 'PUT'], path: '/legacy/**' }, upstream: 'legacy', public: true, allowMethodOverride: true,
      rewrite: { stripPrefix: '/legacy', addPrefix: '/v1' } },
  ],
}), 'gateway.yaml', {}));
const path: RequestPath = requestPath(config, () => true);

function exchange(method: string, target: string, headers: [string, string][] = [], from = '192.0.2.7'): Exchange {
  const request: ExplainRequest = { method, target, headers: [['Host', 'api.example.com'], ...headers], from };
  return syntheticExchange(config, path, request);
}

/** Runs the edge stages up to and including `name`; returns that stage's result. */
function edgeUntil(ex: Exchange, name: string): StageResult {
  const index = path.edge.findIndex((s) => s.name === name);
  assert.ok(index >= 0, name);
  for (let i = 0; i < index; i++) {
    const r = (path.edge[i] as Stage).run(ex);
    assert.ok(!(r instanceof Promise));
    assert.equal(r, undefined, `${(path.edge[i] as Stage).name} let the request through`);
  }
  const result = (path.edge[index] as Stage).run(ex);
  assert.ok(!(result instanceof Promise));
  return result;
}

function code(result: StageResult): string | undefined {
  return result === undefined ? undefined : isDenial(result) ? result.code : result.code;
}

function stage(route: string, name: string): Stage {
  const found = config.routes.find((r) => r.name === route)?.stages.find((s) => s.name === name);
  assert.ok(found !== undefined, `${route} has ${name}`);
  return found;
}

describe('edge stages on a built exchange', () => {
  it('forwarded-for: a trusted proxy\'s hop that is not an address is refused; otherwise the client address is resolved', () => {
    const bad = exchange('GET', '/legacy/a', [['X-Forwarded-For', 'not-an-ip']], '10.1.1.1');
    assert.equal(code(edgeUntil(bad, 'forwarded-for')), 'invalid_header');
    const good = exchange('GET', '/legacy/a', [['X-Forwarded-For', '203.0.113.9']], '10.1.1.1');
    assert.equal(edgeUntil(good, 'forwarded-for'), undefined);
    assert.equal(good.clientIp, '203.0.113.9');
    const untrusted = exchange('GET', '/legacy/a', [['X-Forwarded-For', '203.0.113.9']]);
    assert.equal(untrusted.clientIp, '192.0.2.7', 'an untrusted peer\'s X-Forwarded-For is not believed');
  });

  it('audit-ready: no request starts while the audit trail cannot take its record', () => {
    const stalled = requestPath(config, () => false).edge.find((s) => s.name === 'audit-ready');
    assert.equal(code(stalled?.run(exchange('GET', '/legacy/a')) as StageResult), 'audit_unavailable');
  });

  it('target: the canonical path and query are facts; a refused target ends the request', () => {
    const ex = exchange('GET', '/legacy//a/./b?x=1');
    assert.equal(edgeUntil(ex, 'target'), undefined);
    assert.equal(ex.target?.path, '/legacy/a/b');
    assert.equal(ex.target?.query, '?x=1');
    assert.equal(code(edgeUntil(exchange('GET', '/legacy/a%2Fb'), 'target')), 'ambiguous_path');
  });

  it('header-count, host, framing, upgrade, expect and header-ambiguity each refuse their own fault', () => {
    const many: [string, string][] = Array.from({ length: 100 }, (_, i) => [`x-h${i}`, 'v']);
    assert.equal(code(edgeUntil(exchange('GET', '/legacy/a', many), 'header-count')), 'headers_too_large');
    assert.equal(code(edgeUntil(exchange('GET', '/legacy/a', [['Host', 'b.example']]), 'host')), 'invalid_header');
    const hosted = exchange('GET', '/legacy/a', [], '192.0.2.7');
    assert.equal(edgeUntil(hosted, 'host'), undefined);
    assert.equal(hosted.host, 'api.example.com');
    // The Host's port is a port: 0 to 65535, at most five digits.
    const withHost = (value: string): Exchange => syntheticExchange(config, path, { method: 'GET', target: '/legacy/a', headers: [['Host', value]], from: '192.0.2.7' });
    for (const value of ['api.example.com:65536', 'api.example.com:99999', '[::1]:70000', 'api.example.com:123456', 'api.example.com:']) {
      assert.equal(code(edgeUntil(withHost(value), 'host')), 'invalid_header', value);
    }
    for (const value of ['api.example.com:65535', 'api.example.com:8443', 'api.example.com:0', '[::1]:443']) {
      assert.equal(edgeUntil(withHost(value), 'host'), undefined, value);
    }
    const http10 = exchange('POST', '/legacy/a', [['Transfer-Encoding', 'chunked']]);
    http10.req.httpVersionMinor = 0;
    assert.equal(code(edgeUntil(http10, 'framing')), 'bad_request');
    const ws = exchange('GET', '/legacy/a', [['Upgrade', 'websocket']]);
    assert.equal(code(edgeUntil(ws, 'upgrade')), 'upgrade_refused');
    assert.equal(ws.closeAfter, true, 'the connection closes after an upgrade offer');
    const h2c = exchange('GET', '/legacy/a', [['Upgrade', 'h2c']]);
    assert.equal(edgeUntil(h2c, 'upgrade'), undefined, 'an h2c offer is ignored');
    assert.equal(h2c.closeAfter, true);
    assert.equal(code(edgeUntil(exchange('GET', '/legacy/a', [['Expect', 'x']]), 'expect')), 'expectation_failed');
    assert.equal(code(edgeUntil(exchange('POST', '/legacy/a', [['Content-Type', 'a/b'], ['Content-Type', 'c/d']]), 'header-ambiguity')), 'ambiguous_header');
  });

  it('route: the most specific route is a fact; 404 and 405 (with Allow) otherwise', () => {
    const ex = exchange('GET', '/api/acme/orders/1');
    assert.equal(edgeUntil(ex, 'route'), undefined);
    assert.equal(ex.route?.name, 'orders');
    assert.equal(code(edgeUntil(exchange('GET', '/elsewhere'), 'route')), 'route_not_found');
    const wrong = edgeUntil(exchange('DELETE', '/legacy/a'), 'route');
    assert.ok(wrong !== undefined && isDenial(wrong));
    assert.deepEqual([wrong.code, wrong.headers], ['method_not_allowed', { allow: 'GET, PUT' }]);
  });

  it('method-override: once, only where allowed, only to a method the route takes', () => {
    assert.equal(edgeUntil(exchange('GET', '/legacy/a?_method=PUT'), 'method-override'), undefined);
    assert.equal(code(edgeUntil(exchange('GET', '/legacy/a?_method=DELETE'), 'method-override')), 'method_not_allowed');
    assert.equal(code(edgeUntil(exchange('GET', '/legacy/a?_method=PUT', [['X-HTTP-Method-Override', 'PUT']]), 'method-override')), 'ambiguous_header');
  });
});

describe('route stages on a built exchange', () => {
  it('the route lists its stages in the order of the request path, forwarding last', () => {
    assert.deepEqual(config.routes.find((r) => r.name === 'orders')?.stages.map((s) => s.name),
      ['request-limits', 'rate-limit', 'authenticate', 'authorize', 'identity-headers', 'forward']);
    assert.deepEqual(config.routes.find((r) => r.name === 'legacy')?.stages.map((s) => s.name), ['request-limits', 'forward']);
  });

  it('request-limits: declared size, media type and bodies on methods without body semantics', () => {
    const routed = (method: string, headers: [string, string][]): Exchange => {
      const ex = exchange(method, '/api/acme/orders/1', headers);
      assert.equal(edgeUntil(ex, 'method-override'), undefined);
      return ex;
    };
    const limits = stage('orders', 'request-limits');
    assert.equal(code(limits.run(routed('POST', [['Content-Type', 'application/json'], ['Content-Length', '101']])) as StageResult), 'body_too_large');
    assert.equal(code(limits.run(routed('POST', [['Content-Type', 'text/plain'], ['Content-Length', '2']])) as StageResult), 'unsupported_media_type');
    assert.equal(code(limits.run(routed('GET', [['Content-Length', '2']])) as StageResult), 'body_not_allowed');
    assert.equal(limits.run(routed('POST', [['Content-Type', 'application/json'], ['Content-Length', '2']])), undefined);
  });

  it('authorize and identity-headers decide on the identity fact; the upstream request is assembled from the facts', () => {
    const ex = exchange('GET', '/api/acme/orders/1?access_token=t&page=2', [['X-User-Id', 'mallory'], ['Authorization', 'Bearer t']]);
    assert.equal(edgeUntil(ex, 'method-override'), undefined);
    const identity = { subject: 'alice', method: 'jwt', authenticator: 'users', keyId: null, roles: [], scopes: ['orders:read'], tenant: 'acme', tier: null, claims: null, claimHeaders: [], bearerRealm: 'portcullis' };
    ex.identity = { ...identity, tenant: 'globex' };
    assert.equal(code(stage('orders', 'authorize').run(ex) as StageResult), 'tenant_mismatch');
    ex.identity = { ...identity, scopes: [] };
    assert.equal(code(stage('orders', 'authorize').run(ex) as StageResult), 'insufficient_scope');
    ex.identity = identity;
    assert.equal(stage('orders', 'authorize').run(ex), undefined);
    assert.equal(stage('orders', 'identity-headers').run(ex), undefined);
    assert.ok(ex.asserted?.strip.has('authorization'));
    const sent = upstreamRequest(ex, config);
    assert.equal(sent.path, '/api/acme/orders/1?page=2');
    const headers = new Map<string, string[]>();
    for (let i = 0; i < sent.headers.length; i += 2) headers.set(sent.headers[i] as string, [...(headers.get(sent.headers[i] as string) ?? []), sent.headers[i + 1] as string]);
    assert.deepEqual(headers.get('x-user-id'), ['alice']);
    assert.equal(headers.get('Authorization'), undefined);
    assert.deepEqual(headers.get('x-forwarded-for'), ['192.0.2.7']);
    assert.equal(upstreamRequest(ex, config), sent, 'assembled once per exchange');
  });

  it('the upstream path carries the route\'s rewrite, and Host only where the route preserves it', () => {
    const ex = exchange('GET', '/legacy/a/b?_method=PUT&x=1');
    assert.equal(edgeUntil(ex, 'method-override'), undefined);
    const sent = upstreamRequest(ex, config);
    assert.equal(sent.path, '/v1/a/b?_method=PUT&x=1', 'the override stays where the route allows it');
    assert.ok(sent.headers.includes('host'));
  });
});

describe('the stage runner and response stages', () => {
  it('runs synchronous stages without a promise, names the deciding stage, and stops at a verdict', async () => {
    const seen: string[] = [];
    const step = (name: string, result?: StageResult | Promise<StageResult>): Stage => ({ name, run: () => { seen.push(name); return result; } });
    const ex = exchange('GET', '/legacy/a');
    const sync = runStages([step('a'), step('b', redirect('/login', 'login_required', 'no session')), step('c')], ex);
    assert.ok(!(sync instanceof Promise));
    assert.equal(code(sync), 'login_required');
    assert.equal(ex.stage, 'b');
    assert.deepEqual(seen, ['a', 'b']);
    const later = runStages([step('d', Promise.resolve(undefined)), step('e')], ex);
    assert.ok(later instanceof Promise);
    assert.equal(await later, undefined);
    assert.equal(ex.stage, 'e');
  });

  it('response stages add the request id, rate-limit figures, connection and security headers', () => {
    const ex = exchange('GET', '/legacy/a');
    ex.limits = [{ name: 'perIp', policy: '"perIp";q=100;w=60', allowed: true, limit: 100, windowSec: 60, remaining: 99, resetMs: 60_000, retryAfterMs: 0, describe: '' }];
    ex.closeAfter = true;
    const generated: OutgoingHttpHeaders = {};
    ex.finishHeaders(generated, true);
    assert.equal(generated['x-request-id'], ex.requestId);
    assert.equal(generated.connection, 'close');
    assert.equal(generated['cache-control'], 'no-store');
    assert.equal(generated['x-content-type-options'], 'nosniff');
    assert.ok(Object.keys(generated).some((h) => h.toLowerCase().startsWith('ratelimit')));
    const relayed: OutgoingHttpHeaders = {};
    ex.finishHeaders(relayed, false);
    assert.equal(relayed['cache-control'], undefined, 'an upstream response keeps its own caching');
    assert.equal(relayed['x-request-id'], ex.requestId);
  });
});

describe('the compiled config is deeply immutable', () => {
  it('objects, arrays, maps and sets refuse changes', () => {
    const route = config.routes[0];
    assert.ok(route !== undefined);
    assert.throws(() => { (config.upstreams as Map<string, unknown>).set('x', {}); }, TypeError);
    assert.throws(() => { (config.upstreams as Map<string, unknown>).delete('app'); }, TypeError);
    assert.throws(() => { (config.credentialQueryParams as Set<string>).add('x'); }, TypeError);
    assert.throws(() => { (route.methods as Set<string>).clear(); }, TypeError);
    assert.throws(() => { (route.stages as Stage[]).push(route.stages[0] as Stage); }, TypeError);
    assert.throws(() => { (route as { name: string }).name = 'x'; }, TypeError);
    assert.equal(config.upstreams.size, 2);
  });
});
