// /readyz answers without a token, so what it says about a component must hold no secret: a JWKS
// URL's query string or fragment (`?access_token=…`), or a store URL's userinfo, quoted in a reason,
// a detail or a fetch error, alone or under --workers (where the reason comes from a worker and the
// error from the primary's fetch). The metrics label the same URL the same way, and the audit
// detail of the 503 a token gets while the set is not loaded and the log lines show it so too. Real JWKS server
// and gateway processes on loopback.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { call } from './harness/api-keys.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, startGatewayProcess, type ConfigObject } from './harness/gateway.js';
import { JwksServer, mint, testKey, type TestKey } from './harness/jwt.js';
import { readiness, shownText } from '../src/lifecycle/readiness.js';

const ISS = 'https://idp.redaction.test/';
const SECRET = 'Zq8-readyz-secret-token';

function config(echo: EchoUpstream, jwksUri: string): ConfigObject {
  return {
    upstreams: { echo: { targets: [echo.url] } },
    authenticators: { users: { type: 'jwt', issuer: ISS, jwksUri, audience: 'api', algorithms: ['ES256'], jwks: { cooldownMs: 100, timeoutMs: 2000 } } },
    routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['users'] }],
  };
}

describe('readiness shows no secret a URL carries', () => {
  let jwks: JwksServer;
  let echo: EchoUpstream;
  let key: TestKey;
  before(async () => {
    key = await testKey('ES256', 'redact-1');
    jwks = await JwksServer.start([key]);
    echo = await startEchoUpstream();
  });
  after(async () => {
    await jwks.close();
    await echo.close();
  });

  it('text: userinfo, query and fragment go from every URL; the rest of the text and its brackets stay', () => {
    const cases: [string, string][] = [
      [`JWKS http://127.0.0.1:1/jwks.json?access_token=${SECRET} has not been loaded (last fetch: HTTP 500)`, 'JWKS http://127.0.0.1:1/jwks.json has not been loaded (last fetch: HTTP 500)'],
      [`(last fetch: JWKS https://idp/j.json?k=${SECRET})`, '(last fetch: JWKS https://idp/j.json)'],
      [`connect postgres://app:${SECRET}@db.internal:5432/keys failed`, 'connect postgres://db.internal:5432/keys failed'],
      [`https://idp/j.json#${SECRET}`, 'https://idp/j.json'],
      [`HTTPS://U:${SECRET}@IDP/J?A=${SECRET}&B=2 and redis://:${SECRET}@r:6379/0`, 'HTTPS://IDP/J and redis://r:6379/0'],
      ['no address here: HTTP 503', 'no address here: HTTP 503'],
      ['JWKS https://idp/p@q/j.json', 'JWKS https://idp/p@q/j.json'],
    ];
    for (const [text, shown] of cases) assert.equal(shownText(text), shown, text);
    const r = readiness('v1', {
      a: { ready: false, reason: `x https://h/j?t=${SECRET}`, jwksUri: `https://h/j?t=${SECRET}`, list: [`https://h/?${SECRET}`, 3] },
    }, [], null);
    assert.ok(!JSON.stringify(r).includes(SECRET), JSON.stringify(r));
    assert.deepEqual(r.components.a, { ready: false, reason: 'x https://h/j', jwksUri: 'https://h/j', list: ['https://h/', 3] });
  });

  it('a gateway alone: /readyz, its log of the change and the JWKS metrics name the URL without its query', async () => {
    jwks.mode = 'error';
    const uri = `${jwks.url}?access_token=${SECRET}#${SECRET}`;
    const gw = await startGateway({ log: { level: 'info' }, ...config(echo, uri) });
    try {
      const res = await call(`${gw.adminUrl}/readyz`);
      assert.equal(res.status, 503);
      assert.ok(!res.body.includes(SECRET), res.body);
      const users = (JSON.parse(res.body) as { components: Record<string, { reason?: string }> }).components['authenticator:users'];
      assert.match(users?.reason ?? '', /^JWKS http:\/\/127\.0\.0\.1:\d+\/jwks\.json has not been loaded \(last fetch: HTTP 500\)$/);
      const notReady = gw.logs.filter((l) => l.includes('gateway not ready yet'));
      assert.equal(notReady.length, 1);
      assert.ok(!notReady[0]?.includes(SECRET), notReady[0]);
      // The 503 a token of this issuer gets: its audit detail, and every log line, hold no query either.
      const token = await mint(key, { iss: ISS, aud: 'api', sub: 'u1' });
      const denied = await call(`${gw.url}/orders/1`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(denied.status, 503);
      assert.ok(!denied.body.includes(SECRET));
      const [record] = await gw.auditFor(denied.headers['x-request-id'] ?? '');
      assert.match(String(record?.detail), /JWKS http:\/\/127\.0\.0\.1:\d+\/jwks\.json /);
      assert.ok(!JSON.stringify(record).includes(SECRET), JSON.stringify(record));
      assert.ok(!gw.logs.some((l) => l.includes(SECRET)), gw.logs.filter((l) => l.includes(SECRET)).join('\n'));
      const metrics = await call(`${gw.adminUrl}/metrics`);
      const jwksLines = metrics.body.split('\n').filter((l) => l.startsWith('portcullis_jwks_'));
      assert.ok(jwksLines.some((l) => l.includes(`uri="${jwks.url}"`)), jwksLines.join('\n'));
      assert.ok(!metrics.body.includes(SECRET));
    } finally {
      await gw.close();
      jwks.mode = 'ok';
    }
  });

  it('under --workers: the reason a worker reports, with the primary\'s fetch error in it, holds no query', async () => {
    jwks.mode = 'error';
    const uri = `${jwks.url}?access_token=${SECRET}`;
    const gw = await startGatewayProcess(config(echo, uri), { args: ['--workers', '1'] });
    try {
      const res = await call(`${gw.adminUrl}/readyz`);
      assert.equal(res.status, 503);
      const users = (JSON.parse(res.body) as { components: Record<string, { reason?: string }> }).components['authenticator:users'];
      assert.match(users?.reason ?? '', /^worker \d+: JWKS http:\/\/127\.0\.0\.1:\d+\/jwks\.json has not been loaded/);
      assert.ok(!res.body.includes(SECRET), res.body);
      assert.ok(!gw.stdout.some((l) => l.includes(SECRET)), 'no log line of the primary or a worker holds it');
    } finally {
      await gw.stop();
      jwks.mode = 'ok';
    }
  });
});
