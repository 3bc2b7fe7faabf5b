// A backend behind Portcullis that trusts no header alone: every request must carry an identity
// assertion the gateway signed, for this backend, fresh, and not seen before.
//
//   GATEWAY_JWKS_URL=http://127.0.0.1:8080/.well-known/jwks.json \
//   ASSERTION_ISSUER=https://gateway.example ASSERTION_AUDIENCE=orders \
//   PORT=3001 node examples/assertion-backend/server.mjs
//
// It answers 200 with the verified claims as JSON, or 401 with the reason. See README.md beside it.
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { createRemoteJWKSet, jwtVerify } from 'jose';

/** The `typ` every Portcullis identity assertion carries (docs/identity-assertion.md). */
export const ASSERTION_TYP = 'portcullis-identity+jwt';

/**
 * Assertion ids (`jti`) seen and not yet expired, so a captured assertion cannot be sent twice.
 * Bounded: when full of live ids, new assertions are refused (503) rather than the memory grown;
 * size it above (requests per second × the gateway's ttlSeconds).
 */
export class ReplayCache {
  #seen = new Map();

  constructor(maxEntries = 100_000) {
    this.maxEntries = maxEntries;
  }

  /** 'fresh' (now remembered until `untilSeconds`), 'replayed', or 'full'. */
  remember(jti, untilSeconds, nowSeconds) {
    // Ids are remembered in arrival order and the gateway's lifetime is fixed, so the oldest go first.
    for (const [id, exp] of this.#seen) {
      if (exp >= nowSeconds) break;
      this.#seen.delete(id);
    }
    if (this.#seen.has(jti)) return 'replayed';
    if (this.#seen.size >= this.maxEntries) return 'full';
    this.#seen.set(jti, untilSeconds);
    return 'fresh';
  }
}

/**
 * Verifies one assertion: signature by a key of the gateway's JWK Set, `typ`, algorithm, issuer,
 * audience, expiry, and an `iat` at most `maxAgeSeconds` old (and not in the future). Throws
 * jose's error (its `code` says which check failed).
 */
export async function verifyAssertion(token, { jwks, issuer, audience, maxAgeSeconds = 60, clockToleranceSeconds = 5 }) {
  const { payload } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    typ: ASSERTION_TYP,
    algorithms: ['EdDSA', 'ES256'],
    maxTokenAge: maxAgeSeconds,
    clockTolerance: clockToleranceSeconds,
    requiredClaims: ['sub', 'jti', 'iat', 'exp'],
  });
  return payload;
}

/**
 * Starts the backend. `header` is where the gateway sends the assertion (`authorization` as
 * `Bearer <assertion>`, or the header named by the route's assertIdentity.header).
 */
export async function startBackend({
  jwksUrl, issuer, audience, port = 0, host = '127.0.0.1', header = 'authorization',
  maxAgeSeconds = 60, clockToleranceSeconds = 5, maxReplayEntries = 100_000, jwksCooldownMs = 30_000,
}) {
  // An assertion naming a kid the cached set lacks refetches the set (at most once per cooldown):
  // that is how a rotated-in key is picked up before the gateway's JWKS max-age runs out.
  const jwks = createRemoteJWKSet(new URL(jwksUrl), { cooldownDuration: jwksCooldownMs, cacheMaxAge: 300_000, timeoutDuration: 5_000 });
  const replays = new ReplayCache(maxReplayEntries);
  const server = createServer((req, res) => {
    void handle(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, { error: 'internal_error' });
      else res.destroy();
    });
  });
  const send = (res, status, body) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(text);
  };
  async function handle(req, res) {
    req.resume();
    const raw = req.headers[header];
    const value = Array.isArray(raw) ? undefined : raw;
    const token = header === 'authorization' ? /^Bearer ([A-Za-z0-9_.-]+)$/.exec(value ?? '')?.[1] : value;
    if (token === undefined) return send(res, 401, { error: 'missing_assertion' });
    let claims;
    try {
      claims = await verifyAssertion(token, { jwks, issuer, audience, maxAgeSeconds, clockToleranceSeconds });
    } catch (err) {
      return send(res, 401, { error: 'invalid_assertion', code: err?.code ?? 'ERR_UNKNOWN' });
    }
    // Remembered for as long as verification would still accept it: its expiry plus the tolerance.
    const outcome = replays.remember(claims.jti, claims.exp + clockToleranceSeconds, Math.floor(Date.now() / 1000));
    if (outcome === 'replayed') return send(res, 401, { error: 'replayed_assertion' });
    if (outcome === 'full') return send(res, 503, { error: 'replay_cache_full' });
    return send(res, 200, { method: req.method, url: req.url, claims });
  }
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address();
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const env = process.env;
  const missing = ['GATEWAY_JWKS_URL', 'ASSERTION_ISSUER', 'ASSERTION_AUDIENCE'].filter((name) => !env[name]);
  if (missing.length > 0) {
    console.error(`set ${missing.join(', ')} (see examples/assertion-backend/README.md)`);
    process.exit(2);
  }
  const backend = await startBackend({
    jwksUrl: env.GATEWAY_JWKS_URL,
    issuer: env.ASSERTION_ISSUER,
    audience: env.ASSERTION_AUDIENCE,
    port: Number(env.PORT ?? 3001),
    host: env.HOST ?? '127.0.0.1',
    header: (env.ASSERTION_HEADER ?? 'authorization').toLowerCase(),
  });
  console.log(`assertion backend listening on ${backend.url}`);
}
