import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import { TLSSocket, type SecureContextOptions, type TlsOptions } from 'node:tls';
import type { PeerVerification } from '../tls/client-auth.js';
import type { AddressInfo, Socket } from 'node:net';
import { DENIALS, deny, type Denial } from '../pipeline/denials.js';
import { problemBody } from '../pipeline/problem.js';
import type { ClientChannel } from '../pipeline/exchange.js';
import { ALPN_PROTOCOLS, dispatchByAlpn, Http2Front, type Http2Events, type Http2FrontSettings } from './h2-front.js';
import { ListenError } from './listen-error.js';
import { notePeerAddress } from '../lib/peer-address.js';

/**
 * Makes the server a listener runs on: `http.createServer`, or (for a TLS listener) a closure over
 * `https.createServer` with its certificates. The listener adds its own options and handler.
 */
export type ServerFactory = (options: ServerOptions, handler: RequestListener) => Server;

/** Limits node:http enforces on a listener's connections. Unset ones keep Node's defaults. */
export interface ListenerLimits {
  /** Request line plus headers; fixed once the server exists (a restart changes it). */
  readonly maxHeaderBytes?: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs?: number;
  readonly maxHeaderCount?: number;
  readonly maxConnections?: number;
  /** How often node:http checks the two request timeouts. */
  readonly connectionsCheckingIntervalMs?: number;
}

export interface ListenerSettings {
  /** The listener's name in `Gateway.addresses()` and in logs: `http`, `admin`. */
  readonly name: string;
  /** Where its address is configured, for messages: `listen.http`, `admin`. Default `listen.<name>`. */
  readonly option?: string;
  readonly port: number;
  readonly host: string;
  readonly limits: ListenerLimits;
  /**
   * Whether `Expect` requests go to the handler (which sends 100-continue itself, or answers 417)
   * instead of node:http answering them.
   */
  readonly handlerAnswersExpect: boolean;
  /** A TLS listener's secure context (certificate, key, protocol versions); absent: plain HTTP. */
  readonly tls?: SecureContextOptions;
  /** Whether a TLS listener asks for client certificates, and refuses handshakes without a valid one. */
  readonly peer?: PeerVerification;
  /** HTTP/2 beside HTTP/1.1 on a TLS listener, chosen by ALPN (see h2-front.ts); absent: HTTP/1.1 only. */
  readonly http2?: Http2FrontSettings;
  /** A TLS listener's server-level behaviour: SNI, handshake timeout, OCSP stapling, handshake failures. */
  readonly tlsServer?: TlsServerHooks;
}

/** What a TLS listener asks of its owner beyond the default secure context (see src/tls/tls-serving.ts). */
export interface TlsServerHooks {
  /** Server options: the SNI callback and the handshake timeout. */
  readonly options: Pick<TlsOptions, 'SNICallback' | 'handshakeTimeout'>;
  /** A handshake that failed (protocol, cipher, certificate, timeout, reset); the socket is destroyed already. */
  handshakeFailed(err: NodeJS.ErrnoException, socket: TLSSocket): void;
  /** A client asked for the certificate's status (OCSP stapling): `done` with the response, or none. */
  ocspRequest(certificate: Buffer, issuer: Buffer, done: (err: Error | null, response?: Buffer) => void): void;
}

/** The request being handled on a connection, as far as connection-level errors concern it. */
export interface RequestInProgress {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** Whether its response is over (sent, failed or aborted). */
  readonly responseClosed: boolean;
  /** The peer closed the connection while this request was in progress. */
  clientClosed(): void;
  /** A parse error inside this request's own bytes (its body): this request is the one refused. */
  refuse(denial: Denial): void;
}

/**
 * A connection-level rejection, recorded once: a request the HTTP parser or the listener refused
 * (`refused`, answered with `requestId`), or bytes after a message that closed the connection,
 * not processed (`discarded`).
 */
export type SocketRejection =
  | { readonly kind: 'refused'; readonly listener: string; readonly socket: Socket; readonly req: IncomingMessage | null; readonly requestId: string; readonly denial: Denial }
  | { readonly kind: 'discarded'; readonly listener: string; readonly socket: Socket };

/** What a listener needs from the application it serves. */
export interface ListenerHost {
  /** Handles one request; answers it and writes its record. `stream`: its HTTP/2 stream, absent on HTTP/1.x. */
  handle(req: IncomingMessage, res: ServerResponse, stream?: ClientChannel): void;
  /** The request in progress on a connection, so connection errors are attributed to it. */
  inProgress(socket: Socket): RequestInProgress | undefined;
  /** Records one socket-level rejection (audit record, metrics). */
  recordRejection(rejection: SocketRejection): void;
  /** The header the request id is sent in. */
  requestIdHeader(): string;
  /** A TLS connection whose handshake completed, before any request on it is read (client certificate checks). */
  secureConnection?(socket: TLSSocket): void;
  /**
   * A TLS connection that failed before its handshake completed: true when the host recorded it
   * (a refused client certificate), and the listener then records nothing more for it.
   */
  tlsClientError?(err: NodeJS.ErrnoException, socket: TLSSocket): boolean;
  /** Where an HTTP/2 front reports session ends and early stream resets (metrics). */
  readonly http2Events?: Http2Events;
}

/** node:http for a plain listener, node:https with the listener's secure context for a TLS one. */
function defaultFactory(settings: ListenerSettings): ServerFactory {
  const tls = settings.tls;
  if (tls === undefined) return createServer;
  const peer = settings.peer ?? {};
  const alpn = settings.http2 === undefined ? {} : { ALPNProtocols: [...ALPN_PROTOCOLS] };
  return (options, handler) => createHttpsServer({ ...options, ...tls, ...peer, ...alpn, ...settings.tlsServer?.options }, handler);
}

/**
 * One listening socket and its node:http server: its limits, its connection-level error handling
 * (parser errors answered as problem+json, CONNECT refused, bytes after a closing message
 * discarded) and its listen, drain and close. Constructing one opens nothing.
 */
export class Listener {
  readonly name: string;
  private readonly server: Server;
  /** The HTTP/2 side of a TLS listener, when on. */
  private readonly h2: Http2Front | null = null;
  /** The bind under way, until it succeeds or fails. */
  private binding: Promise<unknown> | null = null;

  constructor(private readonly settings: ListenerSettings, private readonly host: ListenerHost, serverFactory: ServerFactory = defaultFactory(settings)) {
    this.name = settings.name;
    const limits = settings.limits;
    this.server = serverFactory({
      ...(limits.maxHeaderBytes === undefined ? {} : { maxHeaderSize: limits.maxHeaderBytes }),
      ...(limits.connectionsCheckingIntervalMs === undefined ? {} : { connectionsCheckingInterval: limits.connectionsCheckingIntervalMs }),
      // The application answers a missing Host itself, as problem+json with an audit record.
      requireHostHeader: false,
      insecureHTTPParser: false,
    }, (req, res) => host.handle(req, res));
    this.applyLimits(limits);
    if (settings.handlerAnswersExpect) {
      // Expectations go through the handler too: 100-continue is sent only when the request will
      // be forwarded, and anything else is answered 417 there.
      this.server.on('checkContinue', (req, res) => this.server.emit('request', req, res));
      this.server.on('checkExpectation', (req, res) => this.server.emit('request', req, res));
    }
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.onClientError(err, socket));
    const hooks = settings.tlsServer;
    if (hooks !== undefined && this.server instanceof HttpsServer) {
      // node:https passes handshake failures on as 'clientError', which would answer them in plain
      // HTTP over a connection that never became TLS: they are counted and sampled here instead.
      this.server.removeAllListeners('tlsClientError');
      this.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
        socket.destroy();
        // A refused client certificate is the host's to record (once); every other failure is sampled here.
        if (host.tlsClientError?.(err, socket) === true) return;
        hooks.handshakeFailed(err, socket);
      });
      // Read while the connection is new: a TLS connection Node ends for its client certificate has
      // released its handle before it is reported, and its record still names the client (peerAddress).
      this.server.on('connection', (raw: Socket) => { notePeerAddress(raw); });
      this.server.on('OCSPRequest', (certificate: Buffer, issuer: Buffer, done: (err: Error | null, response?: Buffer) => void) => hooks.ocspRequest(certificate, issuer, done));
    }
    // No 'upgrade' listener: Node then hands upgrade offers to the request handler like any request,
    // which ignores an h2c offer and refuses every other upgrade; nothing is ever tunnelled.
    // CONNECT would turn the listener into an open tunnel; answered, recorded, never tunnelled.
    this.server.on('connect', (req: IncomingMessage, socket: Socket) => {
      this.reject(socket, deny('invalid_target', 'CONNECT (authority-form target)'), req);
    });
    if (settings.http2 !== undefined && this.server instanceof HttpsServer) {
      const events = host.http2Events ?? { sessionClosed: () => undefined, streamReset: () => undefined };
      this.h2 = new Http2Front(settings.http2, (req, res, stream) => host.handle(req, res, stream), events);
      dispatchByAlpn(this.server, this.h2);
    }
    if (this.server instanceof HttpsServer && host.secureConnection !== undefined) {
      // Before node:https's own listener hands the socket to the HTTP parser (and after the ALPN
      // dispatch is in place, so HTTP/2 connections are checked too): a connection the check ends
      // never has a request read from it.
      this.server.prependListener('secureConnection', (socket: TLSSocket) => host.secureConnection?.(socket));
    }
  }

  /** Whether connections are TLS. */
  get secure(): boolean {
    return this.settings.tls !== undefined;
  }

  /**
   * Swaps a TLS listener's secure context: new handshakes use it, open connections go on with the
   * one they were made with. Throws (leaving the current one) when the options cannot make one.
   */
  updateTls(options: SecureContextOptions, peer?: PeerVerification): void {
    if (!(this.server instanceof HttpsServer)) throw new Error(`listener ${this.name} is not a TLS listener`);
    this.server.setSecureContext(options);
    // Read by node:tls from the server for each new connection: a handshake that starts after this
    // asks for (or requires) a client certificate as the new config says.
    if (peer !== undefined) Object.assign(this.server, { requestCert: peer.requestCert, rejectUnauthorized: peer.rejectUnauthorized });
  }

  /** Applies limits; all but maxHeaderBytes and the checking interval can change on a running server. */
  applyLimits(limits: ListenerLimits): void {
    this.server.headersTimeout = limits.headersTimeoutMs;
    this.server.requestTimeout = limits.requestTimeoutMs;
    if (limits.keepAliveTimeoutMs !== undefined) this.server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    // One more than the limit, so an excess is seen and refused (Node silently drops fields past it).
    if (limits.maxHeaderCount !== undefined) this.server.maxHeadersCount = limits.maxHeaderCount + 1;
    if (limits.maxConnections !== undefined) this.server.maxConnections = limits.maxConnections;
  }

  /**
   * Binds the configured port and address; resolves once listening. A bind that fails (port in
   * use, privileged port, address not on this machine, name that does not resolve) rejects with a
   * ListenError naming the option and what would be right.
   */
  async listen(): Promise<AddressInfo> {
    const { name, option = `listen.${name}`, port, host } = this.settings;
    this.server.listen(port, host);
    const bound = once(this.server, 'listening');
    this.binding = bound;
    try {
      await bound;
    } catch (err) {
      throw ListenError.from(err as NodeJS.ErrnoException, { name, option, port, host });
    } finally {
      this.binding = null;
    }
    return this.server.address() as AddressInfo;
  }

  get listening(): boolean {
    return this.server.listening;
  }

  /** The bound address, or null before listen() and after close. */
  address(): AddressInfo | null {
    return this.server.address() as AddressInfo | null;
  }

  /**
   * Stops accepting connections and closes the idle ones; requests in progress go on. Resolves
   * once every connection is gone (see closeAllConnections to end the rest).
   */
  stopAccepting(): Promise<void> {
    // Closed while a worker's bind waits for its primary, Node 20 throws on the primary's late
    // answer (an uncaught TypeError in listenOnPrimaryHandle): the bind is let finish first.
    const binding = this.binding;
    if (binding !== null) return binding.then(() => this.closeServer(), () => this.closeServer());
    return this.closeServer();
  }

  private closeServer(): Promise<void> {
    const closed = new Promise<void>((done) => this.server.close(() => done()));
    this.server.closeIdleConnections();
    // HTTP/2 sessions get GOAWAY: their streams in progress finish, then they close.
    this.h2?.drain();
    return closed;
  }

  /** Ends every remaining connection, requests in progress included. */
  closeAllConnections(): void {
    this.server.closeAllConnections();
    this.h2?.destroyAll();
  }

  /** Stops accepting and ends every connection now. */
  async close(): Promise<void> {
    if (this.binding !== null) await this.binding.catch(() => undefined);
    const closed = this.stopAccepting();
    this.closeAllConnections();
    await closed;
  }

  /** Parser-level rejections (malformed framing, oversized headers, timeouts): answered and recorded here. */
  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    // node:https reports a failed handshake here too: one about a client certificate is recorded once, by the host.
    if (socket instanceof TLSSocket && this.host.tlsClientError?.(err, socket) === true) {
      socket.destroy();
      return;
    }
    const code = err.code ?? '';
    let denial: Denial;
    if (code === 'HPE_HEADER_OVERFLOW') denial = deny('headers_too_large', 'request line and headers exceed maxHeaderBytes');
    else if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT') denial = deny('request_timeout', code);
    else if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'HPE_INVALID_EOF_STATE') {
      // The peer closed, mid-request or between requests: nobody is left to answer.
      this.host.inProgress(socket)?.clientClosed();
      socket.destroy();
      return;
    }
    else if (code === 'HPE_CLOSED_CONNECTION') {
      // Bytes after a message that closes the connection (HTTP/1.0 without keep-alive, or after
      // `Connection: close`): nothing more is read, answered or forwarded on this connection.
      this.discard(socket);
      return;
    }
    // An HTTP/2 connection preface (prior knowledge) on a plain listener: h2c is not served here.
    else if (code === 'HPE_PAUSED_H2_UPGRADE') denial = deny('bad_request', 'HTTP/2 connection preface (PRI * HTTP/2.0) on a plain listener: h2c is not served');
    else denial = deny('bad_request', `${code}: ${err.message}`.slice(0, 300));
    const current = this.host.inProgress(socket);
    if (current !== undefined && !current.req.complete) {
      // The error is inside the request being handled (its body): that request is the one refused,
      // with its own request id and a single record.
      current.refuse(denial);
      return;
    }
    if (current !== undefined && !current.responseClosed) {
      // A later pipelined request is malformed: let the response in progress finish first, so the
      // client never reads the 400 as the answer to the earlier request. A response already closed
      // (its exchange not yet recorded) emits no second 'close': the refusal is answered at once.
      current.res.once('close', () => this.reject(socket, denial, null));
      return;
    }
    this.reject(socket, denial, null);
  }

  /** Closes a connection whose further bytes follow a closing message, with one record saying so. */
  private discard(socket: Socket): void {
    const current = this.host.inProgress(socket);
    // The response to the message before these bytes goes out first.
    if (current !== undefined && !current.responseClosed) { current.res.once('close', () => this.discard(socket)); return; }
    socket.destroySoon();
    this.host.recordRejection({ kind: 'discarded', listener: this.name, socket });
  }

  /** Answers a refused request on the raw socket (no response object exists) and closes it. */
  private reject(socket: Socket, denial: Denial, req: IncomingMessage | null): void {
    const requestId = randomUUID();
    const entry = DENIALS[denial.code];
    if (socket.writable) {
      const body = problemBody(denial, requestId);
      // Like every answer of the gateway's own: never cached, never sniffed as another media type.
      socket.end(`HTTP/1.1 ${entry.status} ${entry.title}\r\ncontent-type: application/problem+json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n${this.host.requestIdHeader()}: ${requestId}\r\n` +
        `cache-control: no-store\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n${body}`);
    }
    socket.destroySoon();
    this.host.recordRejection({ kind: 'refused', listener: this.name, socket, req, denial, requestId });
  }
}
