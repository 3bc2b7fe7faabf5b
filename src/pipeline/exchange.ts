import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Identity } from '../authn/identity.js';
import type { CorsPolicy } from '../cors/policy.js';
import type { InboundHeaders } from '../http/headers.js';
import type { SecurityHeaderSet } from '../http/security-headers.js';
import type { Target } from '../http/target.js';
import type { UpstreamSpec } from '../proxy/upstream-spec.js';
import type { LimitDecision } from '../ratelimit/limit-decision.js';
import type { Routable } from '../routing/router.js';
import type { RequestTrace } from '../observability/tracing/request-trace.js';
import type { Denial, DenialCode } from './denials.js';

/**
 * The vocabulary of the request path: the exchange (what is known about one request), a stage (one
 * step that learns something or decides), a route (the stages a matched request goes through) and
 * a verdict (how a stage ends a request). They refer to each other, so they live in one module;
 * everything else imports them from here, and this module imports only leaf types.
 */

/** How a request ended, for the audit record and metrics. */
export type Decision = 'allow' | 'deny' | 'error' | 'abort';

/** An authenticator's verdict on the credential it found: `authenticated`, or the code it refused with. */
export type AuthenticationOutcome = 'authenticated' | DenialCode;

/** A rate limit's or quota's decision: admitted, refused (429), or not decidable and failing closed (503). */
export type LimitOutcome = 'allowed' | 'limited' | 'unavailable';

/**
 * Where stages count the decisions an operator alerts on: the serving gateway's metrics. Label
 * values are bounded: authenticator and limit names come from the config, outcomes from fixed
 * lists. The authenticator is `''` when none of a route's authenticators found its credential.
 */
export interface DecisionTally {
  authentication(authenticator: string, outcome: AuthenticationOutcome): void;
  limit(limit: string, decision: LimitOutcome): void;
  /** An identity assertion signed on `route` with the key `kid` (both from the config). */
  identityAssertion(route: string, kid: string): void;
  /** A request refused by the attribute rule `rule` of `route` (both from the config). */
  rule?(route: string, rule: string): void;
}

/**
 * A response a stage sends itself instead of forwarding: a redirect, a login page, a health
 * answer, an OIDC callback's result. `code` names it in the audit record; `detail` is private.
 */
export interface LocalResponse {
  readonly kind: 'response';
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[]>>;
  readonly body: string;
  readonly code: string;
  readonly detail: string;
  /** How the audit record classes it; absent: allow. A login page saying why a login failed is a deny. */
  readonly decision?: Decision;
}

/** How a stage ends a request: a denial (problem+json) or a response of its own. */
export type Verdict = Denial | LocalResponse;

/** undefined: go on to the next stage. */
export type StageResult = Verdict | undefined;

/**
 * One step of the request path. `run` returns undefined to continue or a Verdict to end the
 * request. It may be async (key fetches, shared stores); synchronous stages return directly so the
 * hot path awaits nothing it does not need to. A thrown error is a bug or an outage: the request
 * fails closed with 500. The name appears in the audit record (`stage`) and in metrics.
 */
export interface Stage {
  readonly name: string;
  run(exchange: Exchange): StageResult | Promise<StageResult>;
  /**
   * How `portcullis explain` runs this stage when `run` would use a store, the network or state
   * shared between requests: what it would do, without doing it. Absent: `run` touches nothing
   * outside the exchange, and explain runs it as is.
   */
  explain?(exchange: Exchange): Explained | Promise<Explained>;
}

/** A stage's result in `explain`, with a note on what it would have done. */
export interface Explained {
  readonly result: StageResult;
  readonly note: string;
  /** The attribute rules the stage evaluated, in order, and whether each held (policy test coverage). */
  readonly rules?: readonly RuleOutcome[];
}

/** One attribute rule evaluated on a request: its name (unique in its route) and whether it held. */
export interface RuleOutcome {
  readonly rule: string;
  readonly held: boolean;
}

/**
 * A step on the way out: adds headers to every response the exchange sends — a denial, a stage's
 * own response, or the upstream's relayed response (`generated` is false only for the last).
 */
export interface ResponseStage {
  readonly name: string;
  apply(exchange: Exchange, headers: OutgoingHttpHeaders, generated: boolean): void;
}

/** A redirect answered by the gateway (302 unless told otherwise). */
export function redirect(location: string, code: string, detail: string, status: 301 | 302 | 303 | 307 | 308 = 302): LocalResponse {
  return { kind: 'response', status, headers: { location, 'cache-control': 'no-store' }, body: '', code, detail };
}

export function isDenial(verdict: Verdict): verdict is Denial {
  return !('kind' in verdict);
}

/** A matched route as the request path sees it: what it matches, its limits, rewrite and stages. */
export interface Route extends Routable {
  readonly name: string;
  /** Position in `routes`, for messages; -1 for a route the gateway adds itself (an oidc authenticator's paths). */
  readonly index: number;
  /** Where a route the gateway adds itself is defined (the option that adds it); absent: `routes[index]`. */
  readonly definedAt?: readonly (string | number)[];
  /** Where requests are forwarded; null on a route the gateway serves itself (`served`). */
  readonly upstream: UpstreamSpec | null;
  /** The endpoint the gateway answers on this route itself (`serve: <name>`), or null: the route forwards. */
  readonly served: string | null;
  readonly public: boolean;
  /** Authenticator names in order, empty on a public route. */
  readonly authenticate: readonly string[];
  /** What an introspection authenticator does when its endpoint cannot answer (`onAuthUnavailable`). */
  readonly onAuthUnavailable: 'failClosed' | 'serveStale';
  readonly stripPrefix: string | null;
  readonly addPrefix: string | null;
  readonly maxBodyBytes: number;
  /** Longest gap in the request body the client may leave (408 / abort after). */
  readonly bodyIdleTimeoutMs: number;
  /** Least request body rate over each bodyIdleTimeoutMs period; 0: idleness only. */
  readonly minBodyBytesPerSecond: number;
  /** Longest time the client may leave its connection full while the response is relayed. */
  readonly writeIdleTimeoutMs: number;
  /** Declared bodies up to this size are received whole before an upstream connection is taken. */
  readonly bufferBodyBytes: number;
  /** Accepted request media types (lower case, no parameters), or null for any. */
  readonly contentTypes: ReadonlySet<string> | null;
  /** Methods without body semantics that may carry a body here (`limits.allowBodyOn`). */
  readonly allowBodyOn: ReadonlySet<string>;
  /** Whether a method-override header is forwarded (to a method this route accepts). */
  readonly allowMethodOverride: boolean;
  /** The security response headers of this route (the top-level ones with the route's own over them). */
  readonly securityHeaders: SecurityHeaderSet;
  /** The route's CORS policy; null: preflights are not answered and upstream CORS headers are relayed. */
  readonly cors: CorsPolicy | null;
  /** The names of the route's attribute rules (`when`), in order; absent or empty: none (policy test coverage reads them). */
  readonly ruleNames?: readonly string[];
  /**
   * The route's stages in request order, forwarding (or the served endpoint) last; features not configured are absent,
   * not no-ops. The order is set in one place: pipeline/request-path.ts.
   */
  readonly stages: readonly Stage[];
}

/** The request line target and headers the upstream receives (assembled by proxy/upstream-request.ts). */
export interface UpstreamRequest {
  /** Path and query. */
  readonly path: string;
  /** Flat `[name, value, …]`. */
  readonly headers: readonly string[];
}

/** What the gateway asserts upstream about the identity, and the credential headers it drops. */
export interface AssertedIdentity {
  /** Flat `[name, value, …]` identity headers. */
  readonly headers: readonly string[];
  /** Lower-case names of inbound headers not forwarded (credentials). */
  readonly strip: ReadonlySet<string>;
}

/**
 * The client side of one exchange: its connection (HTTP/1.x, a Socket) or its own stream of a
 * multiplexed HTTP/2 session. Byte counts are this channel's; destroying it ends this exchange
 * only on HTTP/2 (a reset stream), the whole connection on HTTP/1.x.
 */
export interface ClientChannel {
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly destroyed: boolean;
  /** Its send side is full: the client is not reading (or HTTP/2 flow control holds the stream). */
  readonly writableNeedDrain: boolean;
  destroy(): void;
  /** An HTTP/2 stream's TLS connection (its session's socket); absent on an HTTP/1.x connection, which is its own. */
  readonly connection?: TLSSocket | null;
}

/**
 * The HTTP plumbing of one exchange: the response being written and the client connection. Only
 * the server, the forwarding stage and the reply writer touch it; no stage decides from it.
 */
export class Wire {
  /** Channel bytes written before this response started; the audit record reports the difference. */
  readonly bytesOutBase: number;
  /**
   * The HTTP/1.x client connection, kept here because a destroyed request stream drops its
   * `socket` reference, and the audit record still needs the byte count. Null on HTTP/2: the
   * connection carries other streams, so nothing per connection (ordering, closing) applies.
   */
  readonly socket: Socket | null;
  /** What this exchange reads from and writes to: the connection, or its HTTP/2 stream. */
  readonly channel: ClientChannel;
  /**
   * The TLS connection the request arrived on (an HTTP/2 stream's is its session's), for what the
   * handshake established: the client certificate. Null on a plain connection. Set by openExchange.
   */
  tls: TLSSocket | null = null;
  /** Set when the response has closed (finished, failed or aborted). */
  responseClosed = false;
  /** The record is written once both the response has closed and the pipeline has returned. */
  private unsettled = 2;

  constructor(readonly req: IncomingMessage, readonly res: ServerResponse, readonly responseStages: readonly ResponseStage[], stream: ClientChannel | null = null) {
    this.socket = stream === null ? req.socket : null;
    this.channel = stream ?? req.socket;
    this.bytesOutBase = this.channel.bytesWritten;
  }

  /** Bytes written to the client for this response (headers included on HTTP/1.x; DATA payload on HTTP/2). */
  get bytesOut(): number {
    return this.channel.bytesWritten - this.bytesOutBase;
  }

  /**
   * Counts down the two ends of an exchange (response closed, pipeline returned); true on the
   * last one. Waiting for both lets the pipeline classify a failure (upstream fault vs client
   * abort) before the audit record is written.
   */
  settle(): boolean {
    this.unsettled--;
    return this.unsettled === 0;
  }
}

/**
 * Everything known about one request as it moves through the request path: the request as
 * received, the facts stages learn, and the outcome. Stages read and fill the facts; the audit
 * record and `explain` are rendered from them, and the upstream request is assembled from them in
 * one place (proxy/upstream-request.ts).
 */
export class Exchange {
  readonly startedAt = performance.now();

  // The facts stages learn, in the order they usually become known.
  /** The header pass over the request: what is forwarded, Host, forwarding headers, ambiguities. */
  inbound: InboundHeaders | null = null;
  /** False when a trusted proxy's X-Forwarded-For had a hop that is not an address (clientIp is then the peer). */
  clientIpResolved = true;
  /**
   * The client reached the gateway over TLS: this connection is TLS, or a trusted proxy says
   * `X-Forwarded-Proto: https`. Strict-Transport-Security is sent only then (RFC 6797 §7.2).
   */
  secure = false;
  /** The connection closes after this response (an upgrade offer, a drain, a framing doubt). */
  closeAfter = false;
  target: Target | null = null;
  /** The Host the request was routed on, normalised (lower case, no port, no trailing dot). */
  host = '';
  route: Route | null = null;
  /** A CORS preflight the route's policy answered (or refused): the response carries no Access-Control-Expose-Headers. */
  preflight = false;
  /** Set by the authenticate stage; frozen. */
  identity: Identity | null = null;
  /**
   * Who a refused credential verifiably belongs to (see AuthOutcome `owner`): the audit record
   * names it, nothing else reads it. Null when the credential did not verify.
   */
  refusedIdentity: Identity | null = null;
  /** The API key id the request presented (well-formed, not necessarily valid), for the brute-force guard. */
  presentedKeyId: string | null = null;
  /** Set when an authenticator rejected a credential: true if it could be a guess (counted by the brute-force guard), false for an honest mistake. */
  credentialGuess: boolean | null = null;
  /** Limits applied to this request so far, for the rate-limit response headers. */
  limits: LimitDecision[] | null = null;
  /** The limit or quota that refused the request (audited by name). */
  limitName: string | null = null;
  /** The attribute rule that refused the request (audited by name). */
  rule: string | null = null;
  /**
   * The method the upstream will act on when a method override is forwarded (`allowMethodOverride`):
   * a GET carrying `_method=DELETE` is a DELETE to whoever honours it. Null: the request's own.
   */
  methodOverride: string | null = null;
  /** The access token of the browser session that authenticated the request (oidc), for routes with forwardAccessToken. */
  sessionAccessToken: string | null = null;
  /** The query as forwarded when an authenticator took a credential out of it; null: as received. */
  forwardQuery: string | null = null;
  /**
   * The request body, when a stage received it whole before forwarding (request validation); the
   * forwarding stage then sends these bytes instead of reading the request stream. Null: not read.
   */
  body: Buffer | null = null;
  /**
   * The client went away while a stage was receiving from it (its request body): the stage ends the
   * request, and nothing is answered or forwarded; the audit record says abort.
   */
  abandoned = false;
  /** The wall-clock time (ms since the epoch) stages judge the request at, when fixed (`explain`, policy tests); null: now. */
  fixedTime: number | null = null;
  /** Set by the identity-headers stage. */
  asserted: AssertedIdentity | null = null;
  /**
   * The gateway's own access token for the upstream (client credentials), set by the
   * upstream-credential stage: sent as `Authorization: Bearer`, in place of every client Authorization.
   */
  upstreamToken: string | null = null;
  /** What the upstream receives, once assembled. */
  sent: UpstreamRequest | null = null;

  // The outcome.
  decision: Decision = 'allow';
  /** The stage that decided: the one that ended the request, or `forward`. */
  stage: string | null = null;
  /** Set when a stage (or the connection) denied the request. */
  denial: Denial | null = null;
  /** Set when a stage answered the request itself. */
  response: LocalResponse | null = null;
  /** Private explanation of the outcome (audit only). */
  detail = '';
  /** A pipelined request never processed because an earlier denial closed its connection. */
  discarded = false;
  upstreamStatus: number | null = null;
  /** Milliseconds from the start of the request until upstream response headers arrived. */
  upstreamLatencyMs: number | null = null;
  /** performance.now() when the request was handed to the upstream. */
  forwardedAt = 0;
  bytesIn = 0;
  /** Where the stages count their decisions; null when nothing counts (`explain` runs hypothetical requests). */
  tally: DecisionTally | null = null;
  /** The request's trace (ids, and stage spans when sampled); null when tracing is off, and in `explain`. */
  trace: RequestTrace | null = null;

  readonly wire: Wire;

  constructor(
    /** The request as received; stages read its method and headers. */
    readonly req: IncomingMessage,
    res: ServerResponse,
    responseStages: readonly ResponseStage[],
    readonly requestId: string,
    readonly peer: string,
    readonly clientIp: string,
    readonly peerTrusted: boolean,
    /** The request's HTTP/2 stream; null (the connection) on HTTP/1.x. */
    stream: ClientChannel | null = null,
  ) {
    this.wire = new Wire(req, res, responseStages, stream);
  }

  /** Adds the response stages' headers to an outgoing response's headers. */
  finishHeaders(headers: OutgoingHttpHeaders, generated: boolean): void {
    for (const stage of this.wire.responseStages) stage.apply(this, headers, generated);
  }
}
