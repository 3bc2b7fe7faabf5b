import type { ConfigProblem } from '../config/errors.js';
import type { Kind } from '../config/kind.js';
import type { ConfigSource } from '../config/config-source.js';
import type { Clock } from '../lib/clock.js';
import type { UseResource } from '../lifecycle/resources.js';
import type { Authenticator } from './authenticator.js';
import type { RawApiKeys } from './api-key/api-keys-section.js';
import type { OAuthServices } from './oauth/oauth-services.js';

/** A location under `authenticators.<name>`. */
export type At = (...path: (string | number)[]) => (string | number)[];

/** What compiling one named authenticator may read and report. */
export interface AuthenticatorCompileContext {
  readonly name: string;
  /** Locates an option of this authenticator for a problem. */
  readonly at: At;
  /** The config's `apiKeys` section (shared by every apiKey authenticator). */
  readonly apiKeys: RawApiKeys | undefined;
  readonly loaded: ConfigSource;
  readonly dataDir: string;
  /** Problems found, each with its location; compile returns null when it added any. */
  readonly problems: ConfigProblem[];
  /** Header names an authenticator may not take (identity headers, framing, forwarding, request id). */
  readonly reserved: ReadonlySet<string>;
  readonly clock: Clock;
  /** Compiled for `start --workers` (the primary's check, or a worker): state kept in one process's memory is not the host's. */
  readonly inWorker: boolean;
  /** Whether the HTTPS listener asks clients for certificates (`listen.https.clientAuth`). */
  readonly clientCertificates: boolean;
  /**
   * The resource with this key: one already used by this config, else the running one of an equal
   * definition, else `create()`. Every resource obtained here is started with the config.
   */
  readonly use: UseResource;
  /** Token digests and revocations, shared by every bearer-token authenticator of the config. */
  readonly oauth: OAuthServices;
  /** A value compiled once per config and shared by every authenticator that asks (a shared config section). */
  readonly shared: <T>(key: string, build: () => T) => T;
}

/** An authenticator kind: `type: <type>` in config, its options, their defaults, and its compile function. */
// The raw options are validated by `schema` before compile sees them. As a table entry (`Raw` left
// out) a kind accepts options of its own shape only, which the table's caller vouches for.
export type AuthenticatorKind<Raw = never> = Kind<Raw, Authenticator | null, AuthenticatorCompileContext>;

/** Declares a kind with its raw type checked against its compile function. */
export function authenticatorKind<Raw>(kind: AuthenticatorKind<Raw>): AuthenticatorKind<Raw> {
  return Object.freeze(kind);
}
