import { Type, type Static } from '@sinclair/typebox';
import type { ConfigProblem } from '../config/errors.js';
import type { ConfigSource } from '../config/config-source.js';
import { formatted, HeaderName, strict } from '../config/schema-parts.js';
import type { Clock } from '../lib/clock.js';
import type { UseResource } from '../lifecycle/resources.js';
import { ASSERTION_ALGORITHMS, GeneratedAssertionKey, generatedKeyPath, parseKeyFile, publicJwk, type AssertionAlgorithm, type AssertionKey } from './assertion-keys.js';
import { AssertionSigner } from './assertion-signer.js';

/** Documented defaults of `identityAssertion` and `routes[].assertIdentity`; docs/configuration.md lists the same values. */
export const ASSERTION_DEFAULTS = Object.freeze({
  algorithm: 'EdDSA',
  ttlSeconds: 30,
  header: 'authorization',
});

/** Longest assertion lifetime: an assertion is a hop's proof, not a session. */
export const MAX_ASSERTION_TTL_SECONDS = 300;

const Kid = formatted('^[A-Za-z0-9._~-]{1,128}$', 'a key id of letters, digits, `.`, `_`, `~` and `-`, up to 128 characters', { description: 'The key id (`kid`) that assertions signed with this key name, and the JWK Set publishes.' });

export const IdentityAssertionSchema = strict({
  issuer: Type.String({ minLength: 1, maxLength: 2048, description: 'The `iss` of every assertion: the name backends expect, such as https://gateway.example.' }),
  algorithm: Type.Optional(Type.Unsafe<AssertionAlgorithm>({ type: 'string', enum: [...ASSERTION_ALGORITHMS], description: 'EdDSA (Ed25519 keys) or ES256 (P-256 keys). Default EdDSA.' })),
  keys: Type.Optional(Type.Array(strict({
    file: Type.String({ minLength: 1, maxLength: 4096, description: 'A PEM key file, relative to the config file: a private key (PKCS #8), or for a key only kept published, its public key (SPKI).' }),
    kid: Kid,
  }, 'A key of the assertion key set.'), {
    minItems: 1, maxItems: 8,
    description: 'The key set: the first key signs, every key is published. Rotate by adding the new key second, reloading, waiting, moving it first, reloading, and later removing the old one (docs/identity-assertion.md). Default: a key made in dataDir at first start.',
  })),
  ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_ASSERTION_TTL_SECONDS, description: 'Lifetime of an assertion in seconds (exp = iat + ttlSeconds), at most 300. Default 30.' })),
}, 'The signed identity assertion the gateway sends upstream on routes with assertIdentity (docs/identity-assertion.md).');

export const AssertIdentitySchema = Type.Unsafe<true | { audience?: string; header?: string }>({
  anyOf: [
    { type: 'boolean', const: true },
    strict({
      audience: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'The `aud` of the assertion. Default the route\'s upstream name.' })),
      header: Type.Optional(HeaderName({ description: 'The request header the assertion is sent in: authorization (as `Bearer <assertion>`, replacing the client\'s credential) or another name (the assertion alone). Default authorization.' })),
    }, 'Where the assertion goes and whom it is for.'),
  ],
  description: 'Send the verified identity upstream as a short-lived JWT signed by the gateway (identityAssertion), besides the identity headers: true, or { audience, header }.',
});

export type RawIdentityAssertion = Static<typeof IdentityAssertionSchema>;

/**
 * The `identityAssertion` section compiled: configured keys are read (through the config's file
 * reader, so the reload watch sees them) and checked against the algorithm here; the generated key
 * is a resource, read or made when the config goes live. Null when the section is absent or has
 * problems (reported under `identityAssertion`).
 */
export function compileIdentityAssertion(
  raw: RawIdentityAssertion | undefined, loaded: ConfigSource, dataDir: string, clock: Clock, use: UseResource, problems: ConfigProblem[],
): AssertionSigner | null {
  if (raw === undefined) return null;
  const algorithm = raw.algorithm ?? ASSERTION_DEFAULTS.algorithm;
  const ttlSeconds = raw.ttlSeconds ?? ASSERTION_DEFAULTS.ttlSeconds;
  if (raw.keys === undefined) {
    const path = generatedKeyPath(dataDir, algorithm);
    const key = use(GeneratedAssertionKey.keyOf(path, algorithm), GeneratedAssertionKey, () => new GeneratedAssertionKey(path, algorithm));
    return new AssertionSigner(raw.issuer, algorithm, ttlSeconds, { kind: 'generated', key }, clock);
  }
  const before = problems.length;
  const keys: AssertionKey[] = [];
  const kids = new Map<string, number>();
  raw.keys.forEach((k, i) => {
    const at = ['identityAssertion', 'keys', i];
    const earlier = kids.get(k.kid);
    if (earlier !== undefined) {
      problems.push(loaded.problem([...at, 'kid'], `kid "${k.kid}" is already the id of key ${earlier}; each key needs an id of its own, or a backend could not tell which key verifies`));
      return;
    }
    kids.set(k.kid, i);
    const read = loaded.files.readText(k.file);
    if (!read.ok) {
      problems.push(loaded.problem([...at, 'file'], `${read.message}: write the path of a PEM key file, absolute or relative to the config file's directory (${loaded.files.baseDir})`));
      return;
    }
    const parsed = parseKeyFile(read.text, algorithm);
    if (!parsed.ok) {
      problems.push(loaded.problem([...at, 'file'], `${k.file} ${parsed.message}${raw.algorithm === undefined ? ` (identityAssertion.algorithm is ${algorithm} by default)` : ''}`));
      return;
    }
    if (i === 0 && parsed.key.type !== 'private') {
      problems.push(loaded.problem([...at, 'file'], `${k.file} holds a public key, and the first key signs: put a private key (PKCS #8) first, and keep public keys after it only while backends may still hold assertions they signed`));
      return;
    }
    keys.push({ kid: k.kid, privateKey: parsed.key.type === 'private' ? parsed.key : null, jwk: publicJwk(parsed.key, k.kid, algorithm) });
  });
  if (problems.length > before) return null;
  return new AssertionSigner(raw.issuer, algorithm, ttlSeconds, { kind: 'configured', keys }, clock);
}
