// A raw HTTP/1.1 client for what `fetch` refuses to send (duplicate Content-Length, obs-fold, bad
// targets, spoofed hop-by-hop fields, slow or vanishing clients): writes bytes on a fresh TCP
// connection, parses every response on it (1xx, Content-Length or chunked) and notices when the
// server closes it.
import { connect } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

export interface WireResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** The body as received (chunked bodies decoded), possibly cut short: see `complete`. */
  readonly body: string;
  /** The body arrived in full (declared length or chunked terminator); always true for 1xx. */
  readonly complete: boolean;
}

export interface WireResult {
  /** Every response on the connection, interim (1xx) ones included, in order. */
  readonly responses: readonly WireResponse[];
  /** Everything the server sent, as latin1. */
  readonly raw: string;
  /** The server closed (or reset) the connection before we gave up on it. */
  readonly closed: boolean;
  readonly elapsedMs: number;
}

export interface WireOptions {
  /** Pause between chunks: the pacing of a slow client, where the timing is what is tested. */
  readonly gapMs?: number;
  /** Write chunk `i` (from the second on) only once `i` final responses arrived: each request waits for the previous answer. */
  readonly inTurn?: boolean;
  /** Give up after this long (default 4000). */
  readonly timeoutMs?: number;
  /** Final (non-1xx) responses to wait for before starting the settle period (default 1). */
  readonly expect?: number;
  /** After the expected responses, how long to wait to see whether the server closes (default 400). */
  readonly settleMs?: number;
  /** Destroy our socket this many ms after the last chunk is written (a client that goes away). */
  readonly abortAfterMs?: number;
  /** Send chunks after the first only once a `100 Continue` arrived (or give up sending them after 1 s). */
  readonly awaitContinue?: boolean;
  /** Server host (default 127.0.0.1). */
  readonly host?: string;
  /** Local source address, e.g. another loopback address to appear as a different peer. */
  readonly localAddress?: string;
}

export type WireData = string | Buffer | readonly (string | Buffer)[];

/** A request head: request line, `Host: gw.test`, then `headerLines`, then the blank line. */
export function requestHead(method: string, target: string, headerLines: readonly string[] = []): string {
  return [`${method} ${target} HTTP/1.1`, 'Host: gw.test', ...headerLines].join('\r\n') + '\r\n\r\n';
}

function parseChunked(raw: Buffer, start: number): { body: Buffer; end: number } | null {
  const parts: Buffer[] = [];
  let pos = start;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', pos, 'latin1');
    if (lineEnd === -1) return null;
    const size = Number.parseInt(raw.subarray(pos, lineEnd).toString('latin1'), 16);
    if (Number.isNaN(size)) return null;
    pos = lineEnd + 2;
    if (size === 0) {
      const trailerEnd = raw.indexOf('\r\n', pos, 'latin1');
      if (trailerEnd !== pos) return null; // no trailers expected from the gateway
      return { body: Buffer.concat(parts), end: pos + 2 };
    }
    if (raw.length < pos + size + 2) return null;
    parts.push(raw.subarray(pos, pos + size));
    pos += size + 2;
  }
}

/** Parses every response in `raw`; `finals` counts the complete non-1xx ones. */
function parseResponses(raw: Buffer): { responses: WireResponse[]; finals: number } {
  const responses: WireResponse[] = [];
  let finals = 0;
  let offset = 0;
  while (offset < raw.length) {
    const headEnd = raw.indexOf('\r\n\r\n', offset, 'latin1');
    if (headEnd === -1) break;
    const lines = raw.subarray(offset, headEnd).toString('latin1').split('\r\n');
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (match === null) break;
    const status = Number(match[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = name in headers ? `${headers[name] ?? ''}, ${value}` : value;
    }
    const bodyStart = headEnd + 4;
    if (status < 200) {
      responses.push({ status, headers, body: '', complete: true });
      offset = bodyStart;
      continue;
    }
    const length = headers['content-length'];
    if ((headers['transfer-encoding'] ?? '').toLowerCase().includes('chunked')) {
      const chunked = parseChunked(raw, bodyStart);
      if (chunked === null) {
        responses.push({ status, headers, body: raw.subarray(bodyStart).toString('utf8'), complete: false });
        break;
      }
      responses.push({ status, headers, body: chunked.body.toString('utf8'), complete: true });
      offset = chunked.end;
    } else if (length !== undefined) {
      const end = bodyStart + Number(length);
      const complete = raw.length >= end;
      responses.push({ status, headers, body: raw.subarray(bodyStart, Math.min(end, raw.length)).toString('utf8'), complete });
      if (!complete) break;
      offset = end;
    } else {
      responses.push({ status, headers, body: raw.subarray(bodyStart).toString('utf8'), complete: false });
      break;
    }
    finals++;
  }
  return { responses, finals };
}

/**
 * Writes `chunks` on a fresh connection (with `gapMs` between them) and collects every response
 * until the server closes, the settle period after `expect` final responses ends, our own abort
 * (`abortAfterMs`) or the timeout.
 */
export function wire(port: number, chunks: WireData, options: WireOptions = {}): Promise<WireResult> {
  const list = typeof chunks === 'string' || Buffer.isBuffer(chunks) ? [chunks] : chunks;
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect({
      port,
      host: options.host ?? '127.0.0.1',
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
    });
    const data: Buffer[] = [];
    let closed = false;
    let done = false;
    let settle: NodeJS.Timeout | undefined;
    let abort: NodeJS.Timeout | undefined;
    let sawContinue = false;
    let onContinue: () => void = () => undefined;
    const continued = new Promise<void>((r) => { onContinue = r; });
    let finals = 0;
    let onResponse: () => void = () => undefined;
    /** Resolves once `count` final responses arrived, or the exchange is over. */
    const answered = (count: number): Promise<void> => new Promise((resolve) => {
      const check = (): void => { if (finals >= count || done) resolve(); else onResponse = check; };
      check();
    });
    const finish = (): void => {
      if (done) return;
      done = true;
      onResponse();
      clearTimeout(timer);
      clearTimeout(settle);
      clearTimeout(abort);
      socket.destroy();
      const raw = Buffer.concat(data);
      resolve({ responses: parseResponses(raw).responses, raw: raw.toString('latin1'), closed, elapsedMs: performance.now() - started });
    };
    const timer = setTimeout(finish, options.timeoutMs ?? 4000);
    const onClosed = (): void => { closed = true; finish(); };
    socket.on('data', (chunk: Buffer) => {
      data.push(chunk);
      const parsed = parseResponses(Buffer.concat(data));
      if (!sawContinue && parsed.responses.some((r) => r.status === 100)) { sawContinue = true; onContinue(); }
      finals = parsed.finals;
      onResponse();
      if (settle === undefined && parsed.finals >= (options.expect ?? 1)) {
        settle = setTimeout(finish, options.settleMs ?? 400);
      }
    });
    socket.on('end', onClosed);
    socket.on('close', onClosed);
    socket.on('error', onClosed);
    socket.on('connect', () => {
      void (async () => {
        for (const [i, chunk] of list.entries()) {
          if (i === 1 && options.awaitContinue === true) {
            await Promise.race([continued, delay(1000)]);
            if (!sawContinue) return; // never told to continue
          }
          if (i > 0 && options.inTurn === true) await answered(i);
          if (socket.destroyed || done) return;
          socket.write(chunk);
          if (options.gapMs !== undefined && i < list.length - 1) await delay(options.gapMs);
        }
        if (options.abortAfterMs !== undefined && !done) abort = setTimeout(finish, options.abortAfterMs);
      })();
    });
  });
}

/** The first response on a connection (status 0, no headers, empty body when none arrived). */
export interface RawResponse extends WireResponse {
  readonly raw: string;
  readonly closed: boolean;
  readonly elapsedMs: number;
}

/** `wire()` for one exchange: the first response, plus everything received and whether it closed. */
export async function rawRequest(port: number, data: WireData, options: WireOptions = {}): Promise<RawResponse> {
  const result = await wire(port, data, options);
  const first = result.responses[0] ?? { status: 0, headers: {}, body: '', complete: false };
  return { ...first, raw: result.raw, closed: result.closed, elapsedMs: result.elapsedMs };
}
