// OpenTelemetry tracing: a SERVER span per request with a child per stage run (the forward stage's
// CLIENT, named in the upstream's traceparent), exported over OTLP/HTTP JSON to a real in-process
// collector; W3C trace context believed from trusted proxies only, and strictly; no secret in any
// exported byte; an exporter that is down or slow never touches requests.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startEchoUpstream, type EchoUpstream, type EchoedRequest } from './harness/echo.js';
import { startGateway, startGatewayProcess, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { request as httpRequest } from 'node:http';
import { attribute, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './harness/otlp-receiver.js';
import { mint, testKey, type TestKey } from './harness/jwt.js';
import { freePort } from './harness/free-port.js';
import { configProblems } from './harness/config.js';
import { ManualClock } from './harness/manual-clock.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { OtlpExporter } from '../src/observability/tracing/otlp-exporter.js';
import { SPAN_KIND, type SpanData } from '../src/observability/tracing/span-data.js';
import { parseTraceparent, parseTracestate } from '../src/observability/tracing/trace-context.js';
import { PassThrough } from 'node:stream';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { dirname, join } from 'node:path';
import { verifyJson } from './harness/audit-verify-cli.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const VALID = `00-${TRACE}-${PARENT}-01`;
const SERVER = 2;
const INTERNAL = 1;
const CLIENT = 3;

interface Sent {
  readonly status: number;
  readonly requestId: string;
  readonly code: string | null;
  /** What the upstream received, when the request was forwarded. */
  readonly upstream: EchoedRequest | null;
}

async function send(gw: TestGateway, path: string, headers: Record<string, string> | string[] = {}): Promise<Sent> {
  const res = await request(`${gw.url}${path}`, { headers });
  const text = await res.body.text();
  const json = text === '' ? null : JSON.parse(text) as Record<string, unknown>;
  const problem = String(res.headers['content-type'] ?? '').startsWith('application/problem+json');
  const requestId = String(res.headers['x-request-id']);
  return {
    status: res.statusCode,
    requestId,
    code: problem && typeof json?.type === 'string' ? json.type.split(':').at(-1) ?? null : null,
    upstream: ECHOES.flatMap((e) => e.received).find((r) => r.headers['x-request-id'] === requestId) ?? null,
  };
}

/** Every echo upstream the tests started: what each received, by request id. */
const ECHOES: EchoUpstream[] = [];

async function startEcho(): Promise<EchoUpstream> {
  const echo = await startEchoUpstream();
  ECHOES.push(echo);
  return echo;
}

/** Every value of a header the upstream received, in any case. */
function received(upstream: EchoedRequest | null, name: string): string[] {
  const raw = upstream?.rawHeaders ?? [];
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if ((raw[i] as string).toLowerCase() === name) out.push(raw[i + 1] as string);
  return out;
}

/** The request span of a request id and its children, once the collector has them all. */
async function treeOf(receiver: OtlpReceiver, requestId: string): Promise<{ root: ReceivedSpan; children: ReceivedSpan[] }> {
  const spans = await receiver.waitFor((all) => all.some((s) => attribute(s, 'portcullis.request_id') === requestId));
  const root = spans.find((s) => attribute(s, 'portcullis.request_id') === requestId) as ReceivedSpan;
  return { root, children: spans.filter((s) => s.parentSpanId === root.spanId && s.traceId === root.traceId) };
}

async function counted(gw: TestGateway, name: 'traceSpans' | 'traceExports', label: string): Promise<number> {
  const metric = await gw.gateway.metrics[name].get();
  return metric.values.filter((v) => Object.values(v.labels).includes(label)).reduce((a, v) => a + v.value, 0);
}

/** The gateway's count once its exporter has no export under way (the outcome of every export started is counted then). */
async function countSettled(gw: TestGateway, name: 'traceSpans' | 'traceExports', label: string): Promise<number> {
  await gw.gateway.runtime.config.tracer?.idle();
  return counted(gw, name, label);
}

function tracing(endpoint: string, exporter: Record<string, unknown> = {}, more: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...more, exporter: { endpoint, intervalMs: 10, ...exporter } };
}

describe('tracing: one span per request and one per stage, exported over OTLP/HTTP', () => {
  let echo: EchoUpstream;
  let receiver: OtlpReceiver;
  let gw: TestGateway;
  let key: TestKey;
  let downPort: number;
  before(async () => {
    echo = await startEcho();
    receiver = await startOtlpReceiver();
    key = await testKey('ES256', 'k1');
    downPort = await freePort();
    gw = await startGateway({
      upstreams: { app: { targets: [echo.url] }, down: { targets: [`http://127.0.0.1:${downPort}`], connectTimeoutMs: 2000 } },
      authenticators: { users: { type: 'jwt', issuer: 'https://issuer.test/', audience: 'orders-api', algorithms: ['ES256'], publicKeys: [{ pem: key.pem, kid: key.kid }] } },
      routes: [
        { name: 'open', match: { path: '/open/**' }, upstream: 'app', public: true },
        { name: 'orders', match: { path: '/orders/**' }, upstream: 'app', authenticate: ['users'], authorize: { scopes: ['orders:read'] } },
        { name: 'broken', match: { path: '/down/**' }, upstream: 'down', public: true },
      ],
      tracing: tracing(receiver.url, {}, { serviceName: 'edge-gateway' }),
    });
  });
  after(async () => {
    await gw.close();
    await receiver.close();
    await echo.close();
  });

  it('an allowed request: a SERVER span, one INTERNAL child per stage run in order, the forward stage CLIENT and parent of the upstream traceparent', async () => {
    const token = await mint(key, { scope: 'orders:read' });
    const sent = await send(gw, '/orders/42', { authorization: `Bearer ${token}` });
    assert.equal(sent.status, 200);
    const { root, children } = await treeOf(receiver, sent.requestId);
    assert.equal(root.kind, SERVER);
    assert.equal(root.name, 'GET orders');
    assert.equal(root.parentSpanId ?? '', '', 'a request from an untrusted client is the root of its trace');
    assert.match(root.traceId, /^[0-9a-f]{32}$/);
    assert.match(root.spanId, /^[0-9a-f]{16}$/);
    const runtime = gw.gateway.runtime;
    const route = runtime.config.routes.find((r) => r.name === 'orders');
    const expected = [...runtime.path.edge, ...(route?.stages ?? [])].map((s) => s.name);
    assert.deepEqual(children.map((c) => c.name), expected, 'one child per stage run, in request order');
    for (const c of children) {
      assert.equal(c.kind, c.name === 'forward' ? CLIENT : INTERNAL, c.name);
      assert.equal(attribute(c, 'portcullis.stage'), c.name);
      assert.ok(BigInt(c.startTimeUnixNano) >= BigInt(root.startTimeUnixNano) && BigInt(c.endTimeUnixNano) <= BigInt(root.endTimeUnixNano), `${c.name} lies within the request span`);
    }
    for (let i = 1; i < children.length; i++) assert.ok(BigInt((children[i] as ReceivedSpan).startTimeUnixNano) >= BigInt((children[i - 1] as ReceivedSpan).endTimeUnixNano), 'stages run one after the other');
    assert.equal(new Set(children.map((c) => c.spanId)).size, children.length, 'span ids are unique');
    assert.equal(attribute(root, 'http.request.method'), 'GET');
    assert.equal(attribute(root, 'url.path'), '/orders/42');
    assert.equal(attribute(root, 'http.route'), 'orders');
    assert.equal(attribute(root, 'http.response.status_code'), 200);
    assert.equal(attribute(root, 'client.address'), '127.0.0.1');
    assert.equal(attribute(root, 'portcullis.decision'), 'allow');
    assert.equal(attribute(root, 'portcullis.code'), undefined);
    assert.equal(attribute(root, 'portcullis.stage'), 'forward');
    assert.equal(root.status.code ?? 0, 0);
    const forwardSpan = children.find((c) => c.name === 'forward') as ReceivedSpan;
    assert.equal(attribute(forwardSpan, 'http.response.status_code'), 200);
    assert.deepEqual(received(sent.upstream, 'traceparent'), [`00-${root.traceId}-${forwardSpan.spanId}-01`]);
    const [record] = await gw.auditFor(sent.requestId);
    assert.equal(record?.traceId, root.traceId, 'the audit record names the trace');
    const request0 = receiver.requests[0];
    assert.equal(request0?.contentType, 'application/json');
    assert.equal(request0?.serviceName, 'edge-gateway');
  });

  const denials: readonly (readonly [string, string, Record<string, string>, number, string, string, boolean])[] = [
    ['no credential', '/orders/1', {}, 401, 'unauthenticated', 'authenticate', true],
    ['a token that does not verify', '/orders/1', { authorization: 'Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln' }, 401, 'invalid_credential', 'authenticate', true],
    ['a token without the scope', '/orders/1', { authorization: 'scope-less' }, 403, 'insufficient_scope', 'authorize', true],
    ['no route', '/nowhere', {}, 404, 'route_not_found', 'route', false],
  ];
  for (const [what, path, headers, status, code, stage, routed] of denials) {
    it(`a denied request (${what}): ${status} ${code}, the deciding stage's span last and carrying the code, nothing forwarded`, async () => {
      const h = headers.authorization === 'scope-less' ? { authorization: `Bearer ${await mint(key, { scope: 'orders:write' })}` } : headers;
      const before = echo.received.length;
      const sent = await send(gw, path, h);
      assert.equal(sent.status, status);
      assert.equal(sent.code, code);
      assert.equal(echo.received.length, before, 'nothing forwarded');
      const { root, children } = await treeOf(receiver, sent.requestId);
      assert.equal(root.name, routed ? 'GET orders' : 'GET');
      assert.equal(attribute(root, 'http.route'), routed ? 'orders' : undefined);
      assert.equal(attribute(root, 'http.response.status_code'), status);
      assert.equal(attribute(root, 'portcullis.decision'), 'deny');
      assert.equal(attribute(root, 'portcullis.code'), code);
      assert.equal(attribute(root, 'portcullis.stage'), stage);
      assert.equal(root.status.code ?? 0, 0, 'a 4xx is the client\'s, not an error of the gateway');
      const last = children.at(-1) as ReceivedSpan;
      assert.equal(last.name, stage);
      assert.equal(attribute(last, 'portcullis.code'), code);
      assert.ok(!children.some((c) => c.name === 'forward'));
      assert.equal(children.filter((c) => attribute(c, 'portcullis.code') !== undefined).length, 1, 'only the deciding stage has a code');
      const [record] = await gw.auditFor(sent.requestId);
      assert.equal(record?.traceId, root.traceId);
    });
  }

  it('an upstream that cannot be reached: 502, the request and forward spans in ERROR with upstream_unreachable', async () => {
    const sent = await send(gw, '/down/x');
    assert.equal(sent.status, 502);
    assert.equal(sent.code, 'upstream_unreachable');
    const { root, children } = await treeOf(receiver, sent.requestId);
    assert.equal(root.status.code, 2);
    assert.equal(attribute(root, 'portcullis.decision'), 'error');
    assert.equal(attribute(root, 'portcullis.code'), 'upstream_unreachable');
    const forwardSpan = children.at(-1) as ReceivedSpan;
    assert.equal(forwardSpan.name, 'forward');
    assert.equal(forwardSpan.kind, CLIENT);
    assert.equal(forwardSpan.status.code, 2);
    assert.equal(attribute(forwardSpan, 'portcullis.code'), 'upstream_unreachable');
    assert.ok(children.slice(0, -1).every((c) => (c.status.code ?? 0) === 0), 'the stages before it did not fail');
  });

  it('exports no secret: not the bearer token, a cookie, the query, a header or the identity, in any byte', async () => {
    const token = await mint(key, { scope: 'orders:read', sub: 'subject-Zq8PersonalData' });
    const sent = await send(gw, '/orders/7?access_token=Qk9TZWNyZXRJblF1ZXJ5&q=QuerySecretXy7', {
      authorization: `Bearer ${token}`,
      cookie: 'session=CookieSecretKp3; other=CookieSecretZz1',
      'x-api-key': 'HeaderSecretWv5',
      'user-agent': 'AgentSecretMn2',
    });
    assert.equal(sent.status, 200);
    const denied = await send(gw, '/orders/8?token=DeniedQuerySecretJ4', { authorization: 'Bearer DeniedTokenSecretRr9', cookie: 'sid=DeniedCookieSecretHh6' });
    assert.equal(denied.status, 401);
    await treeOf(receiver, sent.requestId);
    await treeOf(receiver, denied.requestId);
    const exported = Buffer.concat(receiver.bodies).toString('utf8');
    const secrets = [token, token.split('.')[2] ?? token, 'Qk9TZWNyZXRJblF1ZXJ5', 'QuerySecretXy7', 'CookieSecretKp3', 'CookieSecretZz1', 'HeaderSecretWv5',
      'AgentSecretMn2', 'subject-Zq8PersonalData', 'DeniedQuerySecretJ4', 'DeniedTokenSecretRr9', 'DeniedCookieSecretHh6', 'access_token', '?'];
    for (const secret of secrets) assert.ok(!exported.includes(secret), `${secret.slice(0, 24)} is in an exported span`);
  });

  it('a traceparent from an untrusted client is ignored and not forwarded: the request starts its own trace', async () => {
    const sent = await send(gw, '/open/untrusted', { traceparent: VALID, tracestate: 'vendor=client-chosen' });
    assert.equal(sent.status, 200);
    const { root } = await treeOf(receiver, sent.requestId);
    assert.notEqual(root.traceId, TRACE);
    assert.equal(root.parentSpanId ?? '', '');
    assert.equal(root.traceState, undefined);
    const sentUp = received(sent.upstream, 'traceparent');
    assert.equal(sentUp.length, 1);
    assert.equal(parseTraceparent(sentUp)?.traceId, root.traceId);
    assert.deepEqual(received(sent.upstream, 'tracestate'), []);
  });
});

describe('tracing: trace context from a trusted proxy', () => {
  let echo: EchoUpstream;
  let receiver: OtlpReceiver;
  let gw: TestGateway;
  before(async () => {
    echo = await startEcho();
    receiver = await startOtlpReceiver();
    gw = await startGateway({
      trustedProxies: ['127.0.0.1/32'],
      upstreams: { app: { targets: [echo.url] } },
      routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'app', public: true }],
      tracing: tracing(receiver.url),
    });
  });
  after(async () => {
    await gw.close();
    await receiver.close();
    await echo.close();
  });

  it('continues the proxy\'s trace: its trace id, its span as the parent, the forward span as the upstream\'s parent, tracestate passed on', async () => {
    const sent = await send(gw, '/open/a', { traceparent: VALID, tracestate: 'congo=t61rcWkgMzE, rojo=00f067aa0ba902b7' });
    assert.equal(sent.status, 200);
    const { root, children } = await treeOf(receiver, sent.requestId);
    assert.equal(root.traceId, TRACE);
    assert.equal(root.parentSpanId, PARENT);
    assert.equal(root.traceState, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
    const forwardSpan = children.find((c) => c.name === 'forward') as ReceivedSpan;
    assert.deepEqual(received(sent.upstream, 'traceparent'), [`00-${TRACE}-${forwardSpan.spanId}-01`]);
    assert.deepEqual(received(sent.upstream, 'tracestate'), ['congo=t61rcWkgMzE,rojo=00f067aa0ba902b7']);
    const [record] = await gw.auditFor(sent.requestId);
    assert.equal(record?.traceId, TRACE);
  });

  it('a future version (above 00) is read as 00 is, on its first 55 characters', async () => {
    const sent = await send(gw, '/open/future', { traceparent: `cc-${TRACE}-${PARENT}-01-what-the-future-will-be-like` });
    const { root } = await treeOf(receiver, sent.requestId);
    assert.equal(root.traceId, TRACE);
    assert.equal(root.parentSpanId, PARENT);
    assert.match(received(sent.upstream, 'traceparent')[0] ?? '', new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
  });

  it('an unsampled parent (flags 00): no span exported, the upstream still gets the trace, unsampled', async () => {
    const unsampled = await send(gw, '/open/unsampled', { traceparent: `00-${TRACE}-${PARENT}-00` });
    assert.equal(unsampled.status, 200);
    const upstream = parseTraceparent(received(unsampled.upstream, 'traceparent'));
    assert.equal(upstream?.traceId, TRACE);
    assert.equal(upstream?.sampled, false);
    // The queue is exported in order: once a later request's spans arrived, the earlier ones would have.
    const later = await send(gw, '/open/later');
    await treeOf(receiver, later.requestId);
    assert.ok(!receiver.spans.some((s) => attribute(s, 'portcullis.request_id') === unsampled.requestId));
    const [record] = await gw.auditFor(unsampled.requestId);
    assert.equal(record?.traceId, TRACE, 'the audit record still names the trace');
  });

  const malformed: readonly (readonly [string, string | string[]])[] = [
    ['version ff', `ff-${TRACE}-${PARENT}-01`],
    ['version 00 with an extra field', `${VALID}-extra`],
    ['version 00 one character longer', `${VALID}0`],
    ['a future version with more characters not after a dash', `01-${TRACE}-${PARENT}-01x`],
    ['a trace id one digit short', `00-${TRACE.slice(1)}-${PARENT}-01`],
    ['a trace id one digit long', `00-${TRACE}a-${PARENT}-01`],
    ['a parent id one digit short', `00-${TRACE}-${PARENT.slice(1)}-01`],
    ['a one-digit flags field', `00-${TRACE}-${PARENT}-1`],
    ['upper-case hex in the trace id', `00-${TRACE.toUpperCase()}-${PARENT}-01`],
    ['upper-case hex in the version', `0A-${TRACE}-${PARENT}-01`],
    ['upper-case hex in the flags', `00-${TRACE}-${PARENT}-0F`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${PARENT}-01`],
    ['an all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['a non-hex character', `00-${TRACE.slice(0, 31)}g-${PARENT}-01`],
    ['underscores for dashes', `00_${TRACE}_${PARENT}_01`],
    ['spaces inside', `00- ${TRACE.slice(1)}-${PARENT}-01`],
    ['an empty value', ''],
    ['an oversized value', `00-${TRACE}-${PARENT}-01-${'a'.repeat(4000)}`],
    ['a repeated header, both valid', ['traceparent', VALID, 'traceparent', `00-${'1'.repeat(32)}-${PARENT}-01`]],
    ['a repeated header, the same value twice', ['traceparent', VALID, 'traceparent', VALID]],
  ];
  for (const [what, value] of malformed) {
    it(`a traceparent with ${what} is not believed: a new trace, the tracestate dropped`, async () => {
      const headers = Array.isArray(value) ? [...value, 'tracestate', 'congo=t61rcWkgMzE'] : { traceparent: value, tracestate: 'congo=t61rcWkgMzE' };
      const sent = await send(gw, '/open/malformed', headers);
      assert.equal(sent.status, 200);
      const { root } = await treeOf(receiver, sent.requestId);
      assert.notEqual(root.traceId, TRACE);
      assert.notEqual(root.traceId, '1'.repeat(32));
      assert.equal(root.parentSpanId ?? '', '');
      assert.equal(root.traceState, undefined);
      assert.equal(parseTraceparent(received(sent.upstream, 'traceparent'))?.traceId, root.traceId);
      assert.deepEqual(received(sent.upstream, 'tracestate'), []);
    });
  }

  const badStates: readonly (readonly [string, string])[] = [
    ['33 members', Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')],
    ['more than 512 characters', `a=${'x'.repeat(255)},b=${'y'.repeat(255)}`],
    ['a key twice', 'congo=a,congo=b'],
    ['an upper-case key', 'Congo=a'],
    ['a member without =', 'congo'],
    ['a value with =', 'congo=a=b'],
    ['a key of 257 characters', `${'k'.repeat(257)}=v`],
  ];
  for (const [what, state] of badStates) {
    it(`a tracestate with ${what} is dropped whole; the traceparent still continues the trace`, async () => {
      const sent = await send(gw, '/open/state', { traceparent: VALID, tracestate: state });
      const { root } = await treeOf(receiver, sent.requestId);
      assert.equal(root.traceId, TRACE);
      assert.equal(root.traceState, undefined);
      assert.deepEqual(received(sent.upstream, 'tracestate'), []);
    });
  }
});

describe('tracing off (the default)', () => {
  let echo: EchoUpstream;
  let direct: TestGateway;
  let behindProxy: TestGateway;
  const config = (more: ConfigObject): ConfigObject => ({
    upstreams: { app: { targets: [echo.url] } },
    routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'app', public: true }],
    ...more,
  });
  before(async () => {
    echo = await startEcho();
    direct = await startGateway(config({}));
    behindProxy = await startGateway(config({ trustedProxies: ['127.0.0.1/32'] }));
  });
  after(async () => {
    await direct.close();
    await behindProxy.close();
    await echo.close();
  });

  it('adds no traceparent, drops a client\'s traceparent and tracestate, and records no traceId', async () => {
    const plain = await send(direct, '/open/a');
    assert.deepEqual(received(plain.upstream, 'traceparent'), []);
    const spoofed = await send(direct, '/open/b', { traceparent: VALID, TraceState: 'congo=x', 'TRACEPARENT': VALID });
    assert.deepEqual(received(spoofed.upstream, 'traceparent'), []);
    assert.deepEqual(received(spoofed.upstream, 'tracestate'), []);
    const [record] = await direct.auditFor(spoofed.requestId);
    assert.equal(record?.traceId, undefined);
  });

  it('passes a trusted proxy\'s trace context through as received', async () => {
    const sent = await send(behindProxy, '/open/c', ['traceparent', VALID, 'tracestate', 'congo=t61rcWkgMzE', 'tracestate', 'rojo=00f067aa0ba902b7']);
    assert.deepEqual(received(sent.upstream, 'traceparent'), [VALID]);
    assert.deepEqual(received(sent.upstream, 'tracestate'), ['congo=t61rcWkgMzE', 'rojo=00f067aa0ba902b7']);
  });
});

describe('tracing: an exporter that is down or slow never touches requests', () => {
  let echo: EchoUpstream;
  before(async () => { echo = await startEcho(); });
  after(async () => { await echo.close(); });
  const routes = (): ConfigObject => ({ upstreams: { app: { targets: [echo.url] } }, routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'app', public: true }] });

  it('a collector that is down: requests answered, each failed export counted, its spans dropped and counted, one warning', async () => {
    const port = await freePort();
    const gw = await startGateway({ ...routes(), tracing: tracing(`http://127.0.0.1:${port}/v1/traces`, { maxBatchSpans: 1 }) });
    try {
      for (let i = 0; i < 5; i++) assert.equal((await send(gw, `/open/${i}`)).status, 200);
      assert.ok(await countSettled(gw, 'traceExports', 'failed') >= 2);
      assert.ok(await counted(gw, 'traceSpans', 'dropped_export_failed') >= 2);
      assert.equal(await counted(gw, 'traceSpans', 'exported'), 0);
      assert.equal(gw.logs.filter((l) => l.includes('trace export failed')).length, 1, 'failures are logged at most once a minute');
    } finally {
      await gw.close();
    }
  });

  it('a slow collector: one export in flight, the queue bounded (a request\'s spans dropped whole, counted), requests answered meanwhile, the rest flushed once it answers', async () => {
    const receiver = await startOtlpReceiver();
    receiver.hold();
    const gw = await startGateway({ ...routes(), tracing: tracing(receiver.url, { maxQueueSpans: 40, maxBatchSpans: 20, intervalMs: 3_600_000 }) });
    try {
      const perRequest = gw.gateway.runtime.path.edge.length + (gw.gateway.runtime.config.routes[0]?.stages.length ?? 0) + 1;
      assert.ok(perRequest > 10 && perRequest <= 20, `${perRequest} spans per request`);
      for (let i = 0; i < 2; i++) assert.equal((await send(gw, `/open/${i}`)).status, 200);
      await receiver.requestsArrived(1);
      for (let i = 2; i < 12; i++) assert.equal((await send(gw, `/open/${i}`)).status, 200, 'answered while the collector holds the export');
      assert.equal(receiver.requests.length, 1, 'one export request in flight at a time');
      const tracer = gw.gateway.runtime.config.tracer;
      assert.ok(tracer !== null && tracer.queued <= 40, 'the queue is bounded');
      const dropped = await counted(gw, 'traceSpans', 'dropped_queue_full');
      assert.ok(dropped > 0 && dropped % perRequest === 0, `${dropped} dropped, whole requests only`);
      receiver.release();
      await receiver.requestsArrived(2);
      assert.ok(await countSettled(gw, 'traceSpans', 'exported') >= 40);
    } finally {
      receiver.release();
      await gw.close();
      await receiver.close();
    }
  });

  it('an export that takes longer than timeoutMs is abandoned and counted; a shutdown waits no longer than the drain timeout', async () => {
    const receiver = await startOtlpReceiver();
    receiver.hold();
    const gw = await startGateway({ ...routes(), shutdown: { drainTimeoutMs: 300 }, tracing: tracing(receiver.url, { maxBatchSpans: 1, timeoutMs: 200, intervalMs: 3_600_000 }) });
    try {
      assert.equal((await send(gw, '/open/slow')).status, 200);
      await receiver.requestsArrived(1);
      // The next export starts only once the one in flight is over: its arrival means the first timed out.
      await receiver.requestsArrived(2);
      assert.ok(await counted(gw, 'traceExports', 'timeout') >= 1);
      assert.ok(await counted(gw, 'traceSpans', 'dropped_export_failed') >= 1);
      assert.equal(await counted(gw, 'traceSpans', 'exported'), 0);
      assert.equal((await send(gw, '/open/slow2')).status, 200, 'answered while exports time out');
      const started = performance.now();
      await gw.gateway.stop();
      assert.ok(performance.now() - started < 5000, 'stop is bounded');
      assert.ok(await counted(gw, 'traceSpans', 'dropped_shutdown') + await counted(gw, 'traceSpans', 'dropped_export_failed') > 0);
    } finally {
      receiver.release();
      await gw.close();
      await receiver.close();
    }
  });
});

describe('tracing follows the config on reload', () => {
  it('a changed service name is exported by a new tracer; tracing removed: no traceparent added, no traceId; the trail verifies', async () => {
    const echo = await startEcho();
    const receiver = await startOtlpReceiver();
    const base: ConfigObject = { upstreams: { app: { targets: [echo.url] } }, routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'app', public: true }] };
    const gw = await startGateway({ ...base, tracing: tracing(receiver.url, {}, { serviceName: 'before' }) });
    try {
      const first = await send(gw, '/open/1');
      await treeOf(receiver, first.requestId);
      assert.equal(receiver.requests.at(-1)?.serviceName, 'before');
      await gw.writeConfig({ ...base, tracing: tracing(receiver.url, {}, { serviceName: 'after' }) });
      assert.equal((await gw.gateway.reload()).ok, true);
      const second = await send(gw, '/open/2');
      await treeOf(receiver, second.requestId);
      assert.equal(receiver.requests.at(-1)?.serviceName, 'after');
      await gw.writeConfig(base);
      assert.equal((await gw.gateway.reload()).ok, true);
      const third = await send(gw, '/open/3');
      assert.deepEqual(received(third.upstream, 'traceparent'), []);
      const [record] = await gw.auditFor(third.requestId);
      assert.equal(record?.traceId, undefined);
      // Records with and without traceId chain and verify alike.
      const trail = dirname(join(gw.gateway.config.dataDir, gw.gateway.config.audit.file));
      await gw.gateway.stop();
      const { code, report } = await verifyJson([trail]);
      assert.equal(code, 0, JSON.stringify(report.chains.flatMap((c) => c.problems)));
    } finally {
      await gw.close();
      await receiver.close();
      await echo.close();
    }
  });
});

describe('trace ids in the gateway\'s logs', () => {
  it('a request the brute-force guard blocks a source on is logged with its trace id, the one of its audit record and spans', async () => {
    const echo = await startEcho();
    const receiver = await startOtlpReceiver();
    const key = await testKey('ES256', 'k-logs');
    const gw = await startGateway({
      upstreams: { app: { targets: [echo.url] } },
      authenticators: { users: { type: 'jwt', issuer: 'https://issuer.test/', audience: 'orders-api', algorithms: ['ES256'], publicKeys: [{ pem: key.pem, kid: key.kid }] } },
      rateLimiting: { bruteForce: { maxFailures: 1, within: '1m', blockFor: '1m', by: ['ip'] } },
      routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'app', authenticate: ['users'] }],
      tracing: tracing(receiver.url),
    });
    try {
      const sent = await send(gw, '/orders/1', { authorization: 'Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln' });
      assert.equal(sent.status, 401);
      const line = gw.logs.map((l) => JSON.parse(l) as { msg?: string; requestId?: string; traceId?: string }).find((l) => l.msg === 'brute-force guard: source blocked');
      assert.equal(line?.requestId, sent.requestId);
      const { root } = await treeOf(receiver, sent.requestId);
      assert.equal(line?.traceId, root.traceId);
      const [record] = await gw.auditFor(sent.requestId);
      assert.equal(record?.traceId, root.traceId);
    } finally {
      await gw.close();
      await receiver.close();
      await echo.close();
    }
  });
});

describe('tracing under start --workers', () => {
  /** One GET on a fresh connection, so the primary spreads requests over the workers. */
  function fresh(url: string): Promise<number> {
    return new Promise((resolve) => {
      const req = httpRequest(url, { agent: false, headers: { connection: 'close' } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); });
      req.on('error', () => resolve(0));
      req.end();
    });
  }

  it('each worker exports its own spans (its own process.pid), and a graceful stop sends what each has queued', async (t) => {
    const echo = await startEcho();
    const receiver = await startOtlpReceiver();
    t.after(async () => { await receiver.close(); await echo.close(); });
    const proc = await startGatewayProcess({
      upstreams: { app: { targets: [echo.url] } },
      routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'app', public: true }],
      // An hour: nothing is exported before the stop, which must flush every worker's queue.
      tracing: { exporter: { endpoint: receiver.url, intervalMs: 3_600_000 } },
    }, { args: ['--workers', '2'] });
    t.after(() => proc.stop('SIGKILL').then(() => undefined));
    for (let i = 0; i < 20; i++) assert.equal(await fresh(`${proc.url}/open/${i}`), 200);
    assert.equal(receiver.requests.length, 0, 'nothing exported before the interval or the stop');
    assert.equal(await proc.stop('SIGTERM'), 0);
    const roots = receiver.spans.filter((s) => s.kind === SERVER);
    assert.equal(roots.length, 20, 'every request\'s span was flushed at shutdown');
    const pids = new Set(receiver.requests.map((r) => r.pid));
    assert.equal(pids.size, 2, 'two workers, each exporting its own');
    assert.ok(![...pids].includes(proc.child.pid), 'the primary handles no request and exports nothing');
  });
});

describe('the tracing example (examples/tracing), run as documented', () => {
  it('continues the balancer\'s trace, exports it under the configured service name, and names the forward span upstream', async () => {
    const echo = await startEcho();
    const receiver = await startOtlpReceiver();
    const text = await readFile(fileURLToPath(new URL('../../examples/tracing/gateway.yaml', import.meta.url)), 'utf8');
    const env = { PORT: '0', ADMIN_PORT: '0', BACKEND_URL: echo.url, OTEL_SERVICE_NAME: 'edge-gateway', TRACE_SAMPLE_RATIO: '1', OTLP_TRACES_ENDPOINT: receiver.url };
    const gw = await startGateway(parse(text) as ConfigObject, { env });
    try {
      const sent = await send(gw, '/api/orders/1', { traceparent: VALID });
      assert.equal(sent.status, 200);
      const { root, children } = await treeOf(receiver, sent.requestId);
      assert.equal(root.name, 'GET orders');
      assert.equal(root.traceId, TRACE);
      assert.equal(root.parentSpanId, PARENT);
      assert.equal(receiver.requests.at(-1)?.serviceName, 'edge-gateway');
      const forwardSpan = children.find((c) => c.name === 'forward') as ReceivedSpan;
      assert.deepEqual(received(sent.upstream, 'traceparent'), [`00-${TRACE}-${forwardSpan.spanId}-01`]);
      const [record] = await gw.auditFor(sent.requestId);
      assert.equal(record?.traceId, TRACE);
    } finally {
      await gw.close();
      await receiver.close();
      await echo.close();
    }
  });
});

describe('the OTLP exporter on an injected clock', () => {
  function span(i: number): SpanData {
    return { traceId: TRACE, spanId: (i + 1).toString(16).padStart(16, '0'), parentSpanId: null, name: `s${i}`, kind: SPAN_KIND.internal, startMs: performance.now(), endMs: performance.now() + 1, attributes: ['portcullis.stage', `s${i}`, 'n', i], error: false, traceState: null };
  }

  it('sends a batch that is not full once intervalMs passes, not before; a full batch at once', async () => {
    const receiver = await startOtlpReceiver();
    const clock = new ManualClock();
    const metrics = new Metrics(false);
    const exporter = new OtlpExporter(
      { endpoint: receiver.url, shownEndpoint: receiver.url, headers: { 'x-collector-key': 'k' }, timeoutMs: 5000, maxQueueSpans: 10, maxBatchSpans: 4, intervalMs: 1000, flushTimeoutMs: 1000 },
      { logger: createLogger('warn', new PassThrough()), clock, metrics, serviceName: 'unit' },
    );
    exporter.start();
    try {
      exporter.offer([span(0), span(1)]);
      clock.advance(999);
      assert.equal(receiver.requests.length, 0);
      assert.equal(exporter.queued, 2);
      clock.advance(1);
      await receiver.requestsArrived(1);
      assert.deepEqual(receiver.spans.map((s) => s.name), ['s0', 's1']);
      assert.equal(receiver.requests[0]?.headers['x-collector-key'], 'k');
      const s0 = receiver.spans[0] as ReceivedSpan;
      assert.equal(s0.kind, INTERNAL);
      assert.deepEqual(s0.attributes, [{ key: 'portcullis.stage', value: { stringValue: 's0' } }, { key: 'n', value: { intValue: '0' } }]);
      assert.match(s0.startTimeUnixNano, /^\d{19}$/);
      assert.ok(Math.abs(Number(BigInt(s0.startTimeUnixNano) / 1_000_000n) - Date.now()) < 60_000, 'unix nanoseconds');
      exporter.offer([span(2), span(3), span(4), span(5)]);
      await receiver.requestsArrived(2);
      assert.equal(receiver.spans.length, 6);
      exporter.offer(Array.from({ length: 11 }, (_, i) => span(10 + i)));
      assert.equal(exporter.queued, 0, 'more spans than the queue holds are dropped whole');
      const dropped = (await metrics.traceSpans.get()).values.find((v) => v.labels.outcome === 'dropped_queue_full')?.value;
      assert.equal(dropped, 11);
    } finally {
      await exporter.stop();
      await receiver.close();
    }
  });
});

describe('W3C trace context parsing', () => {
  it('reads the flags\' sampled bit only', () => {
    assert.deepEqual(parseTraceparent([`00-${TRACE}-${PARENT}-03`]), { traceId: TRACE, parentId: PARENT, sampled: true });
    assert.deepEqual(parseTraceparent([`00-${TRACE}-${PARENT}-02`]), { traceId: TRACE, parentId: PARENT, sampled: false });
    assert.equal(parseTraceparent(null), null);
    assert.equal(parseTraceparent([]), null);
  });

  it('keeps a valid tracestate as one list, empty members left out, at most 32 members', () => {
    assert.equal(parseTracestate(['a=1', ' , b@vendor=2 ']), 'a=1,b@vendor=2');
    assert.equal(parseTracestate([Array.from({ length: 32 }, (_, i) => `k${i}=v`).join(',')])?.split(',').length, 32);
    assert.equal(parseTracestate(['a=1 ']), 'a=1');
    assert.equal(parseTracestate(['a= ']), null, 'a value may not end in a space');
    assert.equal(parseTracestate([',']), null);
    assert.equal(parseTracestate(['congo=a\x01b']), null, 'a control character');
    assert.equal(parseTracestate(['congo=a\x7fb']), null, 'DEL');
    assert.equal(parseTracestate(['a=1', 'a=2']), null, 'a key twice across fields');
  });
});

describe('tracing config', () => {
  const yaml = (exporter: string, extra = ''): string => `
upstreams: { app: { targets: ["http://127.0.0.1:1"] } }
routes: [{ name: r, match: { path: /x }, upstream: app, public: true }]
tracing:
  ${extra}exporter: ${exporter}
`;
  const cases: readonly (readonly [string, string, RegExp])[] = [
    ['credentials in the endpoint', '{ endpoint: "https://u:p@collector.example/v1/traces" }', /tracing\.exporter\.endpoint.*user name or password/],
    ['a query in the endpoint', '{ endpoint: "https://collector.example/v1/traces?key=s" }', /tracing\.exporter\.endpoint.*query/],
    ['another scheme', '{ endpoint: "ftp://collector.example/v1/traces" }', /tracing\.exporter\.endpoint.*http:\/\/ or https:\/\//],
    ['not a URL', '{ endpoint: "collector:4318" }', /tracing\.exporter\.endpoint/],
    ['headers over plain http to another host', '{ endpoint: "http://collector.example:4318/v1/traces", headers: { x-api-key: k } }', /tracing\.exporter\.endpoint.*https/],
    ['a header the exporter sets', '{ endpoint: "https://collector.example/v1/traces", headers: { Content-Type: text/plain } }', /tracing\.exporter\.headers\.Content-Type.*set by the exporter/],
    ['a batch larger than the queue', '{ endpoint: "http://collector:4318/v1/traces", maxQueueSpans: 10, maxBatchSpans: 20 }', /tracing\.exporter\.maxBatchSpans.*at most exporter\.maxQueueSpans \(10\)/],
    ['a sample ratio above 1', '{ endpoint: "http://collector:4318/v1/traces" }', /tracing\.sampleRatio/],
    ['an unknown option', '{ endpoint: "http://collector:4318/v1/traces", batchSize: 3 }', /tracing\.exporter.*batchSize/],
  ];
  for (const [what, exporter, message] of cases) {
    it(`refuses ${what}, naming the file, line and option`, () => {
      const problems = configProblems(yaml(exporter, what === 'a sample ratio above 1' ? 'sampleRatio: 1.5\n  ' : ''));
      assert.ok(problems.some((p) => /gateway\.yaml:\d+/.test(p) && message.test(p)), problems.join('\n'));
      assert.ok(!problems.some((p) => p.includes('u:p@') || p.includes('key=s')), 'a credential is never quoted');
    });
  }

  it('accepts plain http without headers (an in-cluster collector), http with headers on loopback, and an ${ENV} header value', () => {
    assert.deepEqual(configProblems(yaml('{ endpoint: "http://collector:4318/v1/traces" }')), []);
    assert.deepEqual(configProblems(yaml('{ endpoint: "http://127.0.0.1:4318/v1/traces", headers: { x-api-key: k } }')), []);
    assert.deepEqual(configProblems(yaml('{ endpoint: "https://api.collector.example/v1/traces", headers: { x-api-key: "${COLLECTOR_KEY}" } }'), { COLLECTOR_KEY: 'secret' }), []);
  });
});
