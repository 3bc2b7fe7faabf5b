import { createPrivateKey } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { strict } from '../../config/schema-parts.js';
import type { AuthenticatorCompileContext } from '../authenticator-kind.js';
import { webCryptoAlgorithm, type ClientAuthMethod } from '../introspection/introspection-endpoint.js';

/**
 * How an authenticator authenticates itself at its authorization server (introspection, an
 * OpenID provider's token endpoint): the options every such kind spreads into its schema.
 */
export const CLIENT_AUTH_FIELDS = {
  clientSecret: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'The client secret (client_secret_basic, client_secret_post). Put it in the environment: ${CLIENT_SECRET}.' })),
  clientAuth: Type.Optional(Type.Unsafe<ClientAuthMethod>({ type: 'string', enum: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'], description: 'How the gateway authenticates to the authorization server. Default client_secret_basic.' })),
  privateKey: Type.Optional(strict({
    file: Type.String({ minLength: 1, description: 'A PKCS#8 PEM private key file (EC P-256/P-384/P-521, Ed25519 or RSA), relative to the config file.' }),
    kid: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'The key id of the key at the authorization server.' })),
  }, 'private_key_jwt: the key that signs the client assertions (RFC 7523).')),
};

/** The client authentication options as written (validated by the kind's schema). */
export interface RawClientAuthentication {
  readonly clientSecret?: string;
  readonly clientAuth?: ClientAuthMethod;
  readonly privateKey?: { readonly file: string; readonly kid?: string };
}

/** The client authentication, compiled: the method and what it sends or signs with. */
export interface ClientAuthentication {
  readonly clientAuth: ClientAuthMethod;
  readonly clientSecret: string | null;
  /** private_key_jwt: the PKCS#8 PEM and its key id. */
  readonly privateKey: { readonly pem: string; readonly kid: string | null } | null;
}

/**
 * Compiles the client authentication options: a secret for client_secret_basic and
 * client_secret_post (default client_secret_basic), a readable key that can sign assertions for
 * private_key_jwt, never both. Problems are located at the option; null when there were any.
 */
export function compileClientAuthentication(a: RawClientAuthentication, context: Pick<AuthenticatorCompileContext, 'at' | 'loaded' | 'problems'>): ClientAuthentication | null {
  const { at, loaded, problems } = context;
  const before = problems.length;
  const clientAuth = a.clientAuth ?? 'client_secret_basic';
  let privateKey: ClientAuthentication['privateKey'] = null;
  if (clientAuth === 'private_key_jwt') {
    if (a.privateKey === undefined) problems.push(loaded.problem(at('privateKey'), 'is required with clientAuth: private_key_jwt: { file: keys/gateway.pem, kid: <key id> }'));
    else {
      const read = loaded.files.readText(a.privateKey.file);
      if (!read.ok) problems.push(loaded.problem(at('privateKey', 'file'), read.message));
      else {
        const problem = privateKeyProblem(read.text);
        if (problem !== null) problems.push(loaded.problem(at('privateKey', 'file'), problem));
        else privateKey = { pem: read.text, kid: a.privateKey.kid ?? null };
      }
    }
    if (a.clientSecret !== undefined) problems.push(loaded.problem(at('clientSecret'), 'is not used with clientAuth: private_key_jwt; remove it (or choose client_secret_basic or client_secret_post)'));
  } else {
    if (a.clientSecret === undefined) problems.push(loaded.problem(at('clientSecret'), `is required with clientAuth: ${clientAuth} (from the environment: \${CLIENT_SECRET}), or use clientAuth: private_key_jwt with privateKey`));
    if (a.privateKey !== undefined) problems.push(loaded.problem(at('privateKey'), `is used with clientAuth: private_key_jwt only, not ${clientAuth}`));
  }
  return problems.length > before ? null : { clientAuth, clientSecret: a.clientSecret ?? null, privateKey };
}

/** Why a PEM cannot sign client assertions, or null. */
export function privateKeyProblem(pem: string): string | null {
  try {
    const key = createPrivateKey(pem);
    return webCryptoAlgorithm(key.asymmetricKeyType, key.asymmetricKeyDetails?.namedCurve) === null
      ? `a ${key.asymmetricKeyType ?? 'secret'} key cannot sign client assertions: use an EC (P-256, P-384, P-521), Ed25519 or RSA private key`
      : null;
  } catch (err) {
    return `is not a PEM private key: ${(err as Error).message}`;
  }
}
