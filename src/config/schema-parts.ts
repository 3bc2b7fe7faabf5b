import { Type, type TSchema } from '@sinclair/typebox';

/**
 * Schema building blocks shared by the config schema and the kinds that bring their own schema
 * (authenticators), kept apart from schema.ts so a kind's folder can use them without importing
 * the whole config schema (which imports the kinds' tables).
 */
export const Millis = (description: string, minimum = 1) => Type.Integer({ minimum, maximum: 86_400_000, description });
export const Bytes = (description: string) => Type.Integer({ minimum: 1, maximum: 1 << 30, description });
export const HEADER_NAME_PATTERN = "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$";
export const strict = <T extends Record<string, TSchema>>(props: T, description: string) =>
  Type.Object(props, { additionalProperties: false, description });
export const Realm = Type.String({ pattern: '^[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]{1,64}$', description: 'Realm in WWW-Authenticate challenges. Default portcullis.' });
export const ClaimPath = Type.String({ minLength: 1, maxLength: 256, description: 'A claim name, or a dot-separated path into nested claims (realm_access.roles). A literal top-level name wins over a path.' });
