import { secureUrlProblem } from '../../lib/secure-url.js';
import { Type, type Static } from '@sinclair/typebox';
import { Bytes, formatted, Millis, Realm, strict } from '../../config/schema-parts.js';
import type { ConfigSource } from '../../config/config-source.js';
import { authenticatorKind, type AuthenticatorCompileContext } from '../authenticator-kind.js';
import { CLAIM_RULE_DEFAULTS, CLAIM_RULE_FIELDS, compileClaimRules } from '../claims/claim-rules.js';
import { isHmac, JWS_ALGORITHMS, type JwsAlgorithm, type VerifyKey } from './algorithms.js';
import { JwtAuthenticator } from './jwt-authenticator.js';
import type { IssuerKeys } from './jwt-verifier.js';
import { importJwks, importPem, importSecret, StaticKeys } from './key-source.js';
import { RemoteJwks } from './remote-jwks.js';

const JwtKeyFields = {
  jwksUri: Type.Optional(formatted('^https?://[^\\s]+$', 'an https URL like https://idp.example.com/.well-known/jwks.json (http only on a loopback host)', { maxLength: 2048, description: 'URL of the issuer\'s JWK Set. https, or http on a loopback host only.' })),
  jwksFile: Type.Optional(Type.String({ minLength: 1, description: 'A local JWK Set file, relative to the config file. Read at load and on reload.' })),
  publicKeys: Type.Optional(Type.Array(strict({
    pem: Type.Optional(Type.String({ minLength: 1, description: 'A PEM public key (SPKI) or certificate, inline.' })),
    file: Type.Optional(Type.String({ minLength: 1, description: 'A PEM file, relative to the config file.' })),
    kid: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Key id; tokens naming another kid do not use this key.' })),
  }, 'One PEM public key: `pem` or `file`.'), { minItems: 1, maxItems: 100, description: 'PEM public keys (SPKI or X.509 certificates).' })),
  secret: Type.Optional(Type.String({ minLength: 32, description: 'HMAC shared secret for HS256/384/512, at least 32 bytes. Put it in the environment: secret: ${JWT_SECRET}.' })),
};

const JwtIssuerSchema = strict({
  issuer: Type.String({ minLength: 1, maxLength: 2048, description: 'The exact `iss` value (no normalisation: a trailing slash matters).' }),
  ...JwtKeyFields,
}, 'A trusted issuer and its keys: exactly one of jwksUri, jwksFile, publicKeys, secret.');

/** The options of `type: jwt`. */
export const JwtAuthenticatorSchema = strict({
  type: Type.Literal('jwt'),
  issuer: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'Single-issuer form: the exact `iss` value, with one key source beside it.' })),
  ...JwtKeyFields,
  issuers: Type.Optional(Type.Array(JwtIssuerSchema, { minItems: 1, maxItems: 32, description: 'Several issuers, each with its own keys. The token\'s `iss` selects one.' })),
  audience: Type.Unsafe<string | string[]>({ type: ['string', 'array'], minLength: 1, minItems: 1, maxItems: 32, items: { type: 'string', minLength: 1 }, description: 'Accepted `aud` value(s); the token\'s aud must contain one. Required.' }),
  algorithms: Type.Array(Type.Unsafe<JwsAlgorithm>({ type: 'string', enum: [...JWS_ALGORITHMS] }), { minItems: 1, uniqueItems: true, description: 'Allowed JWS algorithms; each is bound to its key type. `none` does not exist here.' }),
  clockSkewMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 300000, description: 'Leeway for exp, nbf and iat. Default 30000.' })),
  requireExp: Type.Optional(Type.Boolean({ description: 'Reject tokens without `exp`. Default true.' })),
  typ: Type.Optional(formatted('^[A-Za-z0-9.+/-]{1,64}$', 'a token type like at+jwt or JWT: letters, digits, `.`, `+`, `/`, `-`, up to 64 characters', { description: 'Required `typ` header, e.g. at+jwt (RFC 9068); compared case-insensitively, `application/` optional.' })),
  maxTokenBytes: Type.Optional(Type.Integer({ minimum: 256, maximum: 65536, description: 'Longest token accepted. Default 8192.' })),
  ...CLAIM_RULE_FIELDS,
  cacheMaxEntries: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'Verified tokens remembered so repeats skip signature checks; 0 turns the cache off. Default 10000.' })),
  realm: Type.Optional(Realm),
  jwks: Type.Optional(strict({
    timeoutMs: Type.Optional(Millis('Whole JWKS fetch, connect to last byte. Default 5000.')),
    maxBytes: Type.Optional(Bytes('Largest JWKS response. Default 262144.')),
    refreshMs: Type.Optional(Millis('Background refresh period. Default 300000.', 1000)),
    cooldownMs: Type.Optional(Millis('Least time between fetches caused by unknown kids; also the retry delay after a failure. Default 30000.', 100)),
  }, 'Remote JWK Set fetching.')),
}, 'Verifies bearer JWTs.');

export type RawJwtAuthenticator = Static<typeof JwtAuthenticatorSchema>;

/** Documented defaults of `type: jwt`, by option path; docs/authentication.md lists the same values. */
export const JWT_DEFAULTS = Object.freeze({
  clockSkewMs: 30_000,
  requireExp: true,
  maxTokenBytes: 8192,
  cacheMaxEntries: 10_000,
  realm: 'portcullis',
  ...CLAIM_RULE_DEFAULTS,
  'jwks.timeoutMs': 5000,
  'jwks.maxBytes': 262_144,
  'jwks.refreshMs': 300_000,
  'jwks.cooldownMs': 30_000,
});

/** Bearer JWTs verified against each issuer's keys (remote JWK Set, file, PEM keys or shared secret). */
export const jwtKind = authenticatorKind<RawJwtAuthenticator>({
  type: 'jwt',
  schema: JwtAuthenticatorSchema,
  defaults: JWT_DEFAULTS,
  docs: 'docs/authentication.md',
  compile: compileJwt,
});

function compileJwt(a: RawJwtAuthenticator, context: AuthenticatorCompileContext): JwtAuthenticator | null {
  const { name, at, loaded, problems } = context;
  const before = problems.length;
  const single = a.issuer !== undefined || keyFieldsOf(a).length > 0;
  if (a.issuers !== undefined && single) problems.push(loaded.problem(at('issuers'), 'use either issuer with its keys, or issuers, not both'));
  if (a.issuers === undefined && a.issuer === undefined) problems.push(loaded.problem(at('issuer'), 'is required (or list issuers)'));
  const specs = a.issuers?.map((spec, i) => ({ spec, at: (...p: (string | number)[]) => at('issuers', i, ...p) }))
    ?? (a.issuer === undefined ? [] : [{ spec: { ...a, issuer: a.issuer }, at }]);

  const algorithms = a.algorithms;
  const jwks = a.jwks ?? {};
  const issuers = new Map<string, IssuerKeys>();
  for (const { spec, at: issuerAt } of specs) {
    if (issuers.has(spec.issuer)) { problems.push(loaded.problem(issuerAt('issuer'), `issuer ${spec.issuer} is listed twice`)); continue; }
    const fields = keyFieldsOf(spec);
    if (fields.length !== 1) {
      problems.push(loaded.problem(fields.length === 0 ? issuerAt('issuer') : issuerAt(fields[1] ?? fields[0] ?? 'issuer'),
        `issuer ${spec.issuer} needs exactly one key source: jwksUri, jwksFile, publicKeys or secret${fields.length > 1 ? ` (found ${fields.join(', ')})` : ''}`));
      continue;
    }
    const usable = spec.secret !== undefined ? algorithms.filter(isHmac) : algorithms.filter((alg) => !isHmac(alg));
    if (usable.length === 0) {
      problems.push(loaded.problem(at('algorithms'), spec.secret !== undefined
        ? `issuer ${spec.issuer} has a shared secret, but algorithms allows no HS256/HS384/HS512`
        : `issuer ${spec.issuer} has public keys, but algorithms allows only HMAC (which needs a secret)`));
      continue;
    }
    const fail = (path: (string | number)[], message: string) => { problems.push(loaded.problem(path, message)); };
    let source: IssuerKeys['source'] | null = null;
    if (spec.jwksUri !== undefined) {
      const problem = secureUrlProblem(spec.jwksUri, 'https://idp.example.com/.well-known/jwks.json');
      if (problem !== null) fail(issuerAt('jwksUri'), problem);
      else {
        const options = {
          uri: spec.jwksUri, algorithms: usable,
          timeoutMs: jwks.timeoutMs ?? JWT_DEFAULTS['jwks.timeoutMs'],
          maxBytes: jwks.maxBytes ?? JWT_DEFAULTS['jwks.maxBytes'],
          refreshMs: jwks.refreshMs ?? JWT_DEFAULTS['jwks.refreshMs'],
          cooldownMs: jwks.cooldownMs ?? JWT_DEFAULTS['jwks.cooldownMs'],
        };
        source = context.use(RemoteJwks.keyOf(options), RemoteJwks, () => new RemoteJwks(options));
      }
    } else if (spec.jwksFile !== undefined) {
      const keys = readKeyFile(loaded, spec.jwksFile, (text) => {
        let doc: unknown;
        try { doc = JSON.parse(text); } catch (err) { return `is not JSON: ${(err as Error).message}`; }
        const imported = importJwks(doc, usable);
        return typeof imported === 'string' ? imported : imported.keys;
      });
      if (typeof keys === 'string') fail(issuerAt('jwksFile'), keys);
      else source = new StaticKeys(keys);
    } else if (spec.publicKeys !== undefined) {
      const keys: VerifyKey[] = [];
      spec.publicKeys.forEach((k, i) => {
        if ((k.pem === undefined) === (k.file === undefined)) { fail(issuerAt('publicKeys', i), 'set exactly one of pem and file'); return; }
        const key = k.pem !== undefined ? importPem(k.pem, usable, k.kid ?? null) : readKeyFile(loaded, k.file ?? '', (text) => importPem(text, usable, k.kid ?? null));
        if (typeof key === 'string') fail(issuerAt('publicKeys', i, k.pem !== undefined ? 'pem' : 'file'), key);
        else keys.push(key);
      });
      source = new StaticKeys(keys);
    } else if (spec.secret !== undefined) {
      const key = importSecret(spec.secret, usable);
      if (typeof key === 'string') fail(issuerAt('secret'), key);
      else source = new StaticKeys([key]);
    }
    if (source !== null) issuers.set(spec.issuer, { source, algorithms: new Set(usable) });
  }

  const rules = compileClaimRules(a, context);
  if (rules === null || problems.length > before) return null;

  const typ = a.typ?.toLowerCase();
  return new JwtAuthenticator({
    name,
    realm: a.realm ?? JWT_DEFAULTS.realm,
    policy: {
      algorithms: new Set(algorithms),
      issuers,
      audiences: new Set(typeof a.audience === 'string' ? [a.audience] : a.audience),
      clockSkewSec: Math.ceil((a.clockSkewMs ?? JWT_DEFAULTS.clockSkewMs) / 1000),
      requireExp: a.requireExp ?? JWT_DEFAULTS.requireExp,
      typ: typ === undefined ? null : typ.startsWith('application/') ? typ.slice('application/'.length) : typ,
      maxTokenBytes: a.maxTokenBytes ?? JWT_DEFAULTS.maxTokenBytes,
    },
    rules,
    cacheMaxEntries: a.cacheMaxEntries ?? JWT_DEFAULTS.cacheMaxEntries,
    clock: context.clock,
    revocations: context.oauth.revocations,
    digester: context.oauth.digester,
  });
}

type KeyFields = Pick<RawJwtAuthenticator, 'jwksUri' | 'jwksFile' | 'publicKeys' | 'secret'>;

function keyFieldsOf(spec: KeyFields): string[] {
  return (['jwksUri', 'jwksFile', 'publicKeys', 'secret'] as const).filter((f) => spec[f] !== undefined);
}

/** A key file through the config's file reader, so its content is part of the config version. */
function readKeyFile<T>(loaded: ConfigSource, file: string, parse: (text: string) => T | string): T | string {
  const read = loaded.files.readText(file);
  return read.ok ? parse(read.text) : read.message;
}

