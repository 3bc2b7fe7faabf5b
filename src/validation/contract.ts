import type { Denial } from '../pipeline/denials.js';
import type { Exchange } from '../pipeline/exchange.js';

/**
 * What a route's request validation checks, compiled at load: from the route's own `validate`
 * options (a JSON Schema for the body) or from an OpenAPI 3.1 operation (its request body, path,
 * query and header parameters). The validate stage applies it; nothing here reads the network.
 */
export interface RequestContract {
  /** Where the contract comes from, for messages: `routes[2].validate` or `openapi.yaml#createOrder`. */
  readonly source: string;
  /** Accepted media types (lower case, no parameters) and each one's charset rule; null: any type (the body is not parsed). */
  readonly mediaTypes: ReadonlyMap<string, MediaTypeRule> | null;
  /** Whether a request must carry a body. */
  readonly bodyRequired: boolean;
  /** Checks a parsed JSON body; null: well-formed JSON within the limits is enough. */
  readonly body: BodyValidator | null;
  /** Checks path, query and header parameters; null: none declared. */
  readonly parameters: ParameterCheck | null;
  /**
   * Header fields (lower case) that single-valued header parameters are read from. The gateway
   * treats them as headers it decides on: one repeated, a second spelling (`X_Count` beside
   * `X-Count`) or a `Connection` naming one is refused, since the upstream would then read another
   * value than the one checked, or none.
   */
  readonly headers: readonly string[];
  /** Structural limits enforced while a JSON body is parsed. */
  readonly json: JsonLimits;
}

export interface MediaTypeRule {
  /** Whether the type is JSON (`application/json`, `application/*+json`): the body is parsed and checked. */
  readonly json: boolean;
  /** Charsets accepted in the `charset` parameter (lower case); null: no charset parameter accepted other than utf-8. */
  readonly charsets: ReadonlySet<string> | null;
}

export interface JsonLimits {
  readonly maxDepth: number;
  readonly maxKeys: number;
  readonly maxStringLength: number;
  readonly maxArrayLength: number;
}

/** A failed check: the JSON pointer of the failing location and a private reason (never a value from the request). */
export interface ValidationFailure {
  readonly pointer: string;
  readonly reason: string;
}

/** Checks a parsed body; null when it conforms. */
export type BodyValidator = (value: unknown) => ValidationFailure | null;

/** Checks the request's parameters (path segments, query, headers); a denial (400 invalid_parameter) or undefined. */
export type ParameterCheck = (ex: Exchange) => Denial | undefined;
