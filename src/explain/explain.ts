import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import type { Authenticator } from '../authn/authenticator.js';
import type { Identity } from '../authn/identity.js';
import type { CompiledConfig } from '../config/compile.js';
import { isPreflight } from '../cors/policy.js';
import { DENIALS } from '../pipeline/denials.js';
import { isDenial, type Decision, type Exchange, type Explained, type Route, type RuleOutcome, type Stage, type StageResult } from '../pipeline/exchange.js';
import { requestPath, type RequestPath } from '../pipeline/request-path.js';
import { upstreamRequest } from '../proxy/upstream-request.js';
import { openExchange } from '../server/handle-request.js';
import { matchesPattern } from '../routing/pattern.js';
import { hostMatches } from '../routing/router.js';

/** What to explain: a request as a client would send it. */
export interface ExplainRequest {
  readonly method: string;
  /** The request target: path and query, as on the request line. */
  readonly target: string;
  /** Header fields in order, as sent. A request without Host gets `Host: localhost`. */
  readonly headers: readonly (readonly [string, string])[];
  /** The address the request comes from (the TCP peer). */
  readonly from: string;
  /** An identity to assume instead of authenticating (the route's authenticators are not consulted). */
  readonly identity?: ExplainIdentity;
  /** The request body, as sent (its framing headers are the caller's to give). */
  readonly body?: string;
  /** The wall-clock time to judge the request at (ms since the epoch); absent: now. */
  readonly at?: number;
}

/** `--identity`: the claims an authenticated caller would have. */
export interface ExplainIdentity {
  readonly sub: string;
  readonly roles?: readonly string[];
  readonly scopes?: readonly string[];
  readonly tenant?: string | null;
  readonly method?: string;
  readonly keyId?: string | null;
  readonly tier?: string | null;
  /** The verified token claims attribute rules read (`claims.<name>`). */
  readonly claims?: Readonly<Record<string, unknown>>;
}

export type StageOutcome = 'continue' | 'deny' | 'respond';

export interface StageLine {
  readonly stage: string;
  readonly outcome: StageOutcome;
  /** Status and code when the stage ended the request. */
  readonly status?: number;
  readonly code?: string;
  /** What the stage learned or would do; the private reason of a denial. */
  readonly note: string;
  /** The attribute rules the stage evaluated, and whether each held. */
  readonly rules?: readonly RuleOutcome[];
  /** Where in the request a validation denial failed (the problem's `pointer`). */
  readonly pointer?: string;
}

export interface NearMiss {
  readonly route: string;
  readonly line: number | null;
  readonly why: string;
}

export interface Explanation {
  readonly request: { readonly method: string; readonly target: string; readonly from: string };
  /** The canonical path and the query, or null when the target was refused. */
  readonly target: { readonly path: string; readonly query: string } | null;
  readonly route: { readonly name: string; readonly line: number | null } | null;
  /** The endpoint the gateway answers the matched route with itself (`serve`), or null: the route forwards. */
  readonly served: string | null;
  readonly nearMisses: readonly NearMiss[];
  readonly stages: readonly StageLine[];
  /**
   * How the audit record would class the request: allow (forwarded, or answered by the gateway
   * with a response that allows), deny (a denial), error (a denial of status 500 or more).
   */
  readonly decision: Decision;
  /** The gateway's answer: `forward` (the upstream answers), or its own status and code. */
  readonly result: { readonly status: number | null; readonly code: string | null; readonly forwarded: boolean };
  /** Exactly what the upstream would receive, when the request would be forwarded. */
  readonly upstream: {
    readonly name: string;
    readonly targets: readonly string[];
    readonly method: string;
    readonly path: string;
    readonly headers: readonly (readonly [string, string])[];
    /** Request headers the client sent that the upstream does not receive as sent (removed or replaced by the gateway). */
    readonly dropped: readonly string[];
  } | null;
}

/** Where a route is defined (its line in the config), for messages; null when unknown. */
export type RouteLocator = (route: Route) => number | null;

/**
 * Runs a request through the real request path of a compiled config, in process: the same header
 * pass, the same edge stages, the same route stages. Nothing is contacted and no state changes:
 * stages that would use a store or the network (limits, the brute-force gate, forwarding) say what
 * they would do instead (see Stage.explain). With an identity given, authentication is assumed.
 */
export async function explain(config: CompiledConfig, request: ExplainRequest, locate: RouteLocator = () => null): Promise<Explanation> {
  const path = requestPath(config, () => true);
  const ex = syntheticExchange(config, path, request);
  if (request.at !== undefined) ex.fixedTime = request.at;
  // As the server does (handleRequest): with tracing on, the upstream gets this trace's traceparent,
  // never the one received as is. No span is recorded or exported here.
  if (config.tracer !== null) ex.trace = config.tracer.begin(ex.inbound?.traceparent ?? null, ex.inbound?.tracestate ?? null);
  const lines: StageLine[] = [];
  let verdict: StageResult = undefined;
  let forwarded = false;
  const run = async (stages: readonly Stage[]): Promise<StageResult> => {
    for (const stage of stages) {
      ex.stage = stage.name;
      // A given identity stands in for the route's authenticators (X-Auth-Method: the first one's type).
      if (stage.name === 'authenticate' && request.identity !== undefined && ex.route !== null) {
        ex.identity = identityFrom(request.identity, config.authenticators.get(ex.route.authenticate[0] ?? ''));
      }
      let explained = await explainStage(stage, ex);
      // The endpoint a served route answers with takes the forwarding stage's place: say so.
      const served = ex.route?.served ?? null;
      if (served !== null && stage === ex.route?.stages.at(-1)) explained = { ...explained, note: `served by the gateway: ${served}${explained.note === '' ? '' : ` — ${explained.note}`}` };
      lines.push(line(stage.name, explained, ex));
      if (explained.result !== undefined) return explained.result;
      if (stage.name === 'forward') forwarded = true;
    }
    return undefined;
  };
  verdict = await run(path.edge);
  if (verdict === undefined && ex.route !== null) verdict = await run(ex.route.stages);
  const target = ex.target === null ? null : { path: ex.target.path, query: ex.target.query };
  const routed = ex.route;
  let upstream: Explanation['upstream'] = null;
  if (forwarded && routed !== null && routed.upstream !== null) {
    const sent = upstreamRequest(ex, config);
    upstream = {
      name: routed.upstream.name,
      targets: routed.upstream.targets,
      method: request.method,
      path: sent.path,
      headers: pairs(sent.headers),
      dropped: dropped(request.headers, sent.headers),
    };
  }
  return {
    request: { method: request.method, target: request.target, from: request.from },
    target,
    route: routed === null ? null : { name: routed.name, line: locate(routed) },
    served: routed?.served ?? null,
    nearMisses: ex.target === null ? [] : nearMisses(config, ex, routed, locate),
    stages: lines,
    decision: verdict === undefined ? 'allow' : isDenial(verdict) ? (DENIALS[verdict.code].status >= 500 ? 'error' : 'deny') : verdict.decision ?? 'allow',
    result: verdict === undefined
      ? { status: null, code: null, forwarded }
      : { status: isDenial(verdict) ? DENIALS[verdict.code].status : verdict.status, code: isDenial(verdict) ? verdict.code : verdict.code, forwarded: false },
    upstream,
  };
}

async function explainStage(stage: Stage, ex: Exchange): Promise<Explained> {
  if (stage.explain !== undefined) return stage.explain(ex);
  const result = await stage.run(ex);
  return { result, note: '' };
}

function line(name: string, explained: Explained, ex: Exchange): StageLine {
  const r = explained.result;
  const learned = explained.note !== '' ? explained.note : learnedBy(name, ex);
  const rules = explained.rules === undefined ? {} : { rules: explained.rules };
  if (r === undefined) return { stage: name, outcome: 'continue', note: learned, ...rules };
  if (isDenial(r)) return { stage: name, outcome: 'deny', status: DENIALS[r.code].status, code: r.code, note: r.reason, ...rules, ...(r.pointer === undefined ? {} : { pointer: r.pointer }) };
  return { stage: name, outcome: 'respond', status: r.status, code: r.code, note: r.detail, ...rules };
}

/** What a stage that ran as is established, for the table. */
function learnedBy(name: string, ex: Exchange): string {
  switch (name) {
    case 'forwarded-for': return `client address ${ex.clientIp}${ex.peerTrusted ? ' (peer is a trusted proxy)' : ''}`;
    case 'target': return ex.target === null ? '' : `path ${ex.target.path}${ex.target.query === '' ? '' : `, query ${ex.target.query}`}`;
    case 'host': return `host ${ex.host}`;
    case 'route': return ex.route === null ? '' : `route ${ex.route.name}${ex.route.cors !== null && isPreflight(ex.req) ? ` (a preflight for ${ex.req.headers['access-control-request-method'] ?? ''}, cors ${ex.route.cors.name})` : ''}`;
    case 'authenticate': return ex.identity === null ? '' : `${ex.identity.method} identity ${ex.identity.subject}`;
    case 'identity-headers': return ex.asserted === null ? '' : `asserts ${pairs([...ex.asserted.headers]).map(([n]) => n).join(', ')}`;
    default: return '';
  }
}

/**
 * Why each other route did not take the request: its path pattern, host or methods differ, or it
 * matched too but a more specific route decides.
 */
function nearMisses(config: CompiledConfig, ex: Exchange, chosen: Route | null, locate: RouteLocator): NearMiss[] {
  const target = ex.target as NonNullable<Exchange['target']>;
  const method = ex.req.method ?? '';
  const misses: NearMiss[] = [];
  for (const route of config.routes) {
    if (route === chosen) continue;
    let why: string;
    if (!matchesPattern(route.pattern, target.segments)) why = `path does not match ${route.pattern.source}`;
    else if (!hostMatches(route.host, ex.host)) why = `host ${ex.host || '(none)'} is not ${route.host}`;
    else if (route.methods !== null && !route.methods.has(method)) why = `method ${method} not in ${[...route.methods].sort().join(', ')}`;
    else why = chosen === null ? 'matches, but the most specific matching routes do not accept the method' : `matches too, but ${chosen.name} is more specific`;
    misses.push({ route: route.name, line: locate(route), why });
  }
  return misses;
}

function dropped(sent: readonly (readonly [string, string])[], forwarded: readonly string[]): string[] {
  const kept = new Set<string>();
  for (let i = 0; i + 1 < forwarded.length; i += 2) kept.add(`${(forwarded[i] as string).toLowerCase()}\0${forwarded[i + 1] as string}`);
  return [...new Set(sent.filter(([n, v]) => !kept.has(`${n.toLowerCase()}\0${v}`)).map(([n]) => n.toLowerCase()))];
}

function pairs(flat: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as string]);
  return out;
}

/**
 * The identity `--identity` describes, as the route's first authenticator would have built it: its
 * type as the method, and its bearer realm when it is a bearer authenticator (so a route that
 * forwards Authorization forwards it, as it would the token that authenticated).
 */
function identityFrom(given: ExplainIdentity, first: Authenticator | undefined): Identity {
  return Object.freeze({
    subject: given.sub,
    method: given.method ?? first?.type ?? 'explain',
    authenticator: 'explain',
    keyId: given.keyId ?? null,
    roles: given.roles ?? [],
    scopes: given.scopes ?? [],
    tenant: given.tenant ?? null,
    tier: given.tier ?? null,
    claims: given.claims ?? null,
    claimHeaders: [],
    bearerRealm: BEARER_REALM.exec(first?.challenge ?? '')?.[1] ?? null,
  });
}

const BEARER_REALM = /^Bearer realm="([^"]*)"$/;

/** Header names whose repeats Node keeps only once (the first), as its parser does. */
const SINGLE = new Set(['host', 'content-type', 'content-length', 'user-agent', 'referer', 'authorization', 'proxy-authorization',
  'if-modified-since', 'if-unmodified-since', 'from', 'location', 'max-forwards', 'retry-after', 'etag', 'last-modified', 'server', 'age', 'expires']);

/** An exchange for a request that never crossed a socket, opened as the server opens every exchange (tests run single stages on it). */
export function syntheticExchange(config: CompiledConfig, path: RequestPath, request: ExplainRequest): Exchange {
  return openExchange(config, path, ...syntheticRequest(request));
}

/**
 * An IncomingMessage carrying the request as Node's parser would have produced it, on a socket
 * that is never connected (it opens nothing), and a response nobody writes to.
 */
function syntheticRequest(request: ExplainRequest): [IncomingMessage, ServerResponse] {
  const socket = new Socket();
  Object.defineProperty(socket, 'remoteAddress', { value: request.from });
  const req = new IncomingMessage(socket);
  req.method = request.method;
  req.url = request.target;
  req.httpVersion = '1.1';
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  req.complete = true;
  const fields = request.headers.some(([n]) => n.toLowerCase() === 'host') ? request.headers : [['Host', 'localhost'] as const, ...request.headers];
  const headers: Record<string, string> = {};
  for (const [name, value] of fields) {
    req.rawHeaders.push(name, value);
    const key = name.toLowerCase();
    const earlier = headers[key];
    if (earlier === undefined) headers[key] = value;
    else if (!SINGLE.has(key)) headers[key] = `${earlier}, ${value}`;
  }
  req.headers = headers;
  if (request.body !== undefined) req.push(Buffer.from(request.body));
  req.push(null);
  return [req, new ServerResponse(req)];
}

/** The request a client would send, from `explain`'s arguments; throws on a malformed header or target. */
export function parseHeaderArg(text: string): [string, string] {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new Error(`--header "${text}": expected "Name: value"`);
  return [text.slice(0, colon).trim(), text.slice(colon + 1).trim()];
}

/** Renders an explanation as the table `portcullis explain` prints. */
export function renderExplanation(e: Explanation): string {
  const out: string[] = [];
  const row = (label: string, value: string): void => { out.push(`${label.padEnd(12)}${value}`); };
  row('Request', `${e.request.method} ${e.request.target} from ${e.request.from}`);
  row('Target', e.target === null ? '(refused)' : `${e.target.path}${e.target.query === '' ? '' : `  query ${e.target.query}`}`);
  row('Route', e.route === null ? '(none)' : `${e.route.name}${e.route.line === null ? '' : ` (line ${e.route.line})`}`);
  if (e.served !== null) row('Served', `served by the gateway: ${e.served}`);
  if (e.nearMisses.length > 0) {
    out.push('Near misses');
    for (const m of e.nearMisses) out.push(`  ${m.route.padEnd(20)} ${m.why}${m.line === null ? '' : ` (line ${m.line})`}`);
  }
  out.push('Stages');
  const width = Math.max(...e.stages.map((s) => s.stage.length), 5) + 2;
  for (const s of e.stages) {
    const outcome = s.outcome === 'continue' ? 'continue' : `${s.outcome} ${s.status ?? ''} ${s.code ?? ''}`.trim();
    out.push(`  ${s.stage.padEnd(width)}${outcome.padEnd(34)}${s.note}`.trimEnd());
    for (const r of s.rules ?? []) out.push(`    ${r.held ? 'holds   ' : 'fails   '}${r.rule}`);
  }
  row('Result', e.result.forwarded ? 'forwarded: the upstream answers' : `${e.result.status ?? ''} ${e.result.code ?? ''}`.trim());
  if (e.upstream !== null) {
    if (e.upstream.dropped.length > 0) row('Not sent', e.upstream.dropped.join(', '));
    out.push(`Upstream    ${e.upstream.name} (${e.upstream.targets.join(', ')})`);
    out.push(`  ${e.upstream.method} ${e.upstream.path}`);
    for (const [name, value] of e.upstream.headers) out.push(`  ${name}: ${value}`);
  }
  return out.join('\n') + '\n';
}

