import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { resolve } from 'node:path';
import { once } from 'node:events';
import { AuditLog, type AuditRecord, type AuditState } from '../audit/audit-log.js';
import { auditTarget } from '../audit/audit-target.js';
import { compileConfig, type CompiledConfig, type Limits } from '../config/compile.js';
import { ConfigError, formatProblem } from '../config/errors.js';
import { loadConfigFile } from '../config/load.js';
import { normaliseIp } from '../lib/ip.js';
import { DENIALS, deny, type Denial } from '../pipeline/denials.js';
import type { Exchange } from '../pipeline/exchange.js';
import { problemBody } from '../pipeline/problem.js';
import { ResourceSet, type Generation } from '../lifecycle/resources.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { newRegistries, type Registries } from '../config/compile-auth.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { createAdminServer } from './admin.js';
import type { AdminOutcome } from './admin-keys.js';
import { handleRequest, reply, type HandlerHost, type Runtime } from './handle-request.js';

export interface GatewayOptions {
  /** Operational log destination (default stdout). */
  readonly logDestination?: NodeJS.WritableStream;
  readonly env?: NodeJS.ProcessEnv;
  /** The clock every component reads (default: the machine's). */
  readonly clock?: Clock;
}

export type ReloadResult = { ok: true; version: string; changed: boolean } | { ok: false; errors: string[] };

export interface Addresses {
  readonly http: AddressInfo;
  readonly admin: AddressInfo | null;
}

/**
 * A running gateway: the proxy listener, the admin listener, the audit trail and the current
 * runtime (config + upstream pools), which reload swaps atomically.
 */
export class Gateway implements HandlerHost {
  runtime: Runtime;
  draining = false;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Every long-lived resource (key sets, stores, upstream pools), started and retired in one order. */
  private readonly resources: ResourceSet;
  private readonly audit: AuditLog;
  private readonly server: Server;
  private admin: Server | null = null;
  private inFlight = 0;
  /** The exchange in progress on each client connection, so connection-level errors can be attributed. */
  private readonly active = new WeakMap<Socket, Exchange>();
  private idle: (() => void) | null = null;
  private reloading: Promise<ReloadResult> = Promise.resolve({ ok: true, version: '', changed: false });

  private constructor(
    config: CompiledConfig, private readonly options: GatewayOptions, private readonly registries: Registries, resources: ResourceSet, logger: Logger,
  ) {
    this.logger = logger;
    this.metrics = resources.metrics;
    this.resources = resources;
    // Until start() prepares the first generation, requests cannot arrive (nothing listens).
    this.runtime = { config, generation: null as unknown as Generation };
    this.audit = new AuditLog(resolve(config.dataDir, config.audit.file), config.audit.maxQueueBytes, config.audit.retryIntervalMs, this.logger);
    this.metrics.configInfo.set({ version: config.version }, 1);
    const limits = config.limits;
    this.server = createServer({
      maxHeaderSize: limits.maxHeaderBytes,
      connectionsCheckingInterval: 1000,
      // The pipeline answers a missing Host itself, as problem+json with an audit record.
      requireHostHeader: false,
      insecureHTTPParser: false,
    }, (req, res) => {
      this.inFlight++;
      this.metrics.inFlight.inc();
      void handleRequest(this, req, res);
    });
    this.applyServerLimits(limits);
    // Expectations go through the pipeline too: 100-continue is sent only when the request will be
    // forwarded, and anything else is answered 417 there.
    this.server.on('checkContinue', (req, res) => this.server.emit('request', req, res));
    this.server.on('checkExpectation', (req, res) => this.server.emit('request', req, res));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.onClientError(err, socket));
    // No 'upgrade' listener: Node then hands upgrade offers to the request handler like any request,
    // which ignores an h2c offer and refuses every other upgrade; nothing is ever tunnelled.
    // CONNECT would turn the gateway into an open tunnel; answered, audited, never tunnelled.
    this.server.on('connect', (req: IncomingMessage, socket: Socket) => {
      this.rejectSocket(socket, deny('invalid_target', 'CONNECT (authority-form target)'), req);
    });
  }

  /** Limits enforced by node:http itself; all but maxHeaderBytes can change on a running server. */
  private applyServerLimits(limits: Limits): void {
    this.server.headersTimeout = limits.headersTimeoutMs;
    this.server.requestTimeout = limits.requestTimeoutMs;
    this.server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    // One more than the limit, so an excess is seen and refused (Node silently drops fields past it).
    this.server.maxHeadersCount = limits.maxHeaderCount + 1;
    this.server.maxConnections = limits.maxConnections;
  }

  /** Loads, validates and compiles a config file; throws ConfigError with every located problem. */
  static async fromFile(file: string, options: GatewayOptions = {}): Promise<Gateway> {
    const loaded = await loadConfigFile(resolve(file), options.env);
    const registries = newRegistries();
    const clock = options.clock ?? systemClock;
    const logger = createLogger(loaded.raw.log?.level ?? 'info', options.logDestination);
    const resources = new ResourceSet({ logger, clock, metrics: new Metrics() });
    const config = compileConfig(loaded, registries, { resources, clock });
    return new Gateway(config, options, registries, resources, logger);
  }

  /** Starts the limit stores a config that is going live uses and stops what it no longer uses. */
  private async activate(config: CompiledConfig): Promise<void> {
    await this.registries.limitStores.activate(config.rateLimiting.inUse, this.logger, (store, up) => { this.metrics.rateLimitStoreUp.set({ store }, up ? 1 : 0); });
  }

  get config(): CompiledConfig {
    return this.runtime.config;
  }

  auditHealthy(): boolean {
    return this.audit.healthy;
  }

  /** Why the audit trail is or is not taking records (readiness reports it). */
  auditState(): AuditState {
    return this.audit.state;
  }

  /** Opens the audit trail, fetches remote key sets (each bounded by its timeout) and binds both listeners. */
  async start(): Promise<Addresses> {
    const config = this.config;
    await this.audit.open();
    await this.activate(config);
    this.runtime = { config, generation: await this.resources.prepare(config.resources) };
    this.server.listen(config.listen.http.port, config.listen.http.host);
    await once(this.server, 'listening');
    if (config.admin.enabled) {
      this.admin = createAdminServer(this);
      this.admin.listen(config.admin.port, config.admin.host);
      await once(this.admin, 'listening');
    }
    const addresses = this.addresses();
    this.logger.info({ http: addresses.http.port, admin: addresses.admin?.port ?? null, version: config.version, routes: config.routes.length }, 'gateway listening');
    return addresses;
  }

  addresses(): Addresses {
    return { http: this.server.address() as AddressInfo, admin: (this.admin?.address() ?? null) as AddressInfo | null };
  }

  /** Readiness: listening, audit trail writable, not draining. */
  ready(): boolean {
    return this.server.listening && this.audit.healthy && !this.draining;
  }

  /**
   * Re-reads the config file, validates and compiles it, and swaps it in atomically. An invalid
   * config is rejected with its located errors and the running one keeps serving. Requests in
   * flight finish on the config they started with. Listener and audit settings need a restart.
   */
  reload(): Promise<ReloadResult> {
    this.reloading = this.reloading.then(() => this.doReload(), () => this.doReload());
    return this.reloading;
  }

  private async doReload(): Promise<ReloadResult> {
    const old = this.config;
    let next: CompiledConfig;
    try {
      next = compileConfig(await loadConfigFile(old.file, this.options.env), this.registries, { resources: this.resources, clock: this.options.clock ?? systemClock });
    } catch (err) {
      const errors = err instanceof ConfigError ? err.problems.map(formatProblem) : [(err as Error).message];
      this.metrics.reloads.inc({ result: 'rejected' });
      this.logger.error({ errors }, 'config reload rejected; the running config keeps serving');
      return { ok: false, errors };
    }
    if (next.version === old.version) return { ok: true, version: old.version, changed: false };
    const restartOnly = ['listen', 'admin', 'dataDir', 'audit', 'logLevel'] as const;
    const needRestart: string[] = restartOnly.filter((k) => JSON.stringify(next[k]) !== JSON.stringify(old[k]));
    if (next.limits.maxHeaderBytes !== old.limits.maxHeaderBytes) needRestart.push('limits.maxHeaderBytes');
    if (needRestart.length > 0) this.logger.warn({ options: needRestart }, 'these options change only on restart; the running values stay');
    await this.activate(next);
    const generation = await this.resources.prepare(next.resources);
    const previous = this.runtime.generation;
    this.applyServerLimits(next.limits);
    this.runtime = { config: next, generation };
    // Resources the new config no longer uses stop once the last request that started on the old one is done.
    void this.resources.retire(previous);
    this.metrics.configInfo.reset();
    this.metrics.configInfo.set({ version: next.version }, 1);
    this.metrics.reloads.inc({ result: 'applied' });
    this.logger.info({ version: next.version, previous: old.version }, 'config reloaded');
    return { ok: true, version: next.version, changed: true };
  }

  track(ex: Exchange): void {
    this.active.set(ex.socket, ex);
  }

  /** One audit record and the metrics for a finished exchange. */
  finish(ex: Exchange): void {
    this.inFlight--;
    this.metrics.inFlight.dec();
    if (this.active.get(ex.socket) === ex) this.active.delete(ex.socket);
    const res = ex.res;
    if (!res.writableFinished && ex.decision === 'allow') { ex.decision = 'abort'; ex.reason ||= 'client closed the connection'; }
    // 499 (client closed request) is the audit status of a response that never started.
    const status = res.headersSent ? res.statusCode : ex.denial !== null ? DENIALS[ex.denial.code].status : 499;
    const latencyMs = Math.round((performance.now() - ex.startedAt) * 1000) / 1000;
    const routeName = ex.route?.name ?? null;
    const record: AuditRecord = {
      time: new Date().toISOString(),
      requestId: ex.requestId,
      method: ex.req.method ?? '',
      path: ex.target?.path ?? auditTarget(ex.req.url),
      route: routeName,
      status,
      latencyMs,
      decision: ex.decision,
      reason: ex.denial?.code ?? (ex.decision === 'allow' ? null : ex.decision === 'abort' ? (ex.discarded ? 'pipeline_discarded' : 'client_aborted') : 'upstream_aborted'),
      detail: ex.reason === '' ? null : ex.reason,
      identity: ex.identity === null ? null : { subject: ex.identity.subject, authMethod: ex.identity.method, keyId: ex.identity.keyId },
      tenant: ex.identity?.tenant ?? null,
      clientIp: ex.clientIp,
      userAgent: ex.req.headers['user-agent'] ?? null,
      upstream: ex.route?.upstream.name ?? null,
      upstreamStatus: ex.upstreamStatus,
      bytesIn: ex.bytesIn,
      bytesOut: ex.socket.bytesWritten - ex.bytesOutBase,
      configVersion: ex.config.version,
      limit: ex.limitName,
    };
    this.writeAudit(record);
    const m = this.metrics;
    m.request(routeName ?? '', status, ex.decision, latencyMs / 1000);
    if (ex.denial !== null) m.denials.inc({ reason: ex.denial.code });
    if (ex.upstreamLatencyMs !== null && ex.route !== null) m.upstream(ex.route.upstream.name, ex.upstreamLatencyMs / 1000);
    if (this.inFlight === 0 && this.idle !== null) this.idle();
  }

  /**
   * The one audit record of an admin request (never the token, never a key's secret). `req` is
   * null for a request the HTTP parser refused on the admin listener.
   */
  auditAdmin(req: IncomingMessage | null, socket: Socket, requestId: string, outcome: AdminOutcome, authenticated: boolean, latencyMs: number): void {
    const decision = outcome.code === null ? 'allow' : DENIALS[outcome.code].status >= 500 ? 'error' : 'deny';
    this.writeAudit({
      time: new Date().toISOString(), requestId, method: req?.method ?? '', path: auditTarget(req?.url), route: 'admin',
      status: outcome.status, latencyMs: Math.round(latencyMs * 1000) / 1000, decision, reason: outcome.code, detail: outcome.detail,
      identity: authenticated ? { subject: 'admin', authMethod: 'adminToken', keyId: null } : null, tenant: null,
      clientIp: normaliseIp(socket.remoteAddress ?? ''), userAgent: req?.headers['user-agent'] ?? null, upstream: null, upstreamStatus: null,
      bytesIn: 0, bytesOut: 0, configVersion: this.config.version,
    });
    if (decision === 'allow' && req?.method === 'POST') this.logger.info({ requestId, keyId: outcome.keyId, detail: outcome.detail }, 'admin operation');
  }

  private writeAudit(record: AuditRecord): void {
    const before = this.audit.droppedRecords;
    this.audit.write(record);
    if (this.audit.droppedRecords !== before) this.metrics.auditDropped.inc();
  }

  /** Parser-level rejections (malformed framing, oversized headers, timeouts): answered and audited here. */
  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const code = err.code ?? '';
    let denial: Denial;
    if (code === 'HPE_HEADER_OVERFLOW') denial = deny('headers_too_large', 'request line and headers exceed maxHeaderBytes');
    else if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT') denial = deny('request_timeout', code);
    else if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'HPE_INVALID_EOF_STATE') {
      // The peer closed, mid-request or between requests: nobody is left to answer.
      const current = this.active.get(socket);
      if (current !== undefined && current.denial === null && current.decision === 'allow') {
        current.decision = 'abort';
        current.reason = 'client closed the connection mid-request';
      }
      socket.destroy();
      return;
    }
    else if (code === 'HPE_CLOSED_CONNECTION') {
      // Bytes after a message that closes the connection (HTTP/1.0 without keep-alive, or after
      // `Connection: close`): nothing more is read, answered or forwarded on this connection.
      this.discard(socket);
      return;
    }
    else denial = deny('bad_request', `${code}: ${err.message}`.slice(0, 300));
    const current = this.active.get(socket);
    if (current !== undefined && !current.req.complete) {
      // The error is inside the request being handled (its body): that exchange is the one denied,
      // with its own request id and a single audit record.
      if (current.res.headersSent) { current.decision = 'error'; current.reason = denial.reason; current.denial = denial; socket.destroy(); return; }
      reply(current, denial);
      return;
    }
    if (current !== undefined) {
      // A later pipelined request is malformed: let the response in progress finish first, so the
      // client never reads the 400 as the answer to the earlier request.
      const rejectAfter = (): void => this.rejectSocket(socket, denial, null);
      current.res.once('close', rejectAfter);
      return;
    }
    this.rejectSocket(socket, denial, null);
  }

  /** Closes a connection whose further bytes follow a closing message, with one audit record saying so. */
  private discard(socket: Socket): void {
    const current = this.active.get(socket);
    // The response to the message before these bytes goes out first.
    if (current !== undefined && !current.responseClosed) { current.res.once('close', () => this.discard(socket)); return; }
    socket.destroySoon();
    this.writeAudit({
      time: new Date().toISOString(), requestId: randomUUID(), method: '', path: '', route: null, status: 499, latencyMs: 0, decision: 'abort',
      reason: 'pipeline_discarded', detail: 'bytes after a message that closed the connection were not processed', identity: null, tenant: null,
      clientIp: normaliseIp(socket.remoteAddress ?? ''), userAgent: null, upstream: null, upstreamStatus: null, bytesIn: 0, bytesOut: 0, configVersion: this.config.version,
    });
  }

  private rejectSocket(socket: Socket, denial: Denial, req: IncomingMessage | null): void {
    const requestId = randomUUID();
    const status = DENIALS[denial.code].status;
    if (socket.writable) {
      const body = problemBody(denial, requestId);
      socket.end(`HTTP/1.1 ${status} ${DENIALS[denial.code].title}\r\ncontent-type: application/problem+json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n${this.config.requestIdHeader}: ${requestId}\r\nconnection: close\r\n\r\n${body}`);
    }
    socket.destroySoon();
    const config = this.config;
    this.writeAudit({
      time: new Date().toISOString(), requestId, method: req?.method ?? '', path: auditTarget(req?.url),
      route: null, status, latencyMs: 0, decision: 'deny', reason: denial.code, detail: denial.reason, identity: null, tenant: null,
      clientIp: normaliseIp(socket.remoteAddress ?? ''), userAgent: req?.headers['user-agent'] ?? null, upstream: null, upstreamStatus: null,
      bytesIn: 0, bytesOut: 0, configVersion: config.version,
    });
    this.metrics.requests.inc({ route: '', status: String(status), decision: 'deny' });
    this.metrics.denials.inc({ reason: denial.code });
  }

  /**
   * Graceful shutdown: stop accepting, let in-flight requests finish (up to drainTimeoutMs), then
   * close what is left, the upstream pools, the admin listener and the audit trail (flushed).
   */
  async stop(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const closed = new Promise<void>((done) => this.server.close(() => done()));
    this.server.closeIdleConnections();
    if (this.inFlight > 0) {
      const drained = new Promise<void>((done) => { this.idle = done; });
      const timer = setTimeout(() => this.idle?.(), this.config.drainTimeoutMs);
      await drained;
      clearTimeout(timer);
      if (this.inFlight > 0) this.logger.warn({ inFlight: this.inFlight }, 'drain timeout: closing remaining connections');
    }
    this.server.closeAllConnections();
    await closed;
    await Promise.all([...this.config.upstreamPools.values()].map((u) => u.destroy()));
    await this.resources.stopAll();
    if (this.admin !== null) {
      const admin = this.admin;
      await new Promise<void>((done) => { admin.close(() => done()); admin.closeAllConnections(); });
    }
    await this.registries.limitStores.stopAll();
    await this.audit.close();
    this.logger.info('gateway stopped');
  }
}
