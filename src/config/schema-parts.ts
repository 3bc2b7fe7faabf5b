import { Type, type StringOptions, type TSchema } from '@sinclair/typebox';

/**
 * Schema building blocks shared by the config schema and the kinds that bring their own schema
 * (authenticators), kept apart from schema.ts so a kind's folder can use them without importing
 * the whole config schema (which imports the kinds' tables).
 */
export const Millis = (description: string, minimum = 1) => Type.Integer({ minimum, maximum: 86_400_000, description });
export const Bytes = (description: string) => Type.Integer({ minimum: 1, maximum: 1 << 30, description });
export const strict = <T extends Record<string, TSchema>>(props: T, description: string) =>
  Type.Object(props, { additionalProperties: false, description });

/**
 * The keyword that says, in words, what a `pattern` accepts: `must be <what>`. Config errors quote
 * it instead of the regular expression, and editors that read JSON Schema (VS Code, the YAML
 * language server) show it when a value does not match. Every `pattern` in the schema has one
 * (test/config-messages.test.ts walks the schema to check).
 */
export const PATTERN_MESSAGE = 'patternErrorMessage';

/** A string option that must match `pattern`, which `expected` describes ("a duration like 30s, …"). */
export const formatted = (pattern: string, expected: string, options: StringOptions = {}) =>
  Type.String({ ...options, pattern, [PATTERN_MESSAGE]: `must be ${expected}` });

export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';
export const NAME_FORMAT = 'a name of letters, digits, `_`, `.` and `-` that starts with a letter or digit, up to 64 characters';
export const HEADER_NAME_PATTERN = "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$";
export const HEADER_NAME_FORMAT = "an HTTP header name (letters, digits and !#$%&'*+.^_`|~-; no spaces or colons), up to 64 characters";
/** A claim path as a map key (`requiredClaimValues.<path>`): up to 256 characters without control characters. */
export const CLAIM_KEY_PATTERN = '^[^\\x00-\\x1f\\x7f]{1,256}$';
export const CLAIM_KEY_FORMAT = 'a claim path (a name, a dotted path or a JSON pointer like /realm_access/roles) of up to 256 characters without control characters';
export const DURATION_PATTERN = '^[1-9][0-9]{0,5}[smhd]$';
export const DURATION_FORMAT = 'a duration like 30s, 15m, 1h or 1d: a whole number, then s, m, h or d';

/**
 * What the key patterns of named maps (`upstreams.<name>`, `forwardClaims.<header>`) accept, for the
 * error a bad name gets; a pattern used as a map key needs an entry here.
 */
export const KEY_PATTERN_FORMATS: ReadonlyMap<string, string> = new Map([
  [NAME_PATTERN, NAME_FORMAT],
  [HEADER_NAME_PATTERN, HEADER_NAME_FORMAT],
  [CLAIM_KEY_PATTERN, CLAIM_KEY_FORMAT],
]);

/** A name other options refer to: an upstream, authenticator, limit, quota or route. */
export const Name = (options: StringOptions = {}) => formatted(NAME_PATTERN, NAME_FORMAT, { description: 'A name: letters, digits, `_`, `.`, `-`; up to 64 characters.', ...options });
export const HeaderName = (options: StringOptions = {}) => formatted(HEADER_NAME_PATTERN, HEADER_NAME_FORMAT, { description: 'An HTTP header field name.', ...options });
export const Duration = (description: string) => formatted(DURATION_PATTERN, DURATION_FORMAT, { description });
export const Realm = formatted('^[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]{1,64}$', 'up to 64 printable ASCII characters without `"` or `\\`', { description: 'Realm in WWW-Authenticate challenges. Default portcullis.' });
export const ClaimPath = Type.String({ minLength: 1, maxLength: 256, description: 'A claim name, a dot-separated path into nested claims (realm_access.roles; a literal top-level name wins), or a JSON pointer (RFC 6901) starting with / (/resource_access/orders.api/roles; ~1 stands for /, ~0 for ~).' });
