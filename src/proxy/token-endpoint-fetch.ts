import { Agent, request, type Dispatcher } from 'undici';

/**
 * Why a call to an authorization server failed, in words the audit record and logs can carry: a
 * category for metrics (`timeout`, `unreachable`, `refused`, `invalid`) and a precise detail. Never
 * holds a request body, a secret or a token.
 */
export class TokenEndpointError extends Error {
  constructor(readonly category: 'timeout' | 'unreachable' | 'refused' | 'invalid', detail: string) {
    super(detail);
  }
}

/** What a fetch to the authorization server is given, as openid-client passes it (CustomFetchOptions). */
export interface TokenFetchOptions {
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body?: unknown;
  readonly signal?: AbortSignal;
}

/**
 * The one way the gateway reaches an authorization server's token and metadata endpoints: its own
 * connection pool, no redirects followed (a 3xx is an error, never a hop to another host), the
 * whole exchange bounded by `timeoutMs` from connect to last byte, and a response larger than
 * `maxBytes` refused without being held. Returns a Fetch API Response of the bytes read, which is
 * what openid-client parses.
 */
export class BoundedFetch {
  private agent: Agent | null = null;
  private closed = false;

  constructor(private readonly timeoutMs: number, private readonly maxBytes: number) {}

  /** Opens the pool (lazily, on the first call, so a config that is only compiled opens nothing). */
  private dispatcher(): Dispatcher {
    if (this.closed) throw new TokenEndpointError('unreachable', 'the gateway no longer uses this token endpoint (the config was replaced)');
    this.agent ??= new Agent({
      connect: { timeout: this.timeoutMs },
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      keepAliveTimeout: 4000,
      connections: 8,
      maxHeaderSize: 16 * 1024,
    });
    return this.agent;
  }

  readonly fetch = async (url: string, options: TokenFetchOptions): Promise<Response> => {
    const deadline = AbortSignal.timeout(this.timeoutMs);
    const signal = options.signal === undefined ? deadline : AbortSignal.any([options.signal, deadline]);
    const shown = new URL(url);
    const where = `${shown.origin}${shown.pathname}`;
    let res: Dispatcher.ResponseData;
    const dispatcher = this.dispatcher();
    try {
      res = await request(url, {
        method: options.method,
        headers: options.headers,
        body: bodyOf(options.body),
        signal,
        dispatcher,
      });
    } catch (err) {
      throw failure(err, deadline, where, this.timeoutMs);
    }
    const declared = Number(res.headers['content-length'] ?? -1);
    if (declared > this.maxBytes) {
      res.body.destroy();
      throw new TokenEndpointError('invalid', `${where} answered ${res.statusCode} with ${declared} bytes, more than maxResponseBytes (${this.maxBytes})`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > this.maxBytes) {
          res.body.destroy();
          throw new TokenEndpointError('invalid', `${where} answered ${res.statusCode} with more than maxResponseBytes (${this.maxBytes}) bytes`);
        }
        chunks.push(chunk);
      }
    } catch (err) {
      if (err instanceof TokenEndpointError) throw err;
      throw failure(err, deadline, where, this.timeoutMs);
    }
    const headers = new Headers();
    for (const [name, value] of Object.entries(res.headers)) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
    }
    // A Fetch Response cannot carry the statuses below 200 or some others; those are not answers anyway.
    if (res.statusCode < 200 || res.statusCode > 599) throw new TokenEndpointError('invalid', `${where} answered with status ${res.statusCode}`);
    const status = res.statusCode;
    const body = status === 204 || status === 205 || status === 304 ? null : Buffer.concat(chunks, size);
    return new Response(body, { status, headers });
  };

  /** Closes the pool's connections; later calls fail (unreachable) instead of opening another pool. */
  async close(): Promise<void> {
    const agent = this.agent;
    this.agent = null;
    this.closed = true;
    await agent?.close();
  }
}

function bodyOf(body: unknown): string | Uint8Array | null {
  if (body === undefined || body === null) return null;
  if (typeof body === 'string' || body instanceof Uint8Array) return body;
  if (body instanceof URLSearchParams) return body.toString();
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw new TokenEndpointError('invalid', 'unsupported request body type');
}

function failure(err: unknown, deadline: AbortSignal, where: string, timeoutMs: number): TokenEndpointError {
  const e = err as Error & { code?: unknown; cause?: { code?: unknown } };
  const code = typeof e.code === 'string' ? e.code : typeof e.cause?.code === 'string' ? e.cause.code : '';
  if (deadline.aborted || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new TokenEndpointError('timeout', `${where} gave no complete answer within ${timeoutMs} ms`);
  }
  return new TokenEndpointError('unreachable', `${where} could not be reached: ${code === '' ? e.message : code}`);
}
