// Trace context in every format, not only W3C's: B3, Jaeger, Datadog, X-Ray, Cloud Trace, SkyWalking,
// OpenTracing and baggage headers are what the backends' tracers read when they are not configured
// for traceparent (Envoy and Istio sidecars, Spring, Datadog agents…). A client's must never reach
// them, in any case or `_` spelling, tracing on or off; a trusted proxy's pass as sent.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startEchoUpstream, type EchoUpstream, type EchoedRequest } from './harness/echo.js';
import { startGateway, type ConfigObject, type TestGateway } from './harness/gateway.js';
import { attribute, startOtlpReceiver, type OtlpReceiver } from './harness/otlp-receiver.js';
import { TRACE_CONTEXT_EXACT, TRACE_CONTEXT_PREFIXES } from '../src/http/header-families.js';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { explain, type Explanation } from '../src/explain/explain.js';

/** One header name per entry of the catalogue: each exact name, and a member of each family. */
const NAMES: readonly string[] = [
  ...TRACE_CONTEXT_EXACT.keys(),
  ...TRACE_CONTEXT_PREFIXES.map(([prefix]) => `${prefix}traceid`),
  // Members of the families as their libraries spell them.
  'X-B3-TraceId', 'X-B3-SpanId', 'X-B3-ParentSpanId', 'X-B3-Sampled', 'X-B3-Flags', 'uberctx-tenant', 'ot-baggage-user',
  'x-datadog-trace-id', 'x-datadog-parent-id', 'x-datadog-sampling-priority',
];

/** The spellings a client can send a name in: as listed, upper case, and with `_` for `-` (CGI-style servers fold it back). */
function spellings(name: string): string[] {
  const out = new Set([name, name.toUpperCase()]);
  if (name.includes('-')) out.add(name.replace(/-/g, '_'));
  return [...out];
}

function normalised(name: string): string {
  return name.toLowerCase().replace(/_/g, '-');
}

/** The trace context headers the upstream received, normalised names. */
function traceHeadersReceived(upstream: EchoedRequest | undefined): string[] {
  const raw = upstream?.rawHeaders ?? [];
  const wanted = new Set(NAMES.map(normalised));
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (wanted.has(normalised(raw[i] as string))) out.push(`${raw[i] as string}: ${raw[i + 1] as string}`);
  return out;
}

describe('trace context in other formats than W3C: never taken from a client', () => {
  let echo: EchoUpstream;
  let receiver: OtlpReceiver;
  let tracingOn: TestGateway;
  let tracingOff: TestGateway;
  let behindProxy: TestGateway;
  let counter = 0;
  const config = (more: ConfigObject): ConfigObject => ({
    // With `_` names forwarded, a `X_B3_TraceId` twin is the dash name to the upstream.
    headers: { allowUnderscores: true },
    upstreams: { app: { targets: [echo.url] } },
    routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'app', public: true }],
    ...more,
  });
  before(async () => {
    echo = await startEchoUpstream();
    receiver = await startOtlpReceiver();
    tracingOn = await startGateway(config({ tracing: { exporter: { endpoint: receiver.url, intervalMs: 10 } } }));
    tracingOff = await startGateway(config({}));
    behindProxy = await startGateway(config({ trustedProxies: ['127.0.0.1/32'] }));
  });
  after(async () => {
    await tracingOn.close();
    await tracingOff.close();
    await behindProxy.close();
    await receiver.close();
    await echo.close();
  });

  async function send(gw: TestGateway, headers: string[]): Promise<EchoedRequest | undefined> {
    const path = `/open/trace-context/${++counter}`;
    const res = await request(`${gw.url}${path}`, { headers: [...headers, 'x-kept', 'yes'] });
    await res.body.text();
    assert.equal(res.statusCode, 200);
    const upstream = echo.received.find((r) => r.url === path);
    // The control header arrives: the request was forwarded with the client's other headers.
    assert.equal(upstream?.headers['x-kept'], 'yes');
    return upstream;
  }

  for (const [what, gw] of [['tracing on', () => tracingOn], ['tracing off', () => tracingOff]] as const) {
    it(`removes every one from a client that is not a trusted proxy, in any case or _ spelling (${what})`, async () => {
      const headers = NAMES.flatMap((name) => spellings(name).flatMap((spelling) => [spelling, `client-chosen-${normalised(spelling)}`]));
      assert.deepEqual(traceHeadersReceived(await send(gw(), headers)), []);
    });

    it(`removes each one on its own, every spelling (${what})`, async () => {
      for (const name of NAMES) {
        for (const spelling of spellings(name)) {
          assert.deepEqual(traceHeadersReceived(await send(gw(), [spelling, '80f198ee56343ba864fe8b2a57d3eff7'])), [], spelling);
        }
      }
    });
  }

  it('passes a trusted proxy\'s as it sent them', async () => {
    const headers = NAMES.flatMap((name) => [name, `proxy-${normalised(name)}`]);
    const got = traceHeadersReceived(await send(behindProxy, headers));
    assert.deepEqual(got, NAMES.map((name) => `${name}: proxy-${normalised(name)}`));
  });
});

describe('tracing.urlPath: a secret in a path segment', () => {
  let echo: EchoUpstream;
  let receiver: OtlpReceiver;
  const secret = 'ResetTokenQv8Zr41xLm';
  before(async () => {
    echo = await startEchoUpstream();
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await receiver.close();
    await echo.close();
  });

  async function spansOf(urlPath: boolean | undefined): Promise<{ requestId: string; body: string; path: string | undefined; route: string | undefined }> {
    const gw = await startGateway({
      upstreams: { app: { targets: [echo.url] } },
      routes: [{ name: 'reset', match: { path: '/reset/*' }, upstream: 'app', public: true }],
      tracing: { ...(urlPath === undefined ? {} : { urlPath }), exporter: { endpoint: receiver.url, intervalMs: 10 } },
    });
    try {
      const mark = receiver.bodies.length;
      const res = await request(`${gw.url}/reset/${secret}`);
      await res.body.text();
      assert.equal(res.statusCode, 200);
      const requestId = String(res.headers['x-request-id']);
      const spans = await receiver.waitFor((all) => all.some((s) => attribute(s, 'portcullis.request_id') === requestId));
      const root = spans.find((s) => attribute(s, 'portcullis.request_id') === requestId);
      const mine = spans.filter((s) => s.traceId === root?.traceId);
      const path = root === undefined ? undefined : attribute(root, 'url.path');
      const route = root === undefined ? undefined : attribute(root, 'http.route');
      assert.ok(mine.length > 1, 'the request span and its stage spans');
      const body = receiver.bodies.slice(mark).map((b) => b.toString('utf8')).join('\n');
      return { requestId, body, path: path === undefined ? undefined : String(path), route: route === undefined ? undefined : String(route) };
    } finally {
      await gw.close();
    }
  }

  it('exports the canonical path by default', async () => {
    const got = await spansOf(undefined);
    assert.equal(got.path, `/reset/${secret}`);
  });

  it('urlPath: false exports no byte of a path segment, and still names the route', async () => {
    const got = await spansOf(false);
    assert.equal(got.path, undefined);
    assert.equal(got.route, 'reset');
    assert.ok(got.body.includes(got.requestId), 'the export requests of the request were read');
    assert.ok(!got.body.includes(secret), 'the path segment is in an exported byte');
  });
});

describe('explain shows the trace context the gateway sends', () => {
  const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
  const VALID = `00-${TRACE}-00f067aa0ba902b7-01`;
  const text = (tracing: boolean): string => [
    'trustedProxies: [192.0.2.0/24]',
    'upstreams: { app: { targets: ["http://127.0.0.1:9"] } }',
    'routes: [{ name: open, match: { path: /x }, upstream: app, public: true }]',
    ...(tracing ? ['tracing: { exporter: { endpoint: "http://127.0.0.1:4318/v1/traces" } }'] : []),
    '',
  ].join('\n');
  const header = (e: Explanation, name: string): string[] => (e.upstream?.headers ?? []).filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
  const run = (tracing: boolean, from: string, headers: [string, string][]): Promise<Explanation> =>
    explain(compileConfig(loadConfigText(text(tracing), 'gateway.yaml', {})), { method: 'GET', target: '/x', headers, from });

  it('tracing on, a trusted proxy\'s trace: its trace id, the gateway\'s own span as the parent, as the gateway sends it', async () => {
    const e = await run(true, '192.0.2.10', [['traceparent', VALID], ['tracestate', 'congo=t61rcWkgMzE']]);
    const [sent] = header(e, 'traceparent');
    assert.equal(header(e, 'traceparent').length, 1);
    assert.match(sent ?? '', new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    assert.notEqual(sent, VALID);
    assert.deepEqual(header(e, 'tracestate'), ['congo=t61rcWkgMzE']);
  });

  it('tracing on, a client\'s trace context: dropped, and a new trace sent', async () => {
    const e = await run(true, '203.0.113.5', [['traceparent', VALID], ['b3', `${TRACE}-00f067aa0ba902b7-1`]]);
    const [sent] = header(e, 'traceparent');
    assert.match(sent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    assert.ok(!(sent ?? '').includes(TRACE));
    assert.deepEqual(header(e, 'b3'), []);
  });

  it('tracing off: a trusted proxy\'s passes as received, a client\'s is not sent', async () => {
    assert.deepEqual(header(await run(false, '192.0.2.10', [['traceparent', VALID]]), 'traceparent'), [VALID]);
    assert.deepEqual(header(await run(false, '203.0.113.5', [['traceparent', VALID]]), 'traceparent'), []);
  });
});
