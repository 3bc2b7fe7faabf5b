import { Type, type Static } from '@sinclair/typebox';
import { formatted, HeaderName, Realm, strict } from '../../config/schema-parts.js';
import { authenticatorKind, type AuthenticatorCompileContext } from '../authenticator-kind.js';
import { ApiKeyAuthenticator } from './api-key-authenticator.js';
import { compileApiKeysSection } from './api-keys-section.js';

/** The options of `type: apiKey`. */
export const ApiKeyAuthenticatorSchema = strict({
  type: Type.Literal('apiKey'),
  header: Type.Optional(HeaderName({ description: 'Header that carries the key. Default x-api-key.' })),
  authorizationScheme: Type.Optional(Type.Boolean({ description: 'Also accept `Authorization: ApiKey <key>`. Default true.' })),
  queryParam: Type.Optional(formatted('^[A-Za-z0-9_.-]{1,64}$', 'a query parameter name of letters, digits, `_`, `.` and `-`, up to 64 characters', { description: 'Query parameter read on routes with apiKeyInQuery. Default api_key.' })),
  realm: Type.Optional(Realm),
}, 'Verifies API keys issued by `portcullis keys create` (header X-API-Key by default). Keys live in the apiKeys store.');

export type RawApiKeyAuthenticator = Static<typeof ApiKeyAuthenticatorSchema>;

/** Documented defaults of `type: apiKey`; docs/api-keys.md lists the same values. */
export const API_KEY_DEFAULTS = Object.freeze({
  header: 'x-api-key',
  authorizationScheme: true,
  queryParam: 'api_key',
  realm: 'portcullis',
});

/** The name under which the apiKeys section's backend is shared by the authenticators of one config. */
export const API_KEYS_SHARED = 'apiKeys';

/** API keys from the apiKeys store, in a header, `Authorization: ApiKey` or (where a route allows) the query. */
export const apiKeyKind = authenticatorKind<RawApiKeyAuthenticator>({
  type: 'apiKey',
  schema: ApiKeyAuthenticatorSchema,
  defaults: API_KEY_DEFAULTS,
  docs: 'docs/api-keys.md',
  compile: compileApiKeyAuthenticator,
});

function compileApiKeyAuthenticator(a: RawApiKeyAuthenticator, context: AuthenticatorCompileContext): ApiKeyAuthenticator | null {
  const { name, at, loaded, reserved, problems } = context;
  const header = (a.header ?? API_KEY_DEFAULTS.header).toLowerCase();
  if (reserved.has(header) || header === 'authorization') {
    problems.push(loaded.problem(at('header'), `${header} is a header the gateway sets or relies on; choose another name`));
    return null;
  }
  const backend = context.shared(API_KEYS_SHARED, () => compileApiKeysSection(context.apiKeys, loaded, context.dataDir, problems, context.use));
  if (backend === null) return null;
  return new ApiKeyAuthenticator({
    name,
    realm: a.realm ?? API_KEY_DEFAULTS.realm,
    header,
    authorizationScheme: a.authorizationScheme ?? API_KEY_DEFAULTS.authorizationScheme,
    queryParam: a.queryParam ?? API_KEY_DEFAULTS.queryParam,
  }, backend);
}

