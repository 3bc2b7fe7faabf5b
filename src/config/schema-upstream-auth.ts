import { Type } from '@sinclair/typebox';
import { Bytes, formatted, Millis, strict } from './schema-parts.js';

/** How the gateway authenticates itself to a token endpoint (RFC 6749 §2.3, RFC 7523 §2.2). */
export const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const;
export type ClientAuthMethod = (typeof CLIENT_AUTH_METHODS)[number];

const AuthorizationServerUrl = (description: string) => formatted('^https?://[^\\s]+$', 'an https URL like https://as.example.com/oauth2/token (http only on a loopback host)', { maxLength: 2048, description });

/** `upstreams.<name>.auth.clientCredentials`: a token from the OAuth 2.0 client credentials grant (RFC 6749 §4.4) sent to the upstream. */
export const ClientCredentialsSchema = strict({
  tokenEndpoint: Type.Optional(AuthorizationServerUrl('The token endpoint. https, or http on a loopback host only. Exactly one of tokenEndpoint and issuer.')),
  issuer: Type.Optional(AuthorizationServerUrl('The authorization server\'s issuer: its token endpoint is discovered from its metadata (OpenID Connect discovery, then RFC 8414) on first use. https, or http on a loopback host only.')),
  clientId: Type.String({ minLength: 1, maxLength: 256, description: 'The gateway\'s client id at the authorization server.' }),
  clientSecret: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'The client secret (client_secret_basic, client_secret_post). Put it in the environment: clientSecret: ${CC_SECRET}.' })),
  privateKeyJwt: Type.Optional(strict({
    file: Type.String({ minLength: 1, maxLength: 4096, description: 'The private key (PEM, PKCS#8, unencrypted: EC P-256/P-384/P-521, RSA or Ed25519), a path relative to the config file.' }),
    kid: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Key id put in the client assertion\'s header, as registered at the authorization server.' })),
  }, 'The key of private_key_jwt client authentication (RFC 7523): the gateway signs a short client assertion with it.')),
  clientAuth: Type.Optional(Type.Unsafe<ClientAuthMethod>({ type: 'string', enum: [...CLIENT_AUTH_METHODS], description: 'How the gateway authenticates at the token endpoint. Default client_secret_basic with clientSecret, private_key_jwt with privateKeyJwt.' })),
  scope: Type.Optional(formatted('^[\\x21\\x23-\\x5b\\x5d-\\x7e]+( [\\x21\\x23-\\x5b\\x5d-\\x7e]+)*$', 'scopes separated by single spaces (printable ASCII without `"` or `\\`)', { maxLength: 2048, description: 'The scope asked for (space-separated). Default none: the authorization server\'s default.' })),
  audience: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'Sent as the `audience` parameter (Auth0 and others name the API so). Default none.' })),
  resource: Type.Optional(formatted('^[A-Za-z][A-Za-z0-9+.-]*:[^\\s#]+$', 'an absolute URI without a fragment, like https://billing.example.com', { maxLength: 2048, description: 'Sent as the `resource` parameter (RFC 8707 resource indicator). Default none.' })),
  refreshBeforeMs: Type.Optional(Millis('A token is renewed this long before it expires (in the background, while the current one is still sent), or at half its lifetime when that is later. Default 60000.', 0)),
  timeoutMs: Type.Optional(Millis('Bound on one call to the token endpoint (or the discovery document), connect to last byte. Default 5000.')),
  maxResponseBytes: Type.Optional(Bytes('Largest token endpoint (or discovery) response accepted. Default 65536.')),
}, 'Obtains an access token with the client credentials grant and sends it upstream as Authorization: Bearer; the client\'s own Authorization never reaches the upstream.');

export const UpstreamAuthSchema = strict({
  clientCredentials: ClientCredentialsSchema,
}, 'How the gateway authenticates itself to this upstream.');
