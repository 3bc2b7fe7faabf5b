import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  constants, createServer, Http2ServerRequest, Http2ServerResponse, type Http2Server, type Http2Session, type ServerHttp2Stream,
} from 'node:http2';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Http2Settings } from '../config/compile-http2.js';
import type { ClientChannel } from '../pipeline/exchange.js';

/** Why an HTTP/2 session ended: a bounded label set (`portcullis_http2_sessions_closed_total{reason}`). */
export type Http2SessionEnd =
  /** The client closed the connection or sent GOAWAY. */
  | 'client'
  /** No stream open for the idle timeout. */
  | 'idle'
  /** Too many streams reset by the client before they were answered (CVE-2023-44487). */
  | 'rapid_reset'
  /** Too many invalid or empty frames, or refused streams (CVE-2019-9518 and kin); also header floods. */
  | 'flood'
  /** Any other protocol or connection error. */
  | 'protocol_error'
  /** The gateway is shutting down. */
  | 'shutdown';

/** What an HTTP/2 front tells its owner besides requests: counts for metrics. */
export interface Http2Events {
  sessionClosed(reason: Http2SessionEnd): void;
  /**
   * A stream the client reset: `unhandled` before the gateway started handling it (never reached
   * the request path, so no audit record; counted here only), `handled` while it was being
   * handled (its record says `client_aborted`).
   */
  streamReset(when: 'unhandled' | 'handled'): void;
}

/** The limits of an HTTP/2 front: its own settings, and the listener's header and idle limits. */
export interface Http2FrontSettings {
  readonly http2: Http2Settings;
  /** `limits.maxHeaderBytes`: the request path refuses a larger header list with 431. */
  readonly maxHeaderBytes: number;
  /** `limits.maxHeaderCount`: the request path refuses more fields with 431. */
  readonly maxHeaderCount: number;
  /** A session with no stream open this long is closed (GOAWAY). */
  readonly idleTimeoutMs: number;
  /** The clock the reset window is measured with (milliseconds). */
  readonly now?: () => number;
}

/** The request handler: the same as HTTP/1.1's, with the stream as the exchange's channel. */
export type Http2Handler = (req: IncomingMessage, res: ServerResponse, stream: ClientChannel) => void;

/**
 * A request that counts the body bytes its stream delivered (into its buffer, read or not yet):
 * what the body idle watch compares between periods. Counted where the compatibility API pushes
 * them, since a second reader of the stream would take data from the request.
 */
class CountingRequest extends Http2ServerRequest {
  bytesReceived = 0;

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk instanceof Uint8Array) this.bytesReceived += chunk.byteLength;
    return super.push(chunk, encoding);
  }
}

/**
 * A response that counts the body bytes written to its stream (the DATA payload: HPACK headers
 * belong to the session's shared compression state and are not attributed to one stream).
 */
class CountingResponse extends Http2ServerResponse<CountingRequest> {
  bytesWritten = 0;

  override write(chunk: string | Uint8Array, callback?: (err: Error) => void): boolean;
  override write(chunk: string | Uint8Array, encoding: BufferEncoding, callback?: (err: Error) => void): boolean;
  override write(chunk: string | Uint8Array, encoding?: BufferEncoding | ((err: Error) => void), callback?: (err: Error) => void): boolean {
    if (!this.writableEnded && !this.stream.destroyed) this.bytesWritten += typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof encoding === 'string' ? encoding : 'utf8') : chunk.byteLength;
    return typeof encoding === 'string' ? super.write(chunk, encoding, callback) : super.write(chunk, encoding);
  }

  /**
   * A response the gateway cuts short (the client stopped reading, the upstream failed
   * mid-response) is reset with CANCEL: RST_STREAM NO_ERROR, what a bare destroy sends, would let
   * a client without a Content-Length take the truncated body as complete (RFC 9113 §8.1).
   */
  override destroy(error?: Error): this {
    const stream = this.stream;
    if (!stream.closed && !stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
    return super.destroy(error);
  }
}

/** One stream as an exchange's channel: its own bytes, its own flow control, reset on destroy. */
class StreamChannel implements ClientChannel {
  constructor(
    private readonly stream: ServerHttp2Stream, private readonly req: CountingRequest, private readonly res: CountingResponse,
    /** The TLS connection the stream's session runs on: what its handshake established (the client certificate). */
    readonly connection: TLSSocket | null,
  ) {}

  /** DATA bytes the client sent on this stream. */
  get bytesRead(): number {
    return this.req.bytesReceived;
  }

  get bytesWritten(): number {
    return this.res.bytesWritten;
  }

  get destroyed(): boolean {
    return this.stream.destroyed;
  }

  get writableNeedDrain(): boolean {
    return this.stream.writableNeedDrain;
  }

  /** Resets this stream only (RST_STREAM), never the connection other streams share. */
  destroy(): void {
    this.stream.destroy();
  }
}

/** One session's bookkeeping. */
interface SessionState {
  /** Streams being handled (a request whose response has not closed). */
  open: number;
  /** Resets counted in the window that started at `windowStart`. */
  resets: number;
  windowStart: number;
  /** The TLS connection the session runs on (its own socket; node:http2 hands out only a proxy of it). */
  readonly connection: TLSSocket | null;
  /** Set when the gateway decided to end the session, so its close is labelled with why. */
  ending: Http2SessionEnd | null;
}

/**
 * HTTP/2 on a TLS listener. The HTTPS server keeps serving HTTP/1.1 exactly as before; a
 * connection whose ALPN chose `h2` is handed here (`accept`), to a node:http2 server that never
 * listens itself. Streams arrive as compatibility-API requests and responses and go through the
 * same request handler, one exchange (and one audit record) per stream.
 *
 * What one client can make a session hold is bounded: concurrent streams, header list size and
 * field count (past twice the configured limits the stream is reset before it is read whole; up
 * to them the request path answers 431), session memory, invalid and empty frames, refused
 * streams, and streams the client resets before they are answered (rapid reset, CVE-2023-44487:
 * past `maxStreamResets` in `streamResetWindowMs` the session gets GOAWAY ENHANCE_YOUR_CALM and
 * is closed). A CONTINUATION flood (CVE-2024-27316) ends at the header list limit.
 *
 * A stream is handled on the turn after its HEADERS were read, so a stream the client reset in
 * the same read (the rapid-reset pattern) never reaches the request path: it is counted, not
 * audited, and costs no upstream request.
 */
export class Http2Front {
  private readonly server: Http2Server<typeof IncomingMessage, typeof ServerResponse, typeof CountingRequest, typeof CountingResponse>;
  private readonly sessions = new Map<Http2Session, SessionState>();
  private readonly now: () => number;
  private stopping = false;
  /** The connection being handed to node:http2, for the session it makes from it. */
  private accepting: TLSSocket | null = null;

  constructor(private readonly settings: Http2FrontSettings, private readonly handler: Http2Handler, private readonly events: Http2Events) {
    const h2 = settings.http2;
    this.now = settings.now ?? (() => performance.now());
    this.server = createServer({
      settings: {
        maxConcurrentStreams: h2.maxConcurrentStreams,
        // Twice the request path's limits: a list up to them is read and refused with 431 (and
        // recorded); a larger one is reset before it is buffered whole.
        maxHeaderListSize: 2 * settings.maxHeaderBytes,
        enablePush: false,
        enableConnectProtocol: false,
      },
      // Field pairs, pseudo-header fields included.
      maxHeaderListPairs: 2 * (settings.maxHeaderCount + 5),
      maxSessionMemory: h2.maxSessionMemoryMb,
      maxSessionInvalidFrames: h2.maxInvalidFrames,
      maxSessionRejectedStreams: h2.maxRejectedStreams,
      // The gateway sends no pings of its own; a client's are answered by nghttp2, whose bounded
      // outbound queue ends a ping or SETTINGS flood (CVE-2019-9512, CVE-2019-9515).
      maxOutstandingPings: 10,
      maxSettings: 32,
      Http2ServerRequest: CountingRequest,
      Http2ServerResponse: CountingResponse,
    });
    this.server.on('session', (session: Http2Session) => this.onSession(session));
    const dispatch = (req: CountingRequest, res: CountingResponse): void => this.onRequest(req, res);
    this.server.on('request', dispatch);
    // Expectations and CONNECT go through the request path too: it answers 100-continue only when
    // forwarding, 417 for other expectations, and refuses CONNECT like HTTP/1.1's.
    this.server.on('checkContinue', dispatch);
    this.server.on('checkExpectation', dispatch);
    this.server.on('connect', dispatch);
    // Session errors are handled per session (onSession); the server must not rethrow them.
    this.server.on('sessionError', () => undefined);
  }

  /** Takes over a TLS connection whose ALPN chose `h2`. */
  accept(socket: TLSSocket): void {
    if (this.stopping) { socket.destroy(); return; }
    // node:http2 makes the session synchronously, in this emit ('session' event).
    this.accepting = socket;
    try {
      this.server.emit('connection', socket);
    } finally {
      this.accepting = null;
    }
  }

  /** Sessions open now. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Stops taking new streams: every session gets GOAWAY; streams in progress finish, then the
   * session closes (RFC 9113 §6.8 graceful shutdown).
   */
  drain(): void {
    this.stopping = true;
    for (const [session, state] of this.sessions) {
      state.ending ??= 'shutdown';
      if (!session.closed && !session.destroyed) session.close();
    }
  }

  /** Ends every session now, streams in progress included. */
  destroyAll(): void {
    this.stopping = true;
    for (const [session, state] of this.sessions) {
      state.ending ??= 'shutdown';
      session.destroy();
    }
  }

  private onSession(session: Http2Session): void {
    const state: SessionState = { open: 0, resets: 0, windowStart: this.now(), ending: null, connection: this.accepting };
    this.sessions.set(session, state);
    session.setTimeout(this.settings.idleTimeoutMs, () => {
      // Streams in progress are bounded by their own limits (body idle, write idle, upstream
      // timeouts); only a session with none open is idle.
      if (state.open > 0 || session.closed || session.destroyed) return;
      state.ending ??= 'idle';
      session.close();
    });
    session.on('goaway', () => { state.ending ??= 'client'; });
    session.on('error', (err: NodeJS.ErrnoException) => { state.ending ??= sessionErrorReason(err); });
    session.on('frameError', () => { state.ending ??= 'protocol_error'; });
    session.on('stream', (stream: ServerHttp2Stream) => {
      stream.once('close', () => {
        // A reset by the client (or a stream nghttp2 refused mid-way) before any response was sent.
        if (stream.rstCode !== constants.NGHTTP2_NO_ERROR && !stream.headersSent && !session.destroyed && !session.closed) this.countReset(session, state);
      });
    });
    session.once('close', () => {
      this.sessions.delete(session);
      this.events.sessionClosed(state.ending ?? 'client');
    });
    if (this.stopping) { state.ending = 'shutdown'; session.close(); }
  }

  /** Counts one early reset on a session; past the limit in the window, the session is ended. */
  private countReset(session: Http2Session, state: SessionState): void {
    const now = this.now();
    const h2 = this.settings.http2;
    if (now - state.windowStart >= h2.streamResetWindowMs) {
      state.windowStart = now;
      state.resets = 0;
    }
    state.resets++;
    if (state.resets > h2.maxStreamResets) {
      state.ending ??= 'rapid_reset';
      session.destroy(new Error(`${state.resets} streams reset before an answer within ${h2.streamResetWindowMs} ms`), constants.NGHTTP2_ENHANCE_YOUR_CALM);
    }
  }

  private onRequest(req: CountingRequest, res: CountingResponse): void {
    const stream = req.stream;
    const state = this.sessions.get(stream.session as Http2Session);
    const channel = new StreamChannel(stream, req, res, state?.connection ?? null);
    setImmediate(() => {
      if (stream.destroyed || stream.closed) {
        this.events.streamReset('unhandled');
        return;
      }
      // Answered before the client finished its body (a denial, a 408, an early upstream answer):
      // RST_STREAM NO_ERROR once the response is out tells it to stop sending (RFC 9113 §8.1), and
      // closes the stream, so its record is written; the connection's other streams go on.
      stream.once('finish', () => {
        if (!stream.endAfterHeaders && !stream.readableEnded && !stream.closed && !stream.destroyed) stream.close(constants.NGHTTP2_NO_ERROR);
      });
      if (state !== undefined) {
        state.open++;
        stream.once('close', () => {
          state.open--;
          // Before any response: the gateway resets a stream only after its headers went out.
          if (stream.rstCode !== constants.NGHTTP2_NO_ERROR && !stream.headersSent) this.events.streamReset('handled');
        });
      }
      // The compatibility API's request and response stand for node:http's: the request path
      // reads what both have (method, url, headers, rawHeaders, body stream; writeHead, write, end).
      this.handler(req as unknown as IncomingMessage, res as unknown as ServerResponse, channel);
    });
  }
}

/** The label of a session error: a flood node:http2 or nghttp2 cut off, or another protocol fault. */
function sessionErrorReason(err: NodeJS.ErrnoException): Http2SessionEnd {
  // node:http2's count of invalid and empty frames (maxInvalidFrames), or nghttp2's flood guard
  // (PING and SETTINGS acknowledgements piling up unread: CVE-2019-9512, CVE-2019-9515).
  if (err.code === 'ERR_HTTP2_TOO_MANY_INVALID_FRAMES' || (err.code === 'ERR_HTTP2_ERROR' && /flood/i.test(err.message))) return 'flood';
  return 'protocol_error';
}

/**
 * Puts an HTTP/2 front beside an HTTPS server's HTTP/1.1: the server offers `h2` and `http/1.1` by
 * ALPN (its options must carry `ALPNProtocols`), and each TLS connection goes by what ALPN chose —
 * `h2` to the front, anything else to the server's own HTTP/1.1 connection handling, untouched.
 */
export function dispatchByAlpn(server: TlsServer, front: Http2Front): void {
  const http1 = server.listeners('secureConnection') as ((socket: TLSSocket) => void)[];
  server.removeAllListeners('secureConnection');
  server.on('secureConnection', (socket: TLSSocket) => {
    // A connection a check before this one ended (a refused client certificate) is not served.
    if (socket.destroyed) return;
    if (socket.alpnProtocol === 'h2') { front.accept(socket); return; }
    for (const listener of http1) listener.call(server, socket);
  });
}

/** What ALPN offers on a TLS listener with HTTP/2: h2 preferred, HTTP/1.1 kept. */
export const ALPN_PROTOCOLS: readonly string[] = Object.freeze(['h2', 'http/1.1']);
