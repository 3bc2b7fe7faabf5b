import type { TargetOptions } from '../http/target.js';
import type { HeaderMode } from '../ratelimit/headers.js';
import type { Router } from '../routing/router.js';
import { auditReady, expect, forwardedFor, framing, headerAmbiguity, headerCount, host, methodOverride, route, target, upgrade } from '../stages/edge.js';
import { corsHeaders } from '../stages/cors.js';
import { http2Request } from '../stages/http2-request.js';
import { connectionClose, rateLimitHeaders, requestIdHeader, securityHeaders } from '../stages/response-headers.js';
import type { SecurityHeaderSet } from '../http/security-headers.js';
import type { RequestTrace } from '../observability/tracing/request-trace.js';
import type { Exchange, ResponseStage, Route, Stage, StageResult } from './exchange.js';

/**
 * The request path, in order: this file is the one place that says which step comes when.
 *
 * 1. Before any stage, the header pass (http/headers.ts) has removed every header a client may not
 *    assert and fixed the request id and client address (server/handle-request.ts).
 * 2. Edge stages, for every request, end with routing.
 * 3. The matched route's stages (`routeStages`), features the route does not configure absent,
 *    forwarding last (or, on a route with `serve`, the gateway's own endpoint in its place).
 * 4. Response stages, on every response the exchange sends: a denial, a stage's own response, or
 *    the upstream's.
 *
 * A CORS preflight is routed by the method it asks about (see the `route` stage), and a route with
 * a CORS policy answers it first, before its limits and authentication.
 *
 * Any stage may end the request with a denial or a response of its own; nothing is forwarded after
 * that. `explain` runs these same lists.
 */

/** What the edge and response stages are built from: the compiled config provides it. */
export interface RequestPathSettings {
  readonly target: TargetOptions;
  readonly limits: { readonly maxHeaderCount: number; readonly maxHeaderBytes: number };
  readonly router: Router<Route>;
  readonly requestIdHeader: string;
  readonly rateLimiting: { readonly headers: HeaderMode };
  /** The top-level security response headers (a matched route has its own). */
  readonly securityHeaders: SecurityHeaderSet;
  /** Whether a listener serves HTTP/2 (its requests then get the `http2` stage). */
  readonly listen: { readonly https: { readonly http2: object | null } | null };
  /** The top-level `ipRules`, checked on every request once its client address is known; null without them. */
  readonly ipRules: Stage | null;
}

export interface RequestPath {
  readonly edge: readonly Stage[];
  readonly response: readonly ResponseStage[];
}

/** The edge and response stages of one config; `auditHealthy` is the running gateway's (always true in `explain`). */
export function requestPath(settings: RequestPathSettings, auditHealthy: () => boolean): RequestPath {
  return Object.freeze({
    edge: Object.freeze([
      forwardedFor,
      ...(settings.ipRules === null ? [] : [settings.ipRules]),
      auditReady(auditHealthy),
      ...((settings.listen.https?.http2 ?? null) === null ? [] : [http2Request(settings.limits.maxHeaderBytes)]),
      target(settings.target),
      headerCount(settings.limits.maxHeaderCount),
      host,
      framing,
      upgrade,
      expect,
      headerAmbiguity,
      route(settings.router),
      methodOverride,
    ]),
    response: Object.freeze([
      requestIdHeader(settings.requestIdHeader),
      rateLimitHeaders(settings.rateLimiting.headers),
      connectionClose,
      securityHeaders(settings.securityHeaders),
      corsHeaders,
    ]),
  });
}

/** The stages a route configures; compile builds each, absent when the route does not use it. */
export interface RouteParts {
  /** The route's own `ipRules`, before anything else (a preflight from a refused address is refused too). */
  readonly ipRules?: Stage | null;
  /** Answers CORS preflights (never forwarded, before authentication: browsers send no credentials on them). */
  readonly corsPreflight: Stage | null;
  /** Declared body size, media type, bodies on methods without body semantics. */
  readonly requestLimits: Stage;
  /** Limits that count by address, route or header: before authentication, so they also slow credential guessing. */
  readonly limitsByAddress: Stage | null;
  /** Refuses an address the brute-force guard has blocked, before its credential is looked at. */
  readonly bruteForceGate: Stage | null;
  readonly authenticate: Stage | null;
  /** RFC 8705: a token that authenticated must be bound to the connection's client certificate. */
  readonly certificateBinding?: Stage | null;
  /** Limits and quotas that count by identity (subject, key, tenant, claim, tier). */
  readonly limitsByIdentity: Stage | null;
  readonly authorize: Stage | null;
  /** The route's attribute rules (`when`): expressions over the request and identity, all of which must hold (403 policy_denied naming the rule). */
  readonly rules?: Stage | null;
  /**
   * Request validation (`validate`): content type and charset, parameters, and the body against
   * its schema, received whole (at most the route's maxBodyBytes) and kept in `ex.body` for forwarding.
   * After authorization, so only a caller allowed here learns what the contract expects.
   */
  readonly validate?: Stage | null;
  /** Asserts the verified identity upstream and drops the credential headers. */
  readonly identityHeaders: Stage | null;
  /** Signs the verified identity as a short-lived JWT for the upstream (`assertIdentity`). */
  readonly identityAssertion?: Stage | null;
  /** The gateway's own token for an upstream with auth (client credentials), in place of the client's Authorization. */
  readonly upstreamCredential?: Stage | null;
  /** Sends the request upstream and relays the response. */
  readonly forward: Stage;
}

export function routeStages(parts: RouteParts): readonly Stage[] {
  const order = [
    parts.ipRules ?? null,
    parts.corsPreflight,
    parts.requestLimits,
    parts.limitsByAddress,
    parts.bruteForceGate,
    parts.authenticate,
    parts.certificateBinding ?? null,
    parts.limitsByIdentity,
    parts.authorize,
    parts.rules ?? null,
    parts.validate ?? null,
    parts.identityHeaders,
    parts.identityAssertion ?? null,
    parts.upstreamCredential ?? null,
    parts.forward,
  ];
  return Object.freeze(order.filter((s): s is Stage => s !== null));
}

/**
 * Runs stages in order from `start` until one returns a verdict or the list ends. Synchronous
 * stages run without a promise; the first asynchronous one continues the rest asynchronously.
 * `ex.stage` names the stage running, so after a verdict (or a throw) it names the one that decided.
 */
export function runStages(stages: readonly Stage[], ex: Exchange, start = 0): StageResult | Promise<StageResult> {
  // Tracing off (the default) costs this one check per call.
  if (ex.trace !== null && ex.trace.sampled) return runTracedStages(stages, ex, start, ex.trace);
  for (let i = start; i < stages.length; i++) {
    const stage = stages[i] as Stage;
    ex.stage = stage.name;
    const result = stage.run(ex);
    if (result instanceof Promise) return result.then((r) => (r === undefined ? runStages(stages, ex, i + 1) : r));
    if (result !== undefined) return result;
  }
  return undefined;
}

/** runStages for a sampled request: the same order and fast path, with a span around each stage run. */
function runTracedStages(stages: readonly Stage[], ex: Exchange, start: number, trace: RequestTrace): StageResult | Promise<StageResult> {
  for (let i = start; i < stages.length; i++) {
    const stage = stages[i] as Stage;
    ex.stage = stage.name;
    const span = trace.beginStage(stage.name);
    let result: StageResult | Promise<StageResult>;
    try {
      result = stage.run(ex);
    } catch (err) {
      trace.endStage(span, null, true);
      throw err;
    }
    if (result instanceof Promise) {
      return result.then((r) => {
        trace.endStage(span, r?.code ?? null);
        return r === undefined ? runTracedStages(stages, ex, i + 1, trace) : r;
      }, (err: unknown) => {
        trace.endStage(span, null, true);
        throw err;
      });
    }
    trace.endStage(span, result?.code ?? null);
    if (result !== undefined) return result;
  }
  return undefined;
}
