import { Type, type Static } from '@sinclair/typebox';
import { formatted, strict } from '../../config/schema-parts.js';
import { authenticatorKind } from '../authenticator-kind.js';
import { anonymousAuthenticator } from './anonymous-authenticator.js';

/** The options of `type: anonymous`. */
export const AnonymousAuthenticatorSchema = strict({
  type: Type.Literal('anonymous'),
  subject: Type.Optional(formatted('^[\\x20-\\x7e]{1,256}$', '1 to 256 printable ASCII characters', { description: 'Subject given to anonymous requests. Default anonymous.' })),
}, 'Admits requests without a credential as a fixed identity. Must be last in a route\'s list.');

export type RawAnonymousAuthenticator = Static<typeof AnonymousAuthenticatorSchema>;

/** Documented defaults of `type: anonymous`; docs/authentication.md lists the same values. */
export const ANONYMOUS_DEFAULTS = Object.freeze({
  subject: 'anonymous',
});

/** Requests without a credential, admitted as one fixed identity (stateless: no resource, no shared section). */
export const anonymousKind = authenticatorKind<RawAnonymousAuthenticator>({
  type: 'anonymous',
  schema: AnonymousAuthenticatorSchema,
  defaults: ANONYMOUS_DEFAULTS,
  docs: 'docs/authentication.md',
  compile: (raw, context) => anonymousAuthenticator(context.name, raw.subject ?? ANONYMOUS_DEFAULTS.subject),
});
