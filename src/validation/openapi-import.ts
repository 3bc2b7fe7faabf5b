import { Document, isMap, isSeq } from 'yaml';
import { compilePattern } from '../routing/pattern.js';
import { NAME_PATTERN } from '../config/schema-parts.js';
import { findOperation, listOperations, operationContract, SchemaCompiler, templateSegments, type OpenApiOperation } from './openapi.js';
import { clip, isObject, OpenApiError, valueAt, type OpenApiDocument } from './openapi-document.js';
import { apiKeyKind } from '../authn/api-key/kind.js';

/** The role every imported route requires until its policy is written: no identity should carry it. */
export const NO_POLICY_ROLE = 'openapi-no-policy-yet';

/** What `portcullis import openapi` generates routes with. */
export interface ImportOptions {
  /** The document as the generated config refers to it (relative to where the config will be). */
  readonly documentRef: string;
  readonly upstream: string;
  /** The upstream's address (`http://127.0.0.1:8081`). */
  readonly upstreamUrl: string;
  readonly authenticator: string;
  /** A path prefix the routes match under and strip before forwarding (`/api`), or null. */
  readonly prefix: string | null;
}

/** An operation left out of the generated config, and why. */
export interface SkippedOperation {
  readonly operation: string;
  readonly at: string;
  readonly reason: string;
}

export interface ImportResult {
  /** The config, as YAML text with comments. */
  readonly yaml: string;
  readonly routes: number;
  readonly skipped: readonly SkippedOperation[];
}

const NAME = new RegExp(NAME_PATTERN);

/** A route name from an operationId (or method and path): letters, digits, `_`, `.`, `-`, unique. */
function routeName(op: OpenApiOperation, taken: Set<string>): string {
  const base = (op.operationId ?? `${op.method.toLowerCase()}-${op.template}`)
    .replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/-{2,}/g, '-').replace(/^[^A-Za-z0-9]+/, '').replace(/-+$/, '').slice(0, 60) || op.method.toLowerCase();
  let name = base;
  for (let n = 2; taken.has(name.toLowerCase()) || !NAME.test(name); n++) name = `${base.slice(0, 60)}-${n}`;
  taken.add(name.toLowerCase());
  return name;
}

/** The route pattern of a template: `{name}` where the router can name it, `*` where it cannot (positions decide). */
function patternOf(prefix: string | null, template: string): string | { readonly reason: string } {
  const segments = templateSegments(template);
  if (typeof segments === 'string') return { reason: segments };
  const parts = segments.map((s) => (s.kind === 'literal' ? s.value : /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(s.name) ? `{${s.name}}` : '*'));
  const path = `${prefix ?? ''}/${parts.join('/')}`;
  return path === '' ? '/' : path;
}

/**
 * A complete gateway config with one route per operation of the document, each validated against
 * its operation and each refused (403) until it is given a policy: it authenticates with
 * `authenticator` and requires NO_POLICY_ROLE. Operations the gateway cannot take (a path template
 * the router cannot express, two operations the router could not tell apart, a feature the
 * validation does not support) are skipped, each with its reason.
 */
export function importOpenApi(doc: OpenApiDocument, options: ImportOptions): ImportResult {
  const schemas = new SchemaCompiler(doc);
  const taken = new Set<string>();
  const shapes = new Map<string, string>();
  const skipped: SkippedOperation[] = [];
  const routes: { route: Record<string, unknown>; op: OpenApiOperation }[] = [];
  const operations = listOperations(doc);
  const ids = new Map<string, number>();
  for (const op of operations) if (op.operationId !== null) ids.set(op.operationId, (ids.get(op.operationId) ?? 0) + 1);
  for (const op of operations) {
    const label = `${op.method} ${op.template}`;
    const skip = (reason: string, at = doc.where(op.path)): void => { skipped.push({ operation: op.operationId === null ? label : `${op.operationId} (${label})`, at, reason }); };
    const path = patternOf(options.prefix, op.template);
    if (typeof path !== 'string') { skip(path.reason); continue; }
    let pattern;
    try { pattern = compilePattern(path, false); } catch (err) { skip(`the route path ${clip(path)}: ${(err as Error).message}`); continue; }
    const key = `${op.method} ${pattern.shape}`;
    const earlier = shapes.get(key);
    if (earlier !== undefined) { skip(`the router cannot tell it from ${earlier} (both ${op.method} ${pattern.shape})`); continue; }
    // An operationId given twice cannot name one operation: such operations are named by method and path.
    const selector = op.operationId !== null && ids.get(op.operationId) === 1 ? op.operationId : label;
    try {
      operationContract(doc, schemas, findOperation(doc, selector), { pattern, methods: new Set([op.method]), allowSemicolon: false });
    } catch (err) {
      if (!(err instanceof OpenApiError)) throw err;
      skip(err.message, err.at);
      continue;
    }
    shapes.set(key, label);
    routes.push({
      op,
      route: {
        name: routeName(op, taken),
        match: { path, methods: [op.method] },
        upstream: options.upstream,
        ...(options.prefix === null ? {} : { rewrite: { stripPrefix: options.prefix } }),
        authenticate: [options.authenticator],
        authorize: { roles: { anyOf: [NO_POLICY_ROLE] } },
        validate: { openapi: { document: options.documentRef, operation: selector } },
      },
    });
  }

  const info = isObject(doc.root.info) ? doc.root.info : {};
  const title = typeof info.title === 'string' ? `${clip(info.title)}${typeof info.version === 'string' ? ` ${clip(info.version)}` : ''}` : null;
  const config = new Document({
    upstreams: { [options.upstream]: { targets: [options.upstreamUrl] } },
    authenticators: { [options.authenticator]: { type: apiKeyKind.type } },
    routes: routes.map((r) => r.route),
  });
  config.commentBefore = [
    ` Generated by portcullis import openapi from ${options.documentRef}${title === null ? '' : ` (${title})`}.`,
    ' Every route below is refused (403) until it is given a policy: each authenticates with',
    ` "${options.authenticator}" and requires the role "${NO_POLICY_ROLE}", which no identity should carry.`,
    ' Replace each authorize block with what its operation requires (roles, scopes, tenant), or',
    ' authenticate and authorize with public: true for an operation anyone may call.',
    ' Requests are validated against their operation (400 invalid_parameter, 415, 422 schema_violation).',
  ].join('\n');
  const upstreams = config.get('upstreams');
  const upstream = isMap(upstreams) ? upstreams.items[0] : undefined;
  if (upstream !== undefined) {
    (upstream.key as { commentBefore?: string | null }).commentBefore = ' Where the API runs.';
    const targets = isMap(upstream.value) ? upstream.value.get('targets', true) : null;
    if (isSeq(targets)) targets.flow = true;
  }
  const authenticators = config.get('authenticators');
  if (isMap(authenticators) && authenticators.items[0] !== undefined) {
    const key = authenticators.items[0].key as { commentBefore?: string | null };
    key.commentBefore = ' API keys from `portcullis keys create`; use your own authenticators instead (jwt, oidc, mtls, …).';
  }
  const list = config.get('routes');
  if (isSeq(list)) {
    list.items.forEach((item, i) => {
      const op = routes[i]?.op;
      if (op === undefined || !isMap(item)) return;
      const summary = valueAt(doc.root, [...op.path, 'summary']);
      (item).commentBefore = ` ${op.method} ${op.template}${typeof summary === 'string' ? ` — ${clip(summary)}` : ''}`;
      // Short collections on one line each, so a route reads as a block of a few lines.
      for (const key of ['match', 'authenticate', 'authorize']) {
        const node = item.get(key, true);
        if (isMap(node) || isSeq(node)) node.flow = true;
      }
      const validate = item.get('validate', true);
      const openapi = isMap(validate) ? validate.get('openapi', true) : null;
      if (isMap(openapi)) openapi.flow = true;
      const authorize = (item).items.find((p) => (p.key as { value?: unknown }).value === 'authorize');
      if (authorize !== undefined) (authorize.key as { commentBefore?: string | null }).commentBefore = ' No policy yet: replace with what this operation requires.';
    });
  }
  return { yaml: config.toString({ lineWidth: 0, flowCollectionPadding: false }), routes: routes.length, skipped };
}
