import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { OAuthServices, WebhookSettings } from '../../authn/oauth/oauth-services.js';
import { RevocationUnavailableError } from '../../authn/oauth/redis-revocations.js';
import { checkedHash, hashOfToken, keptUntil, revocationEnd, RevocationRequestError } from '../../authn/oauth/revocation-request.js';
import type { RevocationList } from '../../authn/oauth/revocations.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import { parseStrictJson } from '../../lib/strict-json.js';
import { deny, type Denial } from '../../pipeline/denials.js';
import type { Exchange, LocalResponse, Stage, StageResult } from '../../pipeline/exchange.js';
import type { ServedEndpoint } from './served-endpoint.js';

/** Largest event body. */
export const MAX_WEBHOOK_BODY_BYTES = 65_536;
/** Most tokens (or token hashes) one event revokes. */
export const MAX_WEBHOOK_TOKENS = 100;
/** Signatures remembered against replay at most (each until it leaves the tolerance window). */
export const MAX_REMEMBERED_SIGNATURES = 10_000;
/** The header carrying the signature. */
export const SIGNATURE_HEADER = 'portcullis-signature';
const MAX_SIGNATURE_HEADER_BYTES = 1024;
const MAX_SIGNATURES = 4;
const HEX_SHA256 = /^[0-9a-f]{64}$/;
const FIELDS = new Set(['tokens', 'tokenHashes', 'expiresAt']);

/** What the webhook made of one event: the tokens revoked, or the denial. */
export type WebhookOutcome =
  | { readonly ok: true; readonly revoked: readonly (readonly [hash: string, untilMs: number])[] }
  | { readonly ok: false; readonly denial: Denial };

/** The signature `secret` gives `body` at `t` (unix seconds): HMAC-SHA256 over `${t}.${body}`, hex. */
export function webhookSignature(secret: Buffer | string, t: number, body: Buffer | string): string {
  return createHmac('sha256', secret).update(`${t}.`, 'ascii').update(body).digest('hex');
}

/**
 * Signatures seen within the tolerance window: a second delivery of one is a replay. Bounded; when
 * full of signatures still in the window, new events are refused (503) rather than a remembered
 * one forgotten, which would open it to replay.
 */
class SeenSignatures {
  private readonly until = new Map<string, number>();

  /** Records `signature` until `untilMs`; false when it is there already (a replay) or there is no room. */
  remember(signature: string, untilMs: number, now: number): 'new' | 'replayed' | 'full' {
    const seen = this.until.get(signature);
    if (seen !== undefined && seen > now) return 'replayed';
    if (this.until.size >= MAX_REMEMBERED_SIGNATURES) {
      for (const [s, u] of this.until) if (u <= now) this.until.delete(s);
      if (this.until.size >= MAX_REMEMBERED_SIGNATURES) return 'full';
    }
    this.until.set(signature, untilMs);
    return 'new';
  }

  forget(signature: string): void {
    this.until.delete(signature);
  }
}

/**
 * The replay memory of each revocation list: the list is a resource kept across reloads, and so,
 * through it, is the memory (a reload does not reopen the window to replays).
 */
const memories = new WeakMap<RevocationList, SeenSignatures>();

function memoryOf(list: RevocationList): SeenSignatures {
  let memory = memories.get(list);
  if (memory === undefined) memories.set(list, memory = new SeenSignatures());
  return memory;
}

const refuse = (code: 'webhook_signature_invalid' | 'webhook_replayed' | 'webhook_event_invalid' | 'unsupported_media_type' | 'authentication_unavailable', reason: string): WebhookOutcome =>
  ({ ok: false, denial: deny(code, `revocation webhook: ${reason}`, code === 'webhook_signature_invalid' ? { 'www-authenticate': 'Portcullis-Signature' } : undefined) });

/** The `t` and `v1` values of a Portcullis-Signature header, or why it is not one. */
function parseSignatureHeader(values: readonly string[]): { t: number; v1: string[] } | string {
  if (values.length === 0) return `no ${SIGNATURE_HEADER} header`;
  if (values.length > 1) return `${values.length} ${SIGNATURE_HEADER} headers; send one`;
  const header = values[0] ?? '';
  if (header.length > MAX_SIGNATURE_HEADER_BYTES) return `${SIGNATURE_HEADER} longer than ${MAX_SIGNATURE_HEADER_BYTES} bytes`;
  let t: number | null = null;
  const v1: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (eq === -1) return `${SIGNATURE_HEADER} element "${part.trim().slice(0, 20)}" is not key=value`;
    if (key === 't') {
      if (t !== null || !/^[1-9][0-9]{0,11}$/.test(value)) return `${SIGNATURE_HEADER} t must appear once, as unix seconds`;
      t = Number(value);
    } else if (key === 'v1') {
      if (!HEX_SHA256.test(value)) return `${SIGNATURE_HEADER} v1 is not 64 lower-case hex digits`;
      v1.push(value);
    }
    // Other schemes (v0, v2, …) are not ours to judge: a sender may add one beside v1.
  }
  if (t === null) return `${SIGNATURE_HEADER} has no t`;
  if (v1.length === 0 || v1.length > MAX_SIGNATURES) return `${SIGNATURE_HEADER} needs 1 to ${MAX_SIGNATURES} v1 signatures`;
  return { t, v1 };
}

/** The webhook's logic on one received event: no sockets, so every hostile case can be tested by value. */
export class RevocationWebhook {
  private readonly seen: SeenSignatures;

  constructor(
    private readonly settings: WebhookSettings,
    private readonly oauth: Pick<OAuthServices, 'digester' | 'revocations' | 'revocationTtlMs'>,
    private readonly clock: Clock = systemClock,
  ) {
    this.seen = memoryOf(oauth.revocations);
  }

  /**
   * Checks the event (signature within the tolerance, not replayed, then the body) and revokes
   * what it names. `signatures`: every value of the Portcullis-Signature header received.
   */
  async receive(body: Buffer, signatures: readonly string[]): Promise<WebhookOutcome> {
    const now = this.clock.now();
    const header = parseSignatureHeader(signatures);
    if (typeof header === 'string') return refuse('webhook_signature_invalid', header);
    const skewMs = Math.abs(now - header.t * 1000);
    if (skewMs > this.settings.toleranceMs) return refuse('webhook_signature_invalid', `signed at ${header.t}, ${Math.round(skewMs / 1000)} s from now (tolerance ${this.settings.toleranceMs} ms): a stale, replayed or mis-clocked event`);
    const expected = Buffer.from(webhookSignature(this.settings.secret, header.t, body), 'hex');
    const match = header.v1.find((v) => timingSafeEqual(Buffer.from(v, 'hex'), expected));
    if (match === undefined) return refuse('webhook_signature_invalid', 'no v1 signature matches the body and t under oauth.webhook.secret');
    const seen = this.seen.remember(match, header.t * 1000 + this.settings.toleranceMs, now);
    if (seen === 'replayed') return refuse('webhook_replayed', `signature of t=${header.t} delivered before`);
    if (seen === 'full') return refuse('authentication_unavailable', `${MAX_REMEMBERED_SIGNATURES} signatures within the tolerance window remembered already; new events are refused until some leave it`);
    let revoked: [hash: string, untilMs: number][];
    try {
      const event = parseEvent(body);
      const ends = new Map<string, number>();
      event.names.forEach(([hash, token]) => {
        const until = revocationEnd(event.expiresAt, token, now, this.oauth.revocationTtlMs);
        ends.set(hash, Math.max(until, ends.get(hash) ?? 0));
      });
      revoked = [...ends];
    } catch (err) {
      // A well-signed event that is not one we understand: the sender may fix and re-sign it.
      this.seen.forget(match);
      if (err instanceof RevocationRequestError) return refuse('webhook_event_invalid', err.message);
      throw err;
    }
    try {
      await Promise.all(revoked.map(([hash, until]) => this.oauth.revocations.revoke(this.oauth.digester.ofHash(hash), keptUntil(until))));
    } catch (err) {
      // Refused here already, not shared: the sender retries, and its retry must not count as a replay.
      this.seen.forget(match);
      if (err instanceof RevocationUnavailableError) return refuse('authentication_unavailable', `revoked here, not shared: ${err.message}`);
      throw err;
    }
    return { ok: true, revoked };
  }
}

/** The token hashes an event names, each with its token when the event names tokens, and its expiresAt; throws RevocationRequestError. */
function parseEvent(body: Buffer): { names: [hash: string, token: string | null][]; expiresAt: unknown } {
  const value = parseStrictJson(body.toString('utf8'), 3);
  if (value === undefined) throw new RevocationRequestError('body is not JSON (or has a duplicate key, or nests too deep)');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RevocationRequestError('body must be a JSON object: {"tokens": [...]} or {"tokenHashes": [...]}');
  const event = value as Record<string, unknown>;
  const unknown = Object.keys(event).filter((k) => !FIELDS.has(k));
  if (unknown.length > 0) throw new RevocationRequestError(`unknown field ${unknown.map((k) => k.slice(0, 40)).join(', ')} (allowed: tokens, tokenHashes, expiresAt)`);
  const field = event.tokens !== undefined ? 'tokens' : 'tokenHashes';
  if ((event.tokens === undefined) === (event.tokenHashes === undefined)) throw new RevocationRequestError('give exactly one of tokens and tokenHashes');
  const list = event[field];
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_WEBHOOK_TOKENS) throw new RevocationRequestError(`${field}: an array of 1 to ${MAX_WEBHOOK_TOKENS} entries`);
  const names = field === 'tokens'
    ? list.map((t, i): [string, string | null] => [hashOfToken(t, `tokens[${i}]`), t as string])
    : list.map((h, i): [string, string | null] => [checkedHash(h, `tokenHashes[${i}]`), null]);
  return { names, expiresAt: event.expiresAt };
}

/** Reads the body, at most `max` bytes; null when it is longer. */
async function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Every value of header `name` (lower case) as received, repeated ones apart. */
function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (rawHeaders[i]?.toLowerCase() === name) values.push(rawHeaders[i + 1] ?? '');
  return values;
}

/** The stage: content type and size first (nothing is read past 64 KiB), then RevocationWebhook. */
export function revocationWebhookStage(webhook: RevocationWebhook): Stage {
  return {
    name: 'revocation-webhook',
    async run(ex: Exchange): Promise<StageResult> {
      const req = ex.req;
      const type = (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase();
      if (type !== 'application/json') return deny('unsupported_media_type', `revocation webhook: Content-Type ${(req.headers['content-type'] ?? '(none)').slice(0, 60)}; send application/json`);
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > MAX_WEBHOOK_BODY_BYTES) return deny('body_too_large', `revocation webhook: Content-Length ${declared} over ${MAX_WEBHOOK_BODY_BYTES}`);
      const body = await readBody(req, MAX_WEBHOOK_BODY_BYTES);
      if (body === null) return deny('body_too_large', `revocation webhook: body over ${MAX_WEBHOOK_BODY_BYTES} bytes`);
      const outcome = await webhook.receive(body, headerValues(req.rawHeaders, SIGNATURE_HEADER));
      return outcome.ok ? accepted(outcome.revoked) : outcome.denial;
    },
    explain: () => ({ result: undefined, note: 'would check the event\'s signature (oauth.webhook.secret) and revoke the tokens it names' }),
  };
}

function accepted(revoked: readonly (readonly [hash: string, untilMs: number])[]): LocalResponse {
  const body = JSON.stringify({ revoked: revoked.length });
  const [hash, until] = revoked[0] ?? ['', 0];
  return {
    kind: 'response', status: 202, body, code: 'revocations_accepted',
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    detail: `revoked ${revoked.length} token(s): ${hash} until ${new Date(until).toISOString()}${revoked.length > 1 ? ', …' : ''}`,
  };
}

/** `serve: revocation-webhook`: the authorization server's signed revocation events. */
export const REVOCATION_WEBHOOK: ServedEndpoint = {
  name: 'revocation-webhook',
  description: 'Revokes the bearer tokens a signed event from the authorization server names (oauth.webhook; see docs/authentication.md "Revoking tokens").',
  methods: ['POST'],
  build(context) {
    const settings = context.oauth.webhook;
    if (settings === null) {
      context.problems.push(context.loaded.problem(context.at('serve'), 'the revocation webhook needs oauth.webhook: { secret: ${WEBHOOK_SECRET} } (at least 32 characters, shared with the authorization server)'));
      return null;
    }
    return revocationWebhookStage(new RevocationWebhook(settings, context.oauth));
  },
};
