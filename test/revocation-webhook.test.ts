// The revocation webhook: what an authorization server's signed event must be, and every way a
// hostile or broken sender is refused (unsigned, mis-signed, stale, from the future, replayed,
// duplicated headers, oversized, too many tokens, malformed bodies), each with a precise code and
// nothing revoked. The logic is tested by value with an injected clock; the stage on a real
// node:http server, as a route would run it.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { MemoryRevocations } from '../src/authn/oauth/memory-revocations.js';
import { EXPIRY_LEEWAY_MS } from '../src/authn/oauth/revocation-request.js';
import { TokenDigester, tokenHash } from '../src/authn/oauth/token-digest.js';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { isDenial, Exchange } from '../src/pipeline/exchange.js';
import {
  MAX_REMEMBERED_SIGNATURES, MAX_WEBHOOK_TOKENS, REVOCATION_WEBHOOK, RevocationWebhook, revocationWebhookStage, webhookSignature, type WebhookOutcome,
} from '../src/stages/served/revocation-webhook.js';
import { ManualClock } from './harness/manual-clock.js';

const SECRET = 'webhook-secret-0123456789abcdef-0123456789';
const TOLERANCE_MS = 300_000;
const T0 = 1_767_225_600_000;

interface Setup {
  readonly clock: ManualClock;
  readonly list: MemoryRevocations;
  readonly digester: TokenDigester;
  readonly webhook: RevocationWebhook;
}

function setup(): Setup {
  const clock = new ManualClock(T0);
  const list = new MemoryRevocations(1000, clock);
  const digester = new TokenDigester(Buffer.alloc(32, 7));
  const webhook = new RevocationWebhook({ secret: Buffer.from(SECRET), toleranceMs: TOLERANCE_MS }, { digester, revocations: list, revocationTtlMs: 86_400_000 }, clock);
  return { clock, list, digester, webhook };
}

const seconds = (ms: number): number => Math.floor(ms / 1000);

function signed(body: string, tSeconds: number, secret = SECRET): string {
  return `t=${tSeconds},v1=${webhookSignature(secret, tSeconds, body)}`;
}

function denialCode(outcome: WebhookOutcome): string {
  assert.equal(outcome.ok, false, 'refused');
  return outcome.ok ? '' : outcome.denial.code;
}

describe('revocation webhook events', () => {
  it('revokes every token hash of a well-signed event, until expiresAt', async () => {
    const { webhook, list, digester, clock } = setup();
    const hashes = [tokenHash('token-a'), tokenHash('token-b')];
    const body = JSON.stringify({ tokenHashes: hashes, expiresAt: seconds(T0) + 600 });
    const outcome = await webhook.receive(Buffer.from(body), [signed(body, seconds(T0))]);
    assert.ok(outcome.ok);
    assert.deepEqual(outcome.revoked.map(([h]) => h), hashes);
    for (const h of hashes) assert.equal(list.isRevoked(digester.ofHash(h)), true);
    clock.advance(601_000);
    assert.equal(list.isRevoked(digester.ofHash(hashes[0] ?? '')), true, 'kept while an authenticator may still give the token leeway');
    clock.advance(EXPIRY_LEEWAY_MS);
    assert.equal(list.isRevoked(digester.ofHash(hashes[0] ?? '')), false, 'the revocation ends with the token and its leeway');
  });

  it('revokes tokens given as tokens, each until the default TTL, duplicates once', async () => {
    const { webhook, list, digester } = setup();
    const body = JSON.stringify({ tokens: ['opaque-1', 'opaque-2', 'opaque-1'] });
    const outcome = await webhook.receive(Buffer.from(body), [signed(body, seconds(T0))]);
    assert.ok(outcome.ok);
    assert.equal(outcome.revoked.length, 2);
    assert.deepEqual(outcome.revoked.map(([, until]) => until), [T0 + 86_400_000, T0 + 86_400_000]);
    assert.equal(list.isRevoked(digester.ofToken('opaque-2')), true);
  });

  it('accepts one matching v1 among several (secret rotation) and ignores other schemes', async () => {
    const { webhook } = setup();
    const body = JSON.stringify({ tokenHashes: [tokenHash('rot')] });
    const t = seconds(T0);
    const header = `t=${t},v0=abc,v1=${webhookSignature('old-secret-0123456789abcdef-0123456789', t, body)},v1=${webhookSignature(SECRET, t, body)}`;
    assert.ok((await webhook.receive(Buffer.from(body), [header])).ok);
  });

  const body = JSON.stringify({ tokenHashes: [tokenHash('victim')] });
  const t = seconds(T0);
  const signatureCases: [string, string[]][] = [
    ['no signature header', []],
    ['two signature headers', [signed(body, t), signed(body, t)]],
    ['a signature by another secret', [signed(body, t, 'another-secret-0123456789abcdef-012345')]],
    ['a signature of another body', [signed(body.replace('}', ',"expiresAt":1}'), t)]],
    ['a signature made for another t', [`t=${t + 1},v1=${webhookSignature(SECRET, t, body)}`]],
    ['a stale event, just past the tolerance', [signed(body, seconds(T0 - TOLERANCE_MS) - 1)]],
    ['an event from the future, past the tolerance', [signed(body, seconds(T0 + TOLERANCE_MS) + 1)]],
    ['no t', [`v1=${webhookSignature(SECRET, t, body)}`]],
    ['two t', [`t=${t},t=${t},v1=${webhookSignature(SECRET, t, body)}`]],
    ['t in milliseconds', [signed(body, T0)]],
    ['t negative', [`t=-${t},v1=${webhookSignature(SECRET, t, body)}`]],
    ['no v1', [`t=${t}`]],
    ['v1 in upper-case hex', [`t=${t},v1=${webhookSignature(SECRET, t, body).toUpperCase()}`]],
    ['v1 truncated', [`t=${t},v1=${webhookSignature(SECRET, t, body).slice(0, 32)}`]],
    ['five v1', [`t=${t}${`,v1=${'0'.repeat(64)}`.repeat(4)},v1=${webhookSignature(SECRET, t, body)}`]],
    ['an element without =', [`t=${t},junk,v1=${webhookSignature(SECRET, t, body)}`]],
    ['an oversized header', [`t=${t},v1=${webhookSignature(SECRET, t, body)},x=${'a'.repeat(2000)}`]],
  ];
  for (const [what, headers] of signatureCases) {
    it(`refuses ${what} with webhook_signature_invalid, revoking nothing`, async () => {
      const { webhook, list } = setup();
      assert.equal(denialCode(await webhook.receive(Buffer.from(body), headers)), 'webhook_signature_invalid');
      assert.equal(list.size, 0);
    });
  }

  it('accepts the edges of the tolerance window', async () => {
    for (const edge of [seconds(T0 - TOLERANCE_MS), seconds(T0 + TOLERANCE_MS)]) {
      const { webhook } = setup();
      assert.ok((await webhook.receive(Buffer.from(body), [signed(body, edge)])).ok, `t=${edge}`);
    }
  });

  it('refuses a replayed signature within the window (409), and again after the clock moved on', async () => {
    const { webhook, clock } = setup();
    const header = signed(body, t);
    assert.ok((await webhook.receive(Buffer.from(body), [header])).ok);
    assert.equal(denialCode(await webhook.receive(Buffer.from(body), [header])), 'webhook_replayed');
    clock.advance(TOLERANCE_MS - 1);
    assert.equal(denialCode(await webhook.receive(Buffer.from(body), [header])), 'webhook_replayed');
    clock.advance(2);
    assert.equal(denialCode(await webhook.receive(Buffer.from(body), [header])), 'webhook_signature_invalid', 'past the window it is stale, not new');
    // A fresh signature of the same body is a new delivery.
    assert.ok((await webhook.receive(Buffer.from(body), [signed(body, seconds(clock.now()))])).ok);
  });

  it('shares its replay memory with every webhook on the same list (a reload does not reopen replays)', async () => {
    const { webhook, list, digester, clock } = setup();
    const header = signed(body, t);
    assert.ok((await webhook.receive(Buffer.from(body), [header])).ok);
    const reloaded = new RevocationWebhook({ secret: Buffer.from(SECRET), toleranceMs: TOLERANCE_MS }, { digester, revocations: list, revocationTtlMs: 1000 }, clock);
    assert.equal(denialCode(await reloaded.receive(Buffer.from(body), [header])), 'webhook_replayed');
  });

  it(`remembers at most ${MAX_REMEMBERED_SIGNATURES} signatures in the window, then refuses new events (503) rather than forget one`, async () => {
    const { webhook, clock } = setup();
    for (let i = 0; i < MAX_REMEMBERED_SIGNATURES; i++) {
      const b = JSON.stringify({ tokenHashes: [tokenHash(`flood-${i}`)] });
      assert.ok((await webhook.receive(Buffer.from(b), [signed(b, t)])).ok);
    }
    const b = JSON.stringify({ tokenHashes: [tokenHash('one-more')] });
    assert.equal(denialCode(await webhook.receive(Buffer.from(b), [signed(b, t)])), 'authentication_unavailable');
    clock.advance(TOLERANCE_MS + 1);
    const later = seconds(clock.now());
    assert.ok((await webhook.receive(Buffer.from(b), [signed(b, later)])).ok, 'room again once the old ones left the window');
  });

  const bodyCases: [string, string][] = [
    ['not JSON', 'token=abc'],
    ['a duplicate key', `{"tokenHashes":["${tokenHash('a')}"],"tokenHashes":["${tokenHash('b')}"]}`],
    ['an array', `["${tokenHash('a')}"]`],
    ['both members', JSON.stringify({ tokens: ['a'], tokenHashes: [tokenHash('a')] })],
    ['neither member', JSON.stringify({ expiresAt: 2_000_000_000 })],
    ['an unknown member', JSON.stringify({ tokenHashes: [tokenHash('a')], reason: 'x' })],
    ['an empty list', JSON.stringify({ tokenHashes: [] })],
    [`${MAX_WEBHOOK_TOKENS + 1} hashes`, JSON.stringify({ tokenHashes: Array.from({ length: MAX_WEBHOOK_TOKENS + 1 }, (_, i) => tokenHash(`t${i}`)) })],
    ['a hash that is not one', JSON.stringify({ tokenHashes: [tokenHash('a'), 'nope'] })],
    ['a token with a space', JSON.stringify({ tokens: ['a b'] })],
    ['a token that is an object', JSON.stringify({ tokens: [{ token: 'a' }] })],
    ['an expiry in the past', JSON.stringify({ tokenHashes: [tokenHash('a')], expiresAt: 1000 })],
    ['an expiry as a string', JSON.stringify({ tokenHashes: [tokenHash('a')], expiresAt: '2000000000' })],
  ];
  for (const [what, text] of bodyCases) {
    it(`refuses a signed event with ${what} (webhook_event_invalid), revoking nothing, and lets a fixed one through`, async () => {
      const { webhook, list } = setup();
      const header = signed(text, t);
      assert.equal(denialCode(await webhook.receive(Buffer.from(text), [header])), 'webhook_event_invalid');
      assert.equal(list.size, 0);
      // The refused signature is not counted as used: the sender may re-send it once fixed (a new body needs a new signature anyway).
      assert.equal(denialCode(await webhook.receive(Buffer.from(text), [header])), 'webhook_event_invalid');
    });
  }

  it(`revokes ${MAX_WEBHOOK_TOKENS} tokens in one event`, async () => {
    const { webhook, list } = setup();
    const b = JSON.stringify({ tokenHashes: Array.from({ length: MAX_WEBHOOK_TOKENS }, (_, i) => tokenHash(`t${i}`)) });
    const outcome = await webhook.receive(Buffer.from(b), [signed(b, t)]);
    assert.ok(outcome.ok);
    assert.equal(list.size, MAX_WEBHOOK_TOKENS);
  });
});

describe('the revocation webhook stage on a real server', () => {
  const clock = new ManualClock(Date.now());
  const list = new MemoryRevocations(1000, clock);
  const digester = new TokenDigester(Buffer.alloc(32, 9));
  const stage = revocationWebhookStage(new RevocationWebhook({ secret: Buffer.from(SECRET), toleranceMs: TOLERANCE_MS }, { digester, revocations: list, revocationTtlMs: 3_600_000 }, clock));
  let server: Server;
  let url: string;

  before(async () => {
    server = createServer((req, res) => {
      const ex = new Exchange(req, res, [], 'req-1', '127.0.0.1', '127.0.0.1', false);
      void Promise.resolve(stage.run(ex)).then((verdict) => {
        const answer = verdict === undefined ? { continued: true } : isDenial(verdict) ? { code: verdict.code, reason: verdict.reason } : { status: verdict.status, body: verdict.body, code: verdict.code };
        res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
        res.end(JSON.stringify(answer));
      }, (err: unknown) => { res.writeHead(500); res.end(String(err)); });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/oauth/revocation-events`;
  });
  after(() => new Promise<void>((resolve) => { server.close(() => resolve()); }));

  async function post(body: string | Buffer, headers: Record<string, string>): Promise<Record<string, unknown>> {
    const res = await request(url, { method: 'POST', headers, body });
    return await res.body.json() as Record<string, unknown>;
  }

  it('answers 202 with the count, and the token is revoked', async () => {
    const b = JSON.stringify({ tokens: ['stage-token'] });
    const answer = await post(b, { 'content-type': 'application/json', 'portcullis-signature': signed(b, seconds(clock.now())) });
    assert.deepEqual(answer, { status: 202, body: '{"revoked":1}', code: 'revocations_accepted' });
    assert.equal(list.isRevoked(digester.ofToken('stage-token')), true);
  });

  it('refuses another content type (415) before reading anything', async () => {
    const b = JSON.stringify({ tokens: ['x'] });
    assert.equal((await post(b, { 'content-type': 'application/x-www-form-urlencoded', 'portcullis-signature': signed(b, seconds(clock.now())) })).code, 'unsupported_media_type');
  });

  it('refuses a body over 64 KiB, declared or chunked (413)', async () => {
    const big = JSON.stringify({ tokens: ['x'], pad: 'p'.repeat(70_000) });
    const header = signed(big, seconds(clock.now()));
    assert.equal((await post(big, { 'content-type': 'application/json', 'portcullis-signature': header })).code, 'body_too_large');
    const chunked = await request(url, {
      method: 'POST', headers: { 'content-type': 'application/json', 'portcullis-signature': header },
      body: Readable.from((function* () { for (let i = 0; i < 10; i++) yield Buffer.alloc(8192, 0x20); })()),
    });
    assert.equal(((await chunked.body.json()) as { code: string }).code, 'body_too_large');
  });

  it('refuses a signature header sent twice, whatever its case', async () => {
    const b = JSON.stringify({ tokens: ['twice'] });
    const res = await request(url, { method: 'POST', headers: ['content-type', 'application/json', 'Portcullis-Signature', signed(b, seconds(clock.now())), 'portcullis-signature', signed(b, seconds(clock.now()))], body: b });
    assert.equal(((await res.body.json()) as { code: string }).code, 'webhook_signature_invalid');
    assert.equal(list.isRevoked(digester.ofToken('twice')), false);
  });

});

describe('serve: revocation-webhook in a config', () => {
  it('needs oauth.webhook, and says so where the route serves it', () => {
    const loaded = loadConfigText('upstreams: { echo: { targets: ["http://127.0.0.1:9"] } }\nroutes:\n  - { name: a, match: { path: "/a" }, upstream: echo, public: true }\n', 'gateway.yaml', {});
    const config = compileConfig(loaded);
    const problems: import('../src/config/errors.js').ConfigProblem[] = [];
    const built = REVOCATION_WEBHOOK.build({ oauth: config.oauth, loaded, at: (...p) => ['routes', 0, ...p], problems, identityAssertion: null });
    assert.equal(built, null);
    assert.match(problems.map((p) => p.message).join('\n'), /needs oauth\.webhook/);
  });

  it('builds its stage when oauth.webhook is set', () => {
    const loaded = loadConfigText(`oauth: { webhook: { secret: "${SECRET}" } }\nupstreams: { echo: { targets: ["http://127.0.0.1:9"] } }\nroutes:\n  - { name: a, match: { path: "/a" }, upstream: echo, public: true }\n`, 'gateway.yaml', {});
    const config = compileConfig(loaded);
    assert.equal(config.oauth.webhook?.toleranceMs, 300_000);
    const built = REVOCATION_WEBHOOK.build({ oauth: config.oauth, loaded, at: (...p) => ['routes', 0, ...p], problems: [], identityAssertion: null });
    assert.equal(built?.name, 'revocation-webhook');
    assert.deepEqual(REVOCATION_WEBHOOK.methods, ['POST']);
  });
});

describe('serve: revocation-webhook on a running gateway', () => {
  it('a signed event at the route revokes the token on the gateway at once; a bad signature revokes nothing; each call is audited once', async () => {
    const { startEchoUpstream } = await import('./harness/echo.js');
    const { startGateway } = await import('./harness/gateway.js');
    const { mint, testKey } = await import('./harness/jwt.js');
    const echo = await startEchoUpstream();
    const key = await testKey('ES256', 'k1');
    const gw = await startGateway({
      oauth: { webhook: { secret: SECRET } },
      upstreams: { echo: { targets: [echo.url] } },
      authenticators: { users: { type: 'jwt', issuer: 'https://issuer.test/', audience: 'orders-api', algorithms: ['ES256'], publicKeys: [{ pem: key.pem, kid: key.kid }] } },
      routes: [
        { name: 'orders', match: { path: '/orders/**' }, upstream: 'echo', authenticate: ['users'] },
        { name: 'revocation-events', match: { path: '/oauth/revocation-events', methods: ['POST'] }, public: true, serve: 'revocation-webhook' },
      ],
    });
    try {
      const token = await mint(key, { sub: 'alice', iss: 'https://issuer.test/', aud: 'orders-api' });
      const get = (path: string) => request(`${gw.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal((await get('/orders/before')).statusCode, 200);
      const body = JSON.stringify({ tokenHashes: [tokenHash(token)] });
      const post = (signature: string) => request(`${gw.url}/oauth/revocation-events`, { method: 'POST', headers: { 'content-type': 'application/json', 'portcullis-signature': signature }, body });
      const forged = await post(signed(body, seconds(Date.now()), 'another-secret-0123456789abcdef-0123456789'));
      assert.equal(forged.statusCode, 401);
      assert.equal(((await forged.body.json()) as { code?: string; type?: string }).type?.endsWith('webhook_signature_invalid') ?? false, true);
      assert.equal((await get('/orders/still')).statusCode, 200, 'a refused event revokes nothing');
      const signature = signed(body, seconds(Date.now()));
      const accepted = await post(signature);
      assert.equal(accepted.statusCode, 202, await accepted.body.text());
      const refused = await get('/orders/after');
      assert.equal(refused.statusCode, 401);
      await refused.body.dump();
      const replayed = await post(signature);
      assert.equal(replayed.statusCode, 409, 'the same signed event twice is a replay');
      await replayed.body.dump();
      const records = (await gw.audit()).filter((r) => r.path === '/oauth/revocation-events' && r.route === 'revocation-events');
      assert.equal(records.length, 3, 'one record per call');
      assert.ok(records.every((r) => r.upstream === undefined || r.upstream === null), 'nothing forwarded');
      const [after] = await gw.auditWhere((r) => r.path === '/orders/after');
      assert.equal(after?.detail, 'users: revoked');
      assert.equal(echo.received.filter((r) => r.url.startsWith('/oauth')).length, 0);
    } finally {
      await gw.close();
      await echo.close();
    }
  });
});
