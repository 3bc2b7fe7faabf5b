// Identity and forwarding headers a client must not be able to forge (DESIGN.md invariant 3), hop-by-hop
// hygiene, client IP resolution through trusted proxies, and request-id handling.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import type { AuditRecord } from '../src/audit/audit-log.js';
import { auditRecordsFor } from './harness/assertions.js';
import { startEchoUpstream, type EchoedRequest, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { rawRequest, requestHead, type RawResponse } from './harness/raw-client.js';

/**
 * Sends one request on a raw socket (so any header spelling, duplicate or hop-by-hop field can be
 * sent), optionally from a chosen loopback source address; the reply ends at its declared length
 * or the close (`Connection: close` is added unless the test sends its own Connection).
 */
function send(port: number, path: string, headerLines: readonly string[], options: { localAddress?: string } = {}): Promise<RawResponse> {
  const hasConnection = headerLines.some((l) => /^connection:/i.test(l));
  const head = requestHead('GET', path, [...headerLines, ...(hasConnection ? [] : ['Connection: close'])]);
  return rawRequest(port, head, { timeoutMs: 3000, settleMs: 0, ...options });
}

/** Header names folded the way upstream frameworks may read them: lower case, `_` as `-`. */
function fold(name: string): string {
  return name.toLowerCase().replace(/_/g, '-');
}

/** Every (folded name, value) pair the upstream received. */
function pairs(seen: EchoedRequest): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < seen.rawHeaders.length; i += 2) out.push([fold(seen.rawHeaders[i] ?? ''), seen.rawHeaders[i + 1] ?? '']);
  return out;
}

function valuesOf(seen: EchoedRequest, name: string): string[] {
  return pairs(seen).filter(([n]) => n === fold(name)).map(([, v]) => v);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Another loopback address: the gateway sees it as a peer that is not a trusted proxy. */
const UNTRUSTED = '127.0.0.2';

let echo: EchoUpstream;
/** Trusts 127.0.0.1 and 10.0.0.0/8 as proxies; protects one extra configured header. */
let gw: TestGateway;
/** No trusted proxies at all. */
let plain: TestGateway;
let counter = 0;

before(async () => {
  echo = await startEchoUpstream();
  const base = {
    upstreams: { echo: { targets: [echo.url] } },
    routes: [{ name: 'all', match: { path: '/**' }, upstream: 'echo', public: true }],
    headers: { protected: ['X-Internal-Tenant'] },
  };
  gw = await startGateway({ ...base, trustedProxies: ['127.0.0.1/32', '10.0.0.0/8'] });
  plain = await startGateway(base);
});

after(async () => {
  await gw.close();
  await plain.close();
  await echo.close();
});

/** Sends a request, returns the reply, what the upstream received and the request's audit record. */
async function roundTrip(target: TestGateway, headerLines: readonly string[], options: { localAddress?: string } = {}): Promise<{ reply: RawResponse; seen: EchoedRequest; record: AuditRecord }> {
  const path = `/probe/${++counter}`;
  const reply = await send(target.port, path, headerLines, options);
  assert.equal(reply.status, 200, `status (body ${reply.body})`);
  const seen = echo.received.find((r) => r.url === path);
  assert.ok(seen !== undefined, 'the upstream did not receive the request');
  const requestId = reply.headers['x-request-id'] ?? '';
  const record = (await auditRecordsFor(target, path))[0];
  assert.ok(record !== undefined, 'no audit record');
  assert.equal(record.requestId, requestId, 'the response X-Request-Id equals the audit requestId');
  return { reply, seen, record };
}

/** The one X-Request-Id the upstream got is the gateway's, and matches the response and audit. */
function assertOwnRequestId(seen: EchoedRequest, reply: RawResponse, record: AuditRecord): void {
  assert.deepEqual(valuesOf(seen, 'x-request-id'), [record.requestId], 'upstream X-Request-Id (any spelling) is exactly the gateway\'s');
  assert.equal(reply.headers['x-request-id'], record.requestId);
}

const IDENTITY = ['x-user-id', 'x-tenant-id', 'x-roles', 'x-scopes', 'x-auth-method', 'x-client-cert-subject', 'x-client-cert-anything', 'x-internal-tenant'];

/** Every identity header in several spellings, duplicated, with values marked "spoof". */
function spoofedIdentityHeaders(): string[] {
  const lines: string[] = [];
  const spellings = (name: string): string[] => [
    name.split('-').map((p) => p.charAt(0).toUpperCase() + p.slice(1)).join('-'), // X-User-Id
    name.toUpperCase(), // X-USER-ID
    name.replace(/-/g, '_'), // x_user_id
    name.toUpperCase().replace(/-/g, '_'), // X_USER_ID
    name.replace(/-/, '_'), // x_user-id (mixed)
    name, // lower, again: a duplicate
  ];
  for (const name of IDENTITY) for (const [i, spelled] of spellings(name).entries()) lines.push(`${spelled}: spoof-${name}-${i}`);
  lines.push('X-Request-Id: spoof-request-id', 'x_request_id: spoof-request-id-2', 'X-REQUEST-ID: spoof-request-id-3');
  lines.push('X-Portcullis-Identity: spoof-portcullis', 'x_client_cert_fingerprint: spoof-fp');
  return lines;
}

void describe('no spoofed identity', () => {
  void test('identity headers in any case, with `_` for `-`, and duplicated never reach the upstream (untrusted peer)', async () => {
    const { reply, seen, record } = await roundTrip(gw, spoofedIdentityHeaders(), { localAddress: UNTRUSTED });
    for (const name of [...IDENTITY, 'x-portcullis-identity', 'x-client-cert-fingerprint']) {
      assert.deepEqual(valuesOf(seen, name), [], `${name} reached the upstream`);
    }
    assert.ok(!pairs(seen).some(([, v]) => v.includes('spoof')), `a spoofed value reached the upstream: ${JSON.stringify(seen.rawHeaders)}`);
    assertOwnRequestId(seen, reply, record);
    assert.match(record.requestId, UUID);
  });

  void test('a trusted proxy cannot assert identity headers either', async () => {
    const { reply, seen, record } = await roundTrip(gw, spoofedIdentityHeaders().filter((l) => !/^x.request.id:/i.test(l)));
    for (const name of IDENTITY) assert.deepEqual(valuesOf(seen, name), [], `${name} reached the upstream`);
    assert.ok(!pairs(seen).some(([, v]) => v.includes('spoof')), `a spoofed value reached the upstream: ${JSON.stringify(seen.rawHeaders)}`);
    assertOwnRequestId(seen, reply, record);
  });

  void test('`Connection: X-Request-Id, X-Forwarded-For` cannot strip the injected X-Request-Id / X-Forwarded-For', async () => {
    const { reply, seen, record } = await roundTrip(plain, [
      'Connection: close, X-Request-Id, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host',
      'X-Request-Id: spoof-request-id',
    ]);
    assertOwnRequestId(seen, reply, record);
    assert.deepEqual(valuesOf(seen, 'x-forwarded-for'), ['127.0.0.1']);
    assert.deepEqual(valuesOf(seen, 'x-forwarded-proto'), ['http']);
    assert.deepEqual(valuesOf(seen, 'x-forwarded-host'), ['gw.test']);
  });

  void test('hop-by-hop headers and those named in Connection are not forwarded; end-to-end ones are', async () => {
    const { seen } = await roundTrip(plain, [
      'Connection: close, X-Hop-One, x-hop-two',
      'Keep-Alive: timeout=77, max=3',
      'TE: trailers, deflate',
      'Trailer: X-Checksum',
      'Proxy-Authorization: Basic c3Bvb2Y6c3Bvb2Y=',
      'Proxy-Connection: keep-alive',
      'X-Hop-One: drop-me',
      'X-Hop-Two: drop-me-too',
      'X-End-To-End: keep-me',
    ]);
    for (const name of ['te', 'trailer', 'proxy-authorization', 'proxy-connection', 'x-hop-one', 'x-hop-two']) {
      assert.deepEqual(valuesOf(seen, name), [], `${name} was forwarded`);
    }
    assert.ok(!valuesOf(seen, 'keep-alive').some((v) => v.includes('77')), 'the client\'s Keep-Alive was forwarded');
    assert.ok(!valuesOf(seen, 'connection').some((v) => /hop|close/i.test(v)), `the client's Connection was forwarded: ${valuesOf(seen, 'connection').join()}`);
    assert.ok(!pairs(seen).some(([, v]) => v.includes('drop-me') || v.includes('c3Bvb2Y')), 'a hop-by-hop value was forwarded');
    assert.deepEqual(valuesOf(seen, 'x-end-to-end'), ['keep-me']);
  });
});

void describe('forwarding headers and client IP', () => {
  const forged = [
    'X-Forwarded-For: 6.6.6.6',
    'X-Forwarded-Proto: https',
    'X-Forwarded-Host: evil.test',
    'X-Real-IP: 6.6.6.6',
    'Forwarded: for=6.6.6.6;proto=https;host=evil.test',
  ];

  function assertRecomputed(seen: EchoedRequest, peer: string): void {
    assert.deepEqual(valuesOf(seen, 'x-forwarded-for'), [peer]);
    assert.deepEqual(valuesOf(seen, 'x-forwarded-proto'), ['http']);
    assert.deepEqual(valuesOf(seen, 'x-forwarded-host'), ['gw.test']);
    assert.deepEqual(valuesOf(seen, 'x-real-ip'), []);
    assert.deepEqual(valuesOf(seen, 'forwarded'), []);
    assert.ok(!pairs(seen).some(([, v]) => v.includes('6.6.6.6') || v.includes('evil.test')), `a forged value was forwarded: ${JSON.stringify(seen.rawHeaders)}`);
  }

  void test('X-Forwarded-*, X-Real-IP and Forwarded from a client are ignored when no proxy is trusted', async () => {
    const { seen, record } = await roundTrip(plain, forged);
    assertRecomputed(seen, '127.0.0.1');
    assert.equal(record.clientIp, '127.0.0.1');
  });

  void test('X-Forwarded-*, X-Real-IP and Forwarded from a peer outside trustedProxies are ignored', async () => {
    const { seen, record } = await roundTrip(gw, forged, { localAddress: UNTRUSTED });
    assertRecomputed(seen, UNTRUSTED);
    assert.equal(record.clientIp, UNTRUSTED);
  });

  void test('forwarding headers spelled with `_` are not forwarded from an untrusted peer', async () => {
    const { seen, record } = await roundTrip(plain, [
      'X_Forwarded_For: 6.6.6.6', 'x_forwarded_proto: https', 'X_FORWARDED_HOST: evil.test', 'X_Real_IP: 6.6.6.6',
    ]);
    assertRecomputed(seen, '127.0.0.1');
    assert.equal(record.clientIp, '127.0.0.1');
  });

  void test('from a trusted proxy the X-Forwarded-For chain is appended and the client is the rightmost untrusted hop', async () => {
    const { seen, record } = await roundTrip(gw, ['X-Forwarded-For: 1.2.3.4, 10.0.0.1', 'X-Forwarded-Proto: https', 'X-Forwarded-Host: api.example.com']);
    assert.deepEqual(valuesOf(seen, 'x-forwarded-for'), ['1.2.3.4, 10.0.0.1, 127.0.0.1']);
    assert.deepEqual(valuesOf(seen, 'x-forwarded-proto'), ['https']);
    // The host routing used, not one a proxy may have passed through from its client.
    assert.deepEqual(valuesOf(seen, 'x-forwarded-host'), ['gw.test']);
    assert.equal(record.clientIp, '1.2.3.4');
  });

  void test('from a trusted proxy, Forwarded and X-Real-IP (often the client\'s own, passed through) are removed: the upstream reads the address the gateway resolved', async () => {
    const { seen, record } = await roundTrip(gw, ['X-Forwarded-For: 9.9.9.9, 5.6.7.8', 'X-Real-IP: 6.6.6.6', 'Forwarded: for=6.6.6.6;proto=https;host=evil']);
    assert.equal(record.clientIp, '5.6.7.8');
    assert.deepEqual(valuesOf(seen, 'x-real-ip'), []);
    assert.deepEqual(valuesOf(seen, 'forwarded'), []);
    assert.ok(!pairs(seen).some(([, v]) => v.includes('6.6.6.6') || v.includes('evil')), JSON.stringify(seen.rawHeaders));
  });

  void test('the walk from the right stops at the first untrusted hop, not the leftmost (forgeable) entry', async () => {
    const { seen, record } = await roundTrip(gw, ['X-Forwarded-For: 9.9.9.9, 1.2.3.4, 10.0.0.7, 10.1.2.3']);
    assert.deepEqual(valuesOf(seen, 'x-forwarded-for'), ['9.9.9.9, 1.2.3.4, 10.0.0.7, 10.1.2.3, 127.0.0.1']);
    assert.equal(record.clientIp, '1.2.3.4');
  });

  void test('several X-Forwarded-For lines from a trusted proxy are read as one list', async () => {
    const { record } = await roundTrip(gw, ['X-Forwarded-For: 9.9.9.9', 'X-Forwarded-For: 1.2.3.4, 10.0.0.1']);
    assert.equal(record.clientIp, '1.2.3.4');
  });

  void test('X-Forwarded-For hops in the ip:port and [v6]:port forms load balancers send are read as addresses', async () => {
    const cases: [string, string][] = [
      ['1.2.3.4:5555, 10.0.0.1', '1.2.3.4'],
      ['[2001:db8::7]:443, 10.0.0.1:80', '2001:db8::7'],
      ['[2001:db8::8]', '2001:db8::8'],
      ['2001:db8::9', '2001:db8::9'],
      ['9.9.9.9, 1.2.3.4:1', '1.2.3.4'],
      ['::ffff:1.2.3.4', '1.2.3.4'],
      ['1.2.3.4, ::ffff:a00:1', '1.2.3.4'], // 10.0.0.1 in hex form is the trusted proxy it is
      [' , ,', '127.0.0.1'], // empty list elements name no hop: the peer sent no client
    ];
    for (const [xff, expected] of cases) {
      const { record } = await roundTrip(gw, [`X-Forwarded-For: ${xff}`]);
      assert.equal(record.clientIp, expected, `XFF "${xff}"`);
    }
  });

  void test('a malformed X-Forwarded-For hop behind trusted proxies is refused, never attributed to the proxy', async () => {
    for (const xff of ['not-an-ip, 10.0.0.1', '1.2.3.4, <script>', '1.2.3.4, 999.1.1.1, 10.0.0.1', '1.2.3.4:99999', '[2001:db8::1', '1.2.3.4:', 'unknown',
      '[2001:db8::1]x443', '[2001:db8::1]:', 'fe80::1%eth0', '[fe80::1%25eth0]:80']) {
      const path = `/probe/${++counter}`;
      const before = echo.received.length;
      const reply = await send(gw.port, path, [`X-Forwarded-For: ${xff}`]);
      assert.equal(reply.status, 400, `XFF "${xff}": ${reply.body}`);
      assert.match(reply.body, /invalid_header/);
      assert.equal(echo.received.length, before, 'forwarded');
      const records = await auditRecordsFor(gw, path);
      assert.equal(records.length, 1);
      assert.notEqual(records[0]?.clientIp, '10.0.0.1');
    }
  });

  void test('garbage left of an untrusted hop is never read: the client is that hop', async () => {
    const { record } = await roundTrip(gw, ['X-Forwarded-For: <script>, not-an-ip, 1.2.3.4, 10.0.0.1']);
    assert.equal(record.clientIp, '1.2.3.4');
    assert.notEqual(isIP(record.clientIp), 0);
  });
});

void describe('request id', () => {
  void test('a short printable X-Request-Id from a trusted proxy is kept end to end', async () => {
    const id = 'edge-1234_abc.DEF:ok';
    const { reply, seen, record } = await roundTrip(gw, [`X-Request-Id: ${id}`]);
    assert.equal(record.requestId, id);
    assert.equal(reply.headers['x-request-id'], id);
    assert.deepEqual(valuesOf(seen, 'x-request-id'), [id]);
  });

  void test('an X-Request-Id from an untrusted peer is replaced by a generated one', async () => {
    const { reply, seen, record } = await roundTrip(gw, ['X-Request-Id: client-chosen-id'], { localAddress: UNTRUSTED });
    assert.match(record.requestId, UUID);
    assertOwnRequestId(seen, reply, record);
  });

  void test('an X-Request-Id from a peer when no proxy is trusted is replaced', async () => {
    const { reply, seen, record } = await roundTrip(plain, ['X-Request-Id: client-chosen-id']);
    assert.match(record.requestId, UUID);
    assertOwnRequestId(seen, reply, record);
  });

  void test('an over-long or non-printable X-Request-Id from a trusted proxy is replaced', async () => {
    for (const bad of ['a'.repeat(129), 'has space', 'tab\there', 'caf\u00e9']) {
      const { reply, seen, record } = await roundTrip(gw, [`X-Request-Id: ${bad}`]);
      assert.match(record.requestId, UUID, `accepted ${JSON.stringify(bad)}`);
      assertOwnRequestId(seen, reply, record);
    }
  });

  void test('a 128-character printable X-Request-Id from a trusted proxy is accepted', async () => {
    const id = 'r'.repeat(128);
    const { record } = await roundTrip(gw, [`X-Request-Id: ${id}`]);
    assert.equal(record.requestId, id);
  });

  void test('the response X-Request-Id equals the audit record\'s requestId for a generated id', async () => {
    const { reply, record } = await roundTrip(plain, []);
    assert.match(record.requestId, UUID);
    assert.equal(reply.headers['x-request-id'], record.requestId);
  });
});
