import type { TSchema } from '@sinclair/typebox';

/**
 * One kind of configurable part (an authenticator type, a limit algorithm, a store backend): its
 * schema, its documented defaults and its compile function, exported together from the kind's own
 * folder and registered by one row in its family's table. The config schema, the JSON Schema and
 * the configuration reference are built from or checked against these tables, so a default cannot
 * be one value in code and another in the docs.
 */
export interface Kind<Raw, Built, Context> {
  /** The value that selects this kind in config (`type: jwt`, `algorithm: gcra`, `store: redis`). */
  readonly type: string;
  /** The schema of this kind's options (the selector included). */
  readonly schema: TSchema;
  /** Every option's default, by option name; the docs page lists the same values. */
  readonly defaults: Readonly<Record<string, unknown>>;
  /** The docs page (relative to the repository root) that documents this kind's options. */
  readonly docs: string;
  /** Builds the runtime part from validated options. Pure: opens nothing (see Resource). */
  compile(raw: Raw, context: Context): Built;
}
