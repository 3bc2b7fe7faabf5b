// Differential test of the JWT verifier against jose's jwtVerify: random headers, claims,
// encodings and signatures, run through both with equivalent options. Nothing jose refuses may be
// accepted here, and every token jose accepts and this verifier refuses must be covered by one of
// the named stricter rules below (each documented in docs/authentication.md, "Stricter than
// jwtVerify"). Deterministic seed, bounded runs.
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { describe, it, before } from 'node:test';
import fc from 'fast-check';
import { jwtVerify, type FlattenedJWSInput, type JWSHeaderParameters } from 'jose';
import type { JwsAlgorithm } from '../src/authn/jwt/algorithms.js';
import { verifyJwt, type JwtPolicy } from '../src/authn/jwt/jwt-verifier.js';
import { importJwks, importSecret, StaticKeys } from '../src/authn/jwt/key-source.js';
import { signatureFor, testKey, type TestKey } from './harness/jwt.js';

const ISS = 'https://issuer.test/';
const HMAC_ISS = 'https://hmac.test/';
const SECRET = 'differential-secret-of-at-least-32-bytes';
const AUDIENCE = 'orders-api';
const NOW = 1_800_000_000; // seconds
const SKEW = 30;
const SEED = 20_261_129;
const RUNS = 1500;

/** The facts a stricter rule looks at, read from the token text independently of either verifier. */
interface Parsed {
  readonly segments: readonly string[];
  readonly headerBytes: Buffer | null;
  readonly payloadBytes: Buffer | null;
  readonly header: Record<string, unknown> | null;
  readonly payload: Record<string, unknown> | null;
}

const CANONICAL_B64URL = /^[A-Za-z0-9_-]*$/;

/** Canonical unpadded base64url (RFC 4648 §5, §3.5): our own check, written again for the test. */
function isCanonicalSegment(segment: string): boolean {
  if (!CANONICAL_B64URL.test(segment) || segment.length % 4 === 1) return false;
  return Buffer.from(segment, 'base64url').toString('base64url') === segment;
}

function lenientJson(bytes: Buffer | null): Record<string, unknown> | null {
  if (bytes === null) return null;
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value as Record<string, unknown> : null;
  } catch {
    return null;
  }
}

function parse(token: string): Parsed {
  const segments = token.split('.');
  const bytes = (s: string | undefined): Buffer | null => (s === undefined ? null : Buffer.from(s.replace(/\s/g, ''), 'base64url'));
  const headerBytes = bytes(segments[0]);
  const payloadBytes = bytes(segments[1]);
  return { segments, headerBytes, payloadBytes, header: lenientJson(headerBytes), payload: lenientJson(payloadBytes) };
}

/** Duplicate member names anywhere in a JSON text (after unescaping), by a small recursive-descent reader. */
function hasDuplicateKeys(text: string): boolean {
  let i = 0;
  let duplicate = false;
  const ws = (): void => { while (i < text.length && ' \t\n\r'.includes(text.charAt(i))) i++; };
  const str = (): string => {
    const start = i;
    i++;
    while (text.charAt(i) !== '"') i += text.charAt(i) === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): void => {
    ws();
    const c = text.charAt(i);
    if (c === '{') {
      i++;
      const names = new Set<string>();
      ws();
      if (text.charAt(i) === '}') { i++; return; }
      for (;;) {
        ws();
        const name = str();
        if (names.has(name)) duplicate = true;
        names.add(name);
        ws(); i++; // ':'
        value();
        ws();
        if (text.charAt(i++) === '}') return;
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text.charAt(i) === ']') { i++; return; }
      for (;;) { value(); ws(); if (text.charAt(i++) === ']') return; }
    } else if (c === '"') str();
    else while (i < text.length && !',}] \t\n\r'.includes(text.charAt(i))) i++;
  };
  try { JSON.parse(text); } catch { return false; }
  value();
  return duplicate;
}

const depthOf = (value: unknown): number =>
  value !== null && typeof value === 'object' ? 1 + Math.max(0, ...Object.values(value).map(depthOf)) : 0;

const numericDates = (p: Parsed): unknown[] => (p.payload === null ? [] : [p.payload.exp, p.payload.nbf, p.payload.iat]);

/**
 * Where this verifier is deliberately stricter than jose's jwtVerify. Each is a named predicate on
 * the token; docs/authentication.md lists the same names.
 */
interface StricterRule {
  /** The reasons (audit prefixes) this verifier gives when the rule refuses a token. */
  readonly reasons: readonly string[];
  readonly applies: (p: Parsed) => boolean;
}

const STRICTER: Readonly<Record<string, StricterRule>> = {
  /** Padding, `+` `/`, white space, a length of 1 mod 4 or spare bits set: one token, one spelling. */
  nonCanonicalBase64url: { reasons: ['malformed'], applies: (p) => p.segments.some((s) => !isCanonicalSegment(s)) },
  /** RFC 7515 §4: duplicate header or claim names are rejected, not resolved to the last one. */
  duplicateJsonMember: { reasons: ['malformed'], applies: (p) => [p.headerBytes, p.payloadBytes].some((b) => b !== null && hasDuplicateKeys(new TextDecoder().decode(b))) },
  /** Header and claims must be valid UTF-8 without a byte-order mark (RFC 8259 §8.1). */
  invalidUtf8OrBom: { reasons: ['malformed'], applies: (p) => [p.headerBytes, p.payloadBytes].some((b) => b !== null && (!isUtf8(b) || (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf))) },
  /** JSON nested deeper than 16 levels. */
  jsonTooDeep: { reasons: ['malformed'], applies: (p) => depthOf(p.header) > 16 || depthOf(p.payload) > 16 },
  /** A token never carries or points at its own key: `jwk`, `jku`, `x5u`, `x5c` are refused even when unused. */
  keyCarryingHeader: { reasons: ['embedded_key'], applies: (p) => p.header !== null && ['jwk', 'jku', 'x5u', 'x5c'].some((k) => Object.hasOwn(p.header ?? {}, k)) },
  /** Any `crit`, and `b64` at all (RFC 7797), are refused: no extension is understood. */
  critOrB64Header: { reasons: ['crit_unsupported', 'malformed'], applies: (p) => p.header !== null && (Object.hasOwn(p.header, 'crit') || Object.hasOwn(p.header, 'b64')) },
  /** An `enc` header is a JWE, never accepted where a JWS is expected. */
  encHeader: { reasons: ['jwe_not_accepted'], applies: (p) => p.header !== null && Object.hasOwn(p.header, 'enc') },
  /** `kid` must be a string of at most 256 characters. */
  kidNotShortString: { reasons: ['malformed'], applies: (p) => p.header !== null && Object.hasOwn(p.header, 'kid') && (typeof p.header.kid !== 'string' || p.header.kid.length > 256) },
  /** `iat` beyond now + leeway is refused (jose checks only its type). */
  issuedInFuture: { reasons: ['issued_in_future'], applies: (p) => typeof p.payload?.iat === 'number' && p.payload.iat > NOW + SKEW },
  /** NumericDates must be finite and not negative. */
  numericDateOutOfRange: { reasons: ['claim_invalid'], applies: (p) => numericDates(p).some((d) => typeof d === 'number' && (!Number.isFinite(d) || d < 0)) },
  /** Every `aud` element must be a non-empty string, and an array must not be empty. */
  audienceElementNotString: { reasons: ['audience_invalid'], applies: (p) => Array.isArray(p.payload?.aud) && (p.payload.aud.length === 0 || p.payload.aud.some((a) => typeof a !== 'string' || a === '')) },
};

// ---- generators -------------------------------------------------------------------------------

type Signer = 'right' | 'wrong-key' | 'corrupt' | 'empty' | 'other-alg';

const ALGS = ['RS256', 'ES256', 'EdDSA', 'HS256'] as const;
const BAD_ALGS = ['none', 'NONE', 'RS384', 'HS512', 'PS256'] as const;
const absent = Symbol('absent');
/** Absent `weight` times as often as present. */
const opt = <T>(arb: fc.Arbitrary<T>, weight = 3): fc.Arbitrary<T | typeof absent> => fc.oneof({ arbitrary: fc.constant(absent), weight }, { arbitrary: arb, weight: 1 });
const mostly = <T>(usual: fc.Arbitrary<T>, odd: fc.Arbitrary<T>, weight = 4): fc.Arbitrary<T> => fc.oneof({ arbitrary: usual, weight }, { arbitrary: odd, weight: 1 });

/** Stands for the JSON number 1e400 (Infinity once parsed), which no JS number literal can write. */
const HUGE = '<1e400>';

/** Times around now, the leeway boundaries, and values of the wrong type or range. */
const oddTime = fc.oneof(
  fc.integer({ min: -120, max: 120 }).map((d) => NOW + d),
  fc.constantFrom(NOW - SKEW, NOW - SKEW - 1, NOW + SKEW, NOW + SKEW + 1, NOW, 0, -1, HUGE, String(NOW + 60), NOW + 0.5, NOW - SKEW - 0.5),
);

const headerArb = fc.record({
  alg: mostly(fc.constantFrom(...ALGS), fc.constantFrom(...BAD_ALGS)),
  kid: fc.oneof({ arbitrary: fc.constant('matching'), weight: 6 }, { arbitrary: fc.constant(absent), weight: 4 }, { arbitrary: fc.constantFrom('rsa-1', 'ec-1', 'nope', 7, 'k'.repeat(300)), weight: 1 }),
  typ: opt(fc.constantFrom('JWT', 'at+jwt', 'application/jwt', 'JOSE')),
  crit: opt(fc.constantFrom(['b64'], ['exp'], [], 'b64'), 15),
  b64: opt(fc.boolean(), 15),
  enc: opt(fc.constant('A256GCM'), 30),
  jku: opt(fc.constant('https://evil.test/jwks'), 30),
  jwk: opt(fc.constant({ kty: 'oct', k: 'AAAA' }), 30),
  x5u: opt(fc.constant('https://evil.test/cert'), 30),
  extra: opt(fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 2 })),
});

const payloadArb = fc.record({
  iss: fc.oneof({ arbitrary: fc.constant('matching'), weight: 12 }, { arbitrary: fc.constantFrom(ISS, HMAC_ISS), weight: 2 }, { arbitrary: fc.constantFrom('https://other.test/', 42), weight: 1 }),
  aud: mostly(fc.constant(AUDIENCE), fc.constantFrom([AUDIENCE, 'x'], [AUDIENCE, 1], [AUDIENCE, ''], 'billing', [], ['billing'], absent)),
  sub: mostly(fc.constant('user-1'), fc.oneof(fc.string({ maxLength: 8 }), fc.constant(absent))),
  exp: fc.oneof({ arbitrary: fc.integer({ min: SKEW + 1, max: 3600 }).map((d) => NOW + d), weight: 4 }, { arbitrary: oddTime, weight: 2 }, { arbitrary: fc.constant(absent), weight: 1 }),
  nbf: opt(oddTime),
  iat: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 600 }).map((d) => NOW - d), weight: 3 }, { arbitrary: oddTime, weight: 1 }, { arbitrary: fc.constant(absent), weight: 1 }),
  deep: opt(fc.integer({ min: 15, max: 18 }).map((n) => JSON.parse(`${'['.repeat(n)}${']'.repeat(n)}`) as unknown), 20),
});

const jsonTextArb = fc.oneof({ arbitrary: fc.constant('plain'), weight: 16 }, { arbitrary: fc.constantFrom('duplicate', 'bom', 'bad-utf8', 'spaces'), weight: 2 });

function clean(record: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) {
    if (v === absent) continue;
    if (k === 'extra') { for (const [ek, ev] of Object.entries(v as Record<string, unknown>)) if (!(ek in out) && !['alg', 'kid'].includes(ek)) out[ek] = ev; continue; }
    out[k] = v;
  }
  return out;
}

/** JSON text with a twist: a duplicated member, a BOM, a lone continuation byte, or extra white space. */
function jsonText(value: Record<string, unknown>, twist: string, duplicateOf: string): Buffer {
  const text = JSON.stringify(value).replaceAll(JSON.stringify(HUGE), '1e400');
  if (twist === 'duplicate' && text.length > 2) return Buffer.from(`${text.slice(0, -1)},${JSON.stringify(duplicateOf)}:${JSON.stringify(value[duplicateOf] ?? 'x')}}`);
  if (twist === 'bom') return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]);
  if (twist === 'bad-utf8') return Buffer.concat([Buffer.from(text.slice(0, -1)), Buffer.from(',"z":"'), Buffer.from([0x80]), Buffer.from('"}')]);
  if (twist === 'spaces') return Buffer.from(`\n ${text.replace(/,/g, ' , ')} \t`);
  return Buffer.from(text);
}

function encode(bytes: Buffer, how: string): string {
  const canonical = bytes.toString('base64url');
  switch (how) {
    case 'padded': return bytes.toString('base64');
    case 'std-alphabet': return bytes.toString('base64').replace(/=+$/, '');
    case 'space': return `${canonical.slice(0, 4)} ${canonical.slice(4)}`;
    case 'spare-bits': {
      if (canonical.length % 4 === 0) return canonical;
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = alphabet.indexOf(canonical.charAt(canonical.length - 1));
      return canonical.slice(0, -1) + alphabet.charAt(last | 1);
    }
    default: return canonical;
  }
}

const encodingArb = fc.oneof({ arbitrary: fc.constant('canonical'), weight: 24 }, { arbitrary: fc.constantFrom('padded', 'std-alphabet', 'space', 'spare-bits'), weight: 2 });

const caseArb = fc.record({
  header: headerArb,
  headerTwist: jsonTextArb,
  payload: payloadArb,
  payloadTwist: jsonTextArb,
  headerEncoding: encodingArb,
  payloadEncoding: encodingArb,
  signer: mostly(fc.constant<Signer>('right'), fc.constantFrom<Signer>('wrong-key', 'corrupt', 'empty', 'other-alg'), 6),
  signatureEncoding: mostly(fc.constant('canonical'), fc.constantFrom('padded', 'spare-bits'), 12),
});

type CaseValue = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

// ---- the two verifiers --------------------------------------------------------------------------

describe('JWT verifier against jose jwtVerify (differential)', () => {
  let keys: Record<'RS256' | 'ES256' | 'EdDSA', TestKey>;
  let other: TestKey;
  let policy: JwtPolicy;

  before(async () => {
    const [rsa, ec, ed, rsaOther] = await Promise.all([testKey('RS256', 'rsa-1'), testKey('ES256', 'ec-1'), testKey('EdDSA', 'ed-1'), testKey('RS256', 'rsa-other')]);
    keys = { RS256: rsa, ES256: ec, EdDSA: ed };
    other = rsaOther;
    const algorithms: JwsAlgorithm[] = ['RS256', 'ES256', 'EdDSA'];
    const imported = importJwks({ keys: [rsa.jwk, ec.jwk, ed.jwk] }, algorithms);
    const hmac = importSecret(SECRET, ['HS256']);
    assert.ok(typeof imported !== 'string' && typeof hmac !== 'string');
    policy = {
      algorithms: new Set<JwsAlgorithm>([...algorithms, 'HS256']),
      issuers: new Map([
        [ISS, { source: new StaticKeys(imported.keys), algorithms: new Set(algorithms) }],
        [HMAC_ISS, { source: new StaticKeys([hmac]), algorithms: new Set<JwsAlgorithm>(['HS256']) }],
      ]),
      audiences: new Set([AUDIENCE]),
      clockSkewSec: SKEW,
      requireExp: true,
      typ: null,
      maxTokenBytes: 8192,
    };
  });

  /** The signing input signed as the case says. */
  function sign(input: string, alg: string, signer: Signer): string {
    if (signer === 'empty') return '';
    const right = (): string => {
      if (alg === 'HS256') return signatureFor(input, { hmac: SECRET });
      const key = keys[alg as 'RS256' | 'ES256' | 'EdDSA'] as TestKey | undefined;
      return key === undefined ? signatureFor(input, { key: keys.RS256 }) : signatureFor(input, { key });
    };
    if (signer === 'right') return right();
    if (signer === 'wrong-key') return alg === 'HS256' ? signatureFor(input, { hmac: `${SECRET}-not` }) : signatureFor(input, { key: other });
    if (signer === 'other-alg') return signatureFor(input, { key: alg === 'ES256' ? keys.EdDSA : keys.ES256 });
    const sig = Buffer.from(right(), 'base64url');
    if (sig.length > 0) sig[sig.length >> 1] = (sig[sig.length >> 1] ?? 0) ^ 0x01;
    return sig.toString('base64url');
  }

  function build(c: CaseValue): string {
    const header = clean(c.header);
    if (header.kid === 'matching') {
      const key = keys[header.alg as 'RS256' | 'ES256' | 'EdDSA'] as TestKey | undefined;
      if (key === undefined) delete header.kid;
      else header.kid = key.kid;
    }
    const payload = clean(c.payload);
    if (payload.iss === 'matching') payload.iss = header.alg === 'HS256' ? HMAC_ISS : ISS;
    const h = encode(jsonText(header, c.headerTwist, 'alg'), c.headerEncoding);
    const p = encode(jsonText(payload, c.payloadTwist, 'exp'), c.payloadEncoding);
    const input = `${h}.${p}`;
    const signature = sign(input, String(header.alg), c.signer);
    const s = c.signatureEncoding === 'canonical' ? signature : encode(Buffer.from(signature, 'base64url'), c.signatureEncoding);
    return `${input}.${s}`;
  }

  /** jose with the same policy: issuer selects the keys, kid must match when given, same leeway and clock. */
  async function joseAccepts(token: string): Promise<boolean> {
    const getKey = (header: JWSHeaderParameters, jws: FlattenedJWSInput): Uint8Array | import('node:crypto').KeyObject => {
      const claims = lenientJson(typeof jws.payload === 'string' ? Buffer.from(jws.payload, 'base64url') : Buffer.from(jws.payload));
      if (claims?.iss === HMAC_ISS) {
        if (header.alg !== 'HS256') throw new Error('issuer has only the secret');
        return new TextEncoder().encode(SECRET);
      }
      if (claims?.iss !== ISS) throw new Error('unknown issuer');
      const key = keys[header.alg as 'RS256' | 'ES256' | 'EdDSA'] as TestKey | undefined;
      if (key === undefined || (header.kid !== undefined && header.kid !== key.kid)) throw new Error('no key');
      return key.publicKey;
    };
    try {
      await jwtVerify(token, getKey, {
        algorithms: ['RS256', 'ES256', 'EdDSA', 'HS256'], issuer: [ISS, HMAC_ISS], audience: AUDIENCE,
        clockTolerance: SKEW, currentDate: new Date(NOW * 1000), requiredClaims: ['exp'],
      });
      return true;
    } catch {
      return false;
    }
  }

  /** null when accepted, else the reason's prefix (`expired`, `malformed`, …). */
  function oursRefuses(token: string): string | null {
    const result = verifyJwt(token, policy, NOW * 1000);
    assert.ok(!(result instanceof Promise), 'static keys answer synchronously');
    return result.ok ? null : result.reason.split(':', 1)[0] ?? '';
  }

  it(`agrees with jose on ${RUNS} generated tokens, except where a named stricter rule applies`, async (t) => {
    const seen = { bothAccept: 0, bothRefuse: 0, stricter: new Map<string, number>() };
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const token = build(c);
        const refused = oursRefuses(token);
        const ours = refused === null;
        const jose = await joseAccepts(token);
        if (ours) assert.ok(jose, `accepted a token jose refuses: ${token}`);
        if (ours && jose) seen.bothAccept++;
        else if (!ours && !jose) seen.bothRefuse++;
        else {
          const parsed = parse(token);
          const rules = Object.entries(STRICTER).filter(([, rule]) => rule.applies(parsed) && rule.reasons.includes(refused ?? '')).map(([name]) => name);
          assert.ok(rules.length > 0, `refused (${refused}) a token jose accepts, and no stricter rule explains it: ${token}`);
          for (const rule of rules) seen.stricter.set(rule, (seen.stricter.get(rule) ?? 0) + 1);
        }
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    // The generator must exercise agreement both ways and the stricter rules, or the test proves little.
    assert.ok(seen.bothAccept >= RUNS / 10, `only ${seen.bothAccept} tokens accepted by both`);
    assert.ok(seen.bothRefuse >= RUNS / 10, `only ${seen.bothRefuse} tokens refused by both`);
    const stricter = [...seen.stricter].map(([rule, n]) => `${rule} ${n}`).join(', ');
    t.diagnostic(`both accept ${seen.bothAccept}, both refuse ${seen.bothRefuse}; stricter: ${stricter}`);
    assert.ok(seen.stricter.size >= 5, `stricter rules seen: ${[...seen.stricter.keys()].join(', ')}`);
  });

  it('every stricter rule is documented in docs/authentication.md', async () => {
    const { readFile } = await import('node:fs/promises');
    const doc = await readFile(new URL('../../docs/authentication.md', import.meta.url), 'utf8');
    for (const name of Object.keys(STRICTER)) assert.ok(doc.includes(`\`${name}\``), `docs/authentication.md does not name ${name}`);
  });
});
