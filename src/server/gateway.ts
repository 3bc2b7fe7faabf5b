import { processMonitor, type AnomalyMonitor } from '../audit/anomaly/monitor.js';
import { randomUUID } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { resolve } from 'node:path';
import type { AuditRecord, AuditState, AuditTrail } from '../audit/trail.js';
import type { AuditSink } from '../audit/sinks/sink.js';
import { createTrail, processName } from '../audit/trail-wiring.js';
import { adminFacts, auditRecord, connectionFacts, DISCARDED, exchangeFacts, handshakeFailureFacts } from '../audit/record-builder.js';
import { requestPath, type RequestPath } from '../pipeline/request-path.js';
import { RemoteJwks } from '../authn/jwt/remote-jwks.js';
import { compileConfig, type CompileContext, type CompiledConfig, type Limits } from '../config/compile.js';
import { ConfigError, formatProblem } from '../config/errors.js';
import { loadConfigFile, type LoadedConfig } from '../config/load.js';
import { DENIALS } from '../pipeline/denials.js';
import type { Exchange } from '../pipeline/exchange.js';
import type { HostServices } from '../lifecycle/host-services.js';
import { READY, readiness, ReadinessWatch, type ComponentReadiness, type Readiness } from '../lifecycle/readiness.js';
import { ResourceSet, type Generation } from '../lifecycle/resources.js';
import { inEffect, restartOnlyValues, type InEffect, type RestartOnlyValues } from '../lifecycle/restart-only.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { createLogger, LOG_LEVELS, type Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { insecureUpstreams, reportUpstreamTls } from '../proxy/upstream-tls-report.js';
import type { HostStateClient } from '../workers/host-state-client.js';
import { RevocationUnavailableError } from '../authn/oauth/redis-revocations.js';
import { keptUntil } from '../authn/oauth/revocation-request.js';
import { ADMIN_LISTENER_LIMITS, adminRejectionFacts, createAdminApp, logAdminOperation } from '../admin/admin-app.js';
import type { AdminHost, AdminOperation, KeyAdmin, ReloadResult } from '../admin/admin-host.js';
import { handleRequest, reply, type HandlerHost, type Runtime } from './handle-request.js';
import { ClientAuthGate, HANDSHAKE_REFUSALS, REFUSAL_RECORD_BURST } from '../tls/client-auth-gate.js';
import { peerVerification } from '../tls/client-auth.js';
import { redirectingHost } from './https-redirect.js';
import { RecordBudget, suppressedTail } from '../tls/handshake-failures.js';
import { HANDSHAKE_RECORDS_PER_SECOND, TlsServing } from '../tls/tls-serving.js';
import { ConfigUpkeep, refreshSigningKey } from './config-upkeep.js';
import { Listener, type ListenerHost, type ListenerLimits, type RequestInProgress, type SocketRejection } from './listener.js';

export type { ReloadResult } from '../admin/admin-host.js';

/** A reload's answer when the config was taken: the version in effect, and what waits for a restart. */
type ReloadApplied = Extract<ReloadResult, { ok: true }>;

/**
 * A reload's first half: refused (with the located errors), unchanged, or compiled and started,
 * waiting for `commit` (swap it in) or `abort` (stop what was started for it).
 */
export type StagedReload =
  | { readonly ok: false; readonly errors: string[] }
  | (ReloadApplied & { readonly changed: false })
  | (ReloadApplied & { readonly changed: true; commit(): ReloadResult; abort(): void });

export interface GatewayOptions {
  /** Operational log destination (default stdout). */
  readonly logDestination?: NodeJS.WritableStream;
  readonly env?: NodeJS.ProcessEnv;
  /** The clock every component reads (default: the machine's). */
  readonly clock?: Clock;
  /**
   * Set when this gateway is worker `worker` of a host's primary (`start --workers`): it opens no
   * admin listener (the primary serves the host's one) and its log lines name the worker.
   */
  readonly worker?: number;
  /** A worker's channel to the state its primary holds for the host (in-process limits, quotas, the guard's counts). */
  readonly hostState?: HostStateClient | null;
  /** What a worker's primary does once for the host (reading the key store's change log, fetching JWKS); absent: this process does it. */
  readonly host?: HostServices | null;
  /**
   * A worker's primary's restart-only settings (listeners, audit, log level, data directory): a
   * worker forked after a reload runs them, not the file's, like every other worker of the host.
   */
  readonly restartOnly?: RestartOnlyValues | null;
  /**
   * A worker's slot (1…N, kept by its replacement): its audit chain is `<instance>/w<slot>` in its
   * own file, resumed by the worker that replaces it. Absent: the chain is `<instance>/main`.
   */
  readonly auditSlot?: number;
  /** Audit sinks beyond those the config describes (a program embedding the gateway adds its own), each with its own queue. */
  readonly extraSinks?: readonly AuditSink[];
  /**
   * The trail to write to instead of the one the config describes: for a program that embeds the
   * gateway and records elsewhere, and for the benchmark's price of auditing (a trail that keeps
   * nothing). The gateway still refuses requests while it is not `healthy`.
   */
  readonly auditTrail?: ProcessTrail;
}

/** What a gateway process needs of its audit trail. */
export type ProcessTrail = Pick<AuditTrail, 'write' | 'append' | 'healthy' | 'state' | 'sinkStates' | 'open' | 'flushed' | 'close'> & Partial<Pick<AuditTrail, 'reloadSigningKey'>>;

/**
 * Compiles a loaded config as a running gateway puts it in effect: every restart-only setting at
 * its running value (`running`; null: at start, the file's own). Stores named relative to a
 * changed dataDir stay where they run too.
 */
export function compileInEffect(loaded: LoadedConfig, running: RestartOnlyValues | null, context: CompileContext): InEffect {
  const effect = inEffect(compileConfig(loaded, context), running);
  const dataDir = running?.dataDir;
  if (!effect.restartRequired.includes('dataDir') || typeof dataDir !== 'string') return effect;
  return inEffect(compileConfig({ ...loaded, raw: { ...loaded.raw, dataDir } }, context), running, effect.restartRequired);
}

/** The JWKS URLs a config fetches: one per remote key set it uses. */
export function jwksUris(config: CompiledConfig): string[] {
  return config.resources.flatMap((r) => (r instanceof RemoteJwks ? [r.options.uri] : []));
}

/** The bound address of each listener, by name; `admin` is null when the admin API is off. */
export interface Addresses {
  /** The plain listener's address; null with `listen.http.mode: off` (no plain listener). */
  readonly http: AddressInfo | null;
  readonly admin: AddressInfo | null;
  /** The HTTPS listener's address, when one is configured. */
  readonly https?: AddressInfo | null;
  readonly [listener: string]: AddressInfo | null;
}

/** The node:http limits of a proxy listener, from the config's `limits`. */
function proxyListenerLimits(limits: Limits): ListenerLimits {
  return {
    maxHeaderBytes: limits.maxHeaderBytes,
    headersTimeoutMs: limits.headersTimeoutMs,
    requestTimeoutMs: limits.requestTimeoutMs,
    keepAliveTimeoutMs: limits.keepAliveTimeoutMs,
    maxHeaderCount: limits.maxHeaderCount,
    maxConnections: limits.maxConnections,
    connectionsCheckingIntervalMs: 1000,
  };
}

/**
 * A running gateway: the proxy listener, the admin listener, the audit trail and the current
 * runtime (config + upstream pools), which reload swaps atomically.
 */
export class Gateway implements HandlerHost, AdminHost {
  runtime: Runtime;
  draining = false;
  /** Set once the first generation holds its resources; a reload before that is refused. */
  private started = false;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: Clock;
  /** Every long-lived resource (key sets, stores, upstream pools), started and retired in one order. */
  private readonly resources: ResourceSet;
  private readonly audit: ProcessTrail;
  /** The anomaly detectors over this process's records, once started (null: `audit.anomalies` absent or off). */
  private anomalies: AnomalyMonitor | null = null;
  /** The plain proxy listener; null with `listen.http.mode: off`. */
  private readonly http: Listener | null = null;
  /** The HTTPS proxy listener, when `listen.https` is configured. */
  private readonly https: Listener | null = null;
  /** The HTTPS listener's SNI table, OCSP staples and handshake-failure accounting, swapped on reload. */
  private readonly tlsServing: TlsServing | null = null;
  /**
   * Samples the records of connections refused for their client certificate, as handshake failures
   * are sampled: a client with no credential can open them as fast as it can handshake.
   */
  private readonly refusalBudget: RecordBudget;
  /** The admin API's listener, once started with the admin API on. */
  private readonly admin: Listener | null = null;
  /** Every listener, proxy listeners first, the admin listener last: started, drained and closed together. */
  private readonly listeners: Listener[] = [];
  private inFlight = 0;
  /** The exchange in progress on each client connection, so connection-level errors can be attributed. */
  private readonly active = new WeakMap<Socket, Exchange>();
  private idle: (() => void) | null = null;
  /** Reloads asked for and not yet committed or abandoned. */
  private reloadsUnderway = 0;
  /** Settles when the reload under way (staged, then committed or abandoned) is over: reloads run one at a time. */
  private reloadChain: Promise<void> = Promise.resolve();
  /** The restart-only settings this process runs with (fixed at start). */
  private readonly running: RestartOnlyValues;
  /** The version of the config file last taken (the config in effect differs while restart-only changes wait). */
  private fileVersion: string;
  /** Restart-only options the file changes; they apply on the next start. */
  private pendingRestart: readonly string[];
  private readonly watch: ReadinessWatch;
  /** File watch and expiry warnings; null in a worker (its primary does them for the host). */
  private readonly upkeep: ConfigUpkeep | null = null;

  private constructor(
    effect: InEffect, private readonly options: GatewayOptions, resources: ResourceSet, logger: Logger,
  ) {
    const config = effect.config;
    this.running = restartOnlyValues(config);
    this.fileVersion = effect.fileVersion;
    this.pendingRestart = effect.restartRequired;
    this.logger = logger;
    this.clock = options.clock ?? systemClock;
    this.refusalBudget = new RecordBudget(HANDSHAKE_RECORDS_PER_SECOND, this.clock, REFUSAL_RECORD_BURST);
    this.metrics = resources.metrics;
    this.resources = resources;
    // Until start() prepares the first generation, requests cannot arrive (nothing listens).
    this.runtime = { config, path: this.pathFor(config), generation: null as unknown as Generation };
    this.audit = options.auditTrail ?? createTrail(config, processName(options.auditSlot ?? null), { logger, clock: this.clock, metrics: this.metrics, ...(options.extraSinks === undefined ? {} : { extraSinks: options.extraSinks }) });
    this.metrics.configInfo.set({ version: config.version }, 1);
    this.metrics.configRestartRequired.set(effect.restartRequired.length);
    this.metrics.certificatesInUse(config.certificates);
    this.watch = new ReadinessWatch(() => this.evaluateReadiness(), logger, this.clock);
    if (options.worker === undefined) {
      this.upkeep = new ConfigUpkeep({ clock: this.clock, logger, reload: () => this.reload(), append: (record) => this.audit.append(record) });
    }
    const http = config.listen.http;
    if (http.mode !== 'off') {
      const handler = http.mode === 'redirect' ? redirectingHost(this, () => this.audit.healthy, () => this.https?.address()?.port ?? config.listen.https?.port ?? 443) : this;
      this.http = new Listener({ name: 'http', option: 'listen.http', port: http.port, host: http.host, limits: proxyListenerLimits(config.limits), handlerAnswersExpect: true }, this.proxyHost(handler));
      this.listeners.push(this.http);
    }
    const https = config.listen.https;
    if (https !== null && config.tls !== null) {
      this.tlsServing = new TlsServing(config.tls, {
        listener: 'https', handshakeTimeoutMs: https.handshakeTimeoutMs, clock: this.clock,
        count: (listener, reason) => this.metrics.tlsHandshakeFailures.inc({ listener, reason }),
        record: (failure) => this.writeAudit(auditRecord(handshakeFailureFacts(failure, randomUUID(), this.config.version), this.clock.now())),
      });
      const http2 = https.http2 === null ? {} : { http2: {
        http2: https.http2, maxHeaderBytes: config.limits.maxHeaderBytes, maxHeaderCount: config.limits.maxHeaderCount,
        idleTimeoutMs: config.limits.keepAliveTimeoutMs, now: () => this.clock.now(),
      } };
      this.https = new Listener({
        name: 'https', option: 'listen.https', port: https.port, host: https.host, limits: proxyListenerLimits(config.limits), handlerAnswersExpect: true,
        tls: config.tls.context, peer: peerVerification(config.tls.clientAuth), tlsServer: this.tlsServing, ...http2,
      }, this.proxyHost(this));
      this.listeners.push(this.https);
    }
    if (config.admin.enabled && options.worker === undefined) {
      // The admin API's settings are read here, once: they change on restart only.
      const app = createAdminApp(this);
      this.admin = new Listener({ name: 'admin', option: 'admin', port: config.admin.port, host: config.admin.host, limits: ADMIN_LISTENER_LIMITS, handlerAnswersExpect: false }, {
        handle: (req, res) => app.handle(req, res),
        inProgress: (socket) => app.inProgress(socket),
        recordRejection: (rejection) => this.recordRejection(rejection),
        requestIdHeader: () => this.config.requestIdHeader,
      });
      this.listeners.push(this.admin);
    }
  }

  /** What the proxy listeners serve: the request pipeline (`handler`'s), with this gateway's exchanges and records. */
  private proxyHost(handler: HandlerHost): ListenerHost {
    return {
      handle: (req, res, stream) => {
        this.inFlight++;
        this.metrics.requestsInFlight++;
        void handleRequest(handler, req, res, stream);
      },
      inProgress: (socket) => {
        const ex = this.active.get(socket);
        return ex === undefined ? undefined : exchangeInProgress(ex);
      },
      recordRejection: (rejection) => this.recordRejection(rejection),
      requestIdHeader: () => this.config.requestIdHeader,
      secureConnection: (socket) => this.clientAuthGate.secureConnection(socket),
      tlsClientError: (err, socket) => this.clientAuthGate.tlsClientError(err, socket),
      http2Events: {
        sessionClosed: (reason) => this.metrics.http2SessionsClosed.inc({ reason }),
        streamReset: (when) => this.metrics.http2StreamsReset.inc({ when }),
      },
    };
  }

  /** Client certificate checks after each handshake, against the config in effect; refusals recorded here. */
  private readonly clientAuthGate = new ClientAuthGate(() => this.config.tls?.clientAuth ?? null, (socket, code, detail) => {
    const { status } = HANDSHAKE_REFUSALS[code];
    this.metrics.clientCertificateRefusals.labels({ reason: code }).inc();
    // Every refusal is counted; HANDSHAKE_RECORDS_PER_SECOND are recorded (bursts of REFUSAL_RECORD_BURST), the next record naming how many were not.
    const sampled = this.refusalBudget.take();
    if (sampled === null) return;
    this.writeAudit(auditRecord(connectionFacts(socket, null, randomUUID(), { status, decision: 'deny', reason: code, detail: `${detail}${suppressedTail(sampled)}` }, this.config.version), this.clock.now()));
  });

  /** Limits enforced by node:http itself; all but maxHeaderBytes can change on a running server. */
  private applyServerLimits(limits: Limits): void {
    for (const listener of this.listeners) if (listener !== this.admin) listener.applyLimits(proxyListenerLimits(limits));
  }

  /** Loads, validates and compiles a config file; throws ConfigError with every located problem. */
  static async fromFile(file: string, options: GatewayOptions = {}): Promise<Gateway> {
    const loaded = await loadConfigFile(resolve(file), options.env);
    const clock = options.clock ?? systemClock;
    // A worker forked after a reload logs at the host's running level, like every other restart-only setting.
    const runningLevel = options.restartOnly?.logLevel;
    const level = LOG_LEVELS.find((l) => l === runningLevel) ?? loaded.raw.log?.level ?? 'info';
    const base = createLogger(level, options.logDestination);
    const logger = options.worker === undefined ? base : base.child({ worker: options.worker });
    const host = options.host ?? null;
    const resources = new ResourceSet({ logger, clock, metrics: new Metrics(true, host === null ? 'gateway' : 'worker'), ...(host === null ? {} : { host }) });
    const effect = compileInEffect(loaded, options.restartOnly ?? null, { resources, clock, hostState: options.hostState ?? null });
    return new Gateway(effect, options, resources, logger);
  }

  get config(): CompiledConfig {
    return this.runtime.config;
  }

  /** Resolves once the audit records written so far are on disk, or the trail waits for its next retry. */
  auditFlushed(): Promise<void> {
    return this.audit.flushed();
  }

  auditHealthy(): boolean {
    return this.audit.healthy;
  }

  /** The request path of a config, with this gateway's audit trail deciding whether requests may start. */
  private pathFor(config: CompiledConfig): RequestPath {
    return requestPath(config, () => this.audit.healthy);
  }

  /** Why the audit trail is or is not taking records (readiness reports it). */
  auditState(): AuditState {
    return this.audit.state;
  }

  /** Opens the audit trail, fetches remote key sets (each bounded by its timeout) and binds both listeners. */
  async start(): Promise<Addresses> {
    const config = this.config;
    try {
      await this.audit.open();
      this.anomalies = await processMonitor(config.audit.anomalies, { logger: this.logger, clock: this.clock, trail: this.audit, metrics: this.metrics, geo: config.geo === null ? null : { country: (ip) => this.config.geo?.country(ip) ?? null } });
      this.runtime = { config, path: this.pathFor(config), generation: await this.resources.exclusive(() => this.resources.prepare(config.resources)) };
      this.started = true;
      for (const listener of this.listeners) await listener.listen();
    } catch (err) {
      await this.abandonStart();
      throw err;
    }
    const addresses = this.addresses();
    this.logger.info({ http: addresses.http?.port ?? null, ...(this.https === null ? {} : { https: addresses.https?.port ?? null }), admin: addresses.admin?.port ?? null, version: config.version, routes: config.routes.length },
      this.options.worker === undefined ? 'gateway listening' : 'worker listening');
    if (this.pendingRestart.length > 0) this.logger.warn({ options: this.pendingRestart, fileVersion: this.fileVersion }, 'these options change only on restart of the whole host; the running values stay');
    reportUpstreamTls(config.upstreams, this.logger);
    if (this.options.worker === undefined) this.watch.start();
    this.upkeep?.follow(config);
    return addresses;
  }

  addresses(): Addresses {
    const bound: Record<string, AddressInfo | null> = {};
    for (const listener of this.listeners) bound[listener.name] = listener.address();
    return { ...bound, http: this.http?.address() ?? null, admin: this.admin?.address() ?? null };
  }

  /**
   * Every component a request may need, and whether it can do its part now: each listener, the
   * audit trail, and each authenticator some route uses (one no route uses does not count).
   */
  readiness(): Readiness {
    // A worker's changes are logged by its primary, which reports the host's readiness.
    const r = this.evaluateReadiness();
    return this.options.worker === undefined ? this.watch.note(r) : r;
  }

  private evaluateReadiness(): Readiness {
    const config = this.config;
    const components: Record<string, ComponentReadiness> = {};
    components.gateway = !this.started ? { ready: false, reason: 'starting' }
      : this.draining ? { ready: false, reason: 'draining: shutting down' } : READY;
    // Ready all the same, but an operator reading /readyz sees which upstreams go unverified.
    const insecure = insecureUpstreams(config.upstreams);
    if (insecure.length > 0) components.gateway = { ...components.gateway, insecureUpstreams: insecure };
    for (const l of this.listeners) components[`listener:${l.name}`] = l.listening ? READY : { ready: false, reason: 'not listening' };
    const audit = this.audit.state;
    const sinks = this.audit.sinkStates();
    components.audit = this.audit.healthy ? { ready: true, state: audit, sinks } : { ready: false, state: audit, sinks, reason: `audit trail ${audit}: requests are refused until records can be written` };
    const used = new Set(config.routes.flatMap((r) => r.authenticate));
    for (const name of [...used].sort()) {
      components[`authenticator:${name}`] = config.authenticators.get(name)?.readiness?.() ?? READY;
    }
    return readiness(config.version, components, this.pendingRestart, this.pendingRestart.length > 0 ? this.fileVersion : null);
  }

  /** Resolves with the first ready report, or the last one once `timeoutMs` passed without one. */
  whenReady(timeoutMs: number): Promise<Readiness> {
    return this.watch.whenReady(timeoutMs);
  }

  async metricsText(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.metrics.registry.contentType, text: await this.metrics.registry.metrics() };
  }

  get reloading(): boolean {
    return this.reloadsUnderway > 0;
  }

  /** A single gateway process has no workers. */
  workers(): null {
    return null;
  }

  async revokeToken(hash: string, untilMs: number): Promise<string | null> {
    const { digester, revocations } = this.config.oauth;
    try {
      await revocations.revoke(digester.ofHash(hash), keptUntil(untilMs));
      return null;
    } catch (err) {
      if (err instanceof RevocationUnavailableError) return err.message;
      throw err;
    }
  }

  keyAdmin(): KeyAdmin | null {
    const backend = this.config.apiKeys;
    return backend === null ? null : { service: backend.service, forget: (id) => backend.directory.forget(id) };
  }

  /**
   * Re-reads the config file, validates and compiles it, and swaps it in atomically. An invalid
   * config is rejected with its located errors and the running one keeps serving. Requests in
   * flight finish on the config they started with. Listener and audit settings need a restart.
   */
  async reload(): Promise<ReloadResult> {
    const staged = await this.stageReload();
    return 'commit' in staged ? staged.commit() : staged;
  }

  /**
   * The first half of a reload: re-reads and compiles the config file and starts what the new
   * config needs, without swapping it in. A changed config comes back with `commit` (swap it in)
   * and `abort` (stop what was started for it); the next reload waits until one of them is
   * called. Workers of one host stage together and commit only when every one staged the same
   * version.
   */
  stageReload(): Promise<StagedReload> {
    this.reloadsUnderway++;
    let settle = (): void => undefined;
    const settled = new Promise<void>((done) => { settle = done; }).then(() => { this.reloadsUnderway--; });
    const staging = this.reloadChain.then(() => this.stageNext(settle));
    this.reloadChain = staging.then((s) => { if (!('commit' in s)) settle(); return settled; }, () => { settle(); return settled; });
    return staging;
  }

  private async stageNext(settle: () => void): Promise<StagedReload> {
    if (!this.started) return this.rejected(['the gateway is still starting; reload once it listens']);
    // The signing key is not part of the config version: a reload re-reads it whatever the file says.
    refreshSigningKey(this.audit, this.logger);
    const old = this.config;
    let loaded: LoadedConfig;
    try {
      loaded = await loadConfigFile(old.file, this.options.env);
    } catch (err) {
      return this.rejected(err);
    }
    // Compile (which picks running resources to reuse) and start without a retirement stopping
    // anything in between; once prepared, the new generation counts as in use.
    const prepared = await this.resources.exclusive(() => this.prepareNext(loaded, old));
    if (!('generation' in prepared)) return prepared;
    const { next, effect, generation } = prepared;
    let done = false;
    return {
      ...this.applied(next.version, effect), changed: true,
      commit: () => {
        if (done) throw new Error('a staged reload is committed or aborted once');
        done = true;
        settle();
        return this.swapIn(next, old, effect, generation);
      },
      abort: () => {
        if (done) return;
        done = true;
        settle();
        this.logger.warn({ version: next.version }, 'staged config abandoned; the running config keeps serving');
        void this.resources.retire(generation);
      },
    };
  }

  /** A reload answer's account of what is in effect: the version, and the file's restart-only changes still waiting. */
  private applied(version: string, effect: InEffect): Omit<ReloadApplied, 'changed'> {
    return { ok: true, version, restartRequired: [...effect.restartRequired], ...(effect.restartRequired.length > 0 ? { pendingVersion: effect.fileVersion } : {}) };
  }

  private rejected(err: unknown): { ok: false; errors: string[] } {
    const errors = Array.isArray(err) ? err.map(String) : err instanceof ConfigError ? err.problems.map(formatProblem) : [(err as Error).message];
    this.metrics.reloads.inc({ result: 'rejected' });
    this.logger.error({ errors }, 'config reload rejected; the running config keeps serving');
    return { ok: false, errors };
  }

  /** Compiles the loaded config and starts its resources; the running config is untouched. */
  private async prepareNext(loaded: LoadedConfig, old: CompiledConfig): Promise<StagedReload | { next: CompiledConfig; effect: InEffect; generation: Generation }> {
    let effect: InEffect;
    try {
      effect = compileInEffect(loaded, this.running, { resources: this.resources, clock: this.options.clock ?? systemClock, hostState: this.options.hostState ?? null });
    } catch (err) {
      return this.rejected(err);
    }
    const next = effect.config;
    if (effect.fileVersion === this.fileVersion) {
      // Nothing changes, but a reload that keeps an unverified upstream says so again.
      reportUpstreamTls(old.upstreams, this.logger);
      return { ...this.applied(old.version, effect), changed: false };
    }
    if (effect.restartRequired.length > 0) {
      this.logger.warn({ options: effect.restartRequired, fileVersion: effect.fileVersion, version: next.version }, 'these options change only on restart; the running values stay');
    }
    try {
      return { next, effect, generation: await this.resources.prepare(next.resources) };
    } catch (err) {
      return this.rejected(err);
    }
  }

  /** Swaps a prepared config in; the old generation's resources stop once its requests are done. */
  private swapIn(next: CompiledConfig, old: CompiledConfig, effect: InEffect, generation: Generation): ReloadResult {
    const previous = this.runtime.generation;
    this.applyServerLimits(next.limits);
    // Compile checked the new material: the running HTTPS listener takes it for new handshakes.
    if (this.https !== null && next.tls !== null) {
      this.https.updateTls(next.tls.context, peerVerification(next.tls.clientAuth));
      this.tlsServing?.update(next.tls);
    }
    this.runtime = { config: next, path: this.pathFor(next), generation };
    this.fileVersion = effect.fileVersion;
    this.pendingRestart = effect.restartRequired;
    this.metrics.configRestartRequired.set(effect.restartRequired.length);
    // Resources the new config no longer uses stop once the last request that started on the old one is done.
    void this.resources.retire(previous);
    this.metrics.configInfo.reset();
    this.metrics.configInfo.set({ version: next.version }, 1);
    this.metrics.keepJwks(jwksUris(next));
    this.metrics.certificatesInUse(next.certificates);
    reportUpstreamTls(next.upstreams, this.logger);
    this.metrics.reloads.inc({ result: 'applied' });
    this.logger.info({ version: next.version, previous: old.version, ...(effect.restartRequired.length > 0 ? { fileVersion: effect.fileVersion, restartRequired: effect.restartRequired } : {}) }, 'config reloaded');
    if (this.options.worker === undefined) void this.watch.check();
    this.upkeep?.follow(next);
    return { ...this.applied(next.version, effect), changed: true };
  }

  track(ex: Exchange): void {
    // An HTTP/2 stream's connection carries others: connection-level errors concern none of them alone.
    if (ex.wire.socket !== null) this.active.set(ex.wire.socket, ex);
  }

  /** One audit record and the metrics for a finished exchange. */
  finish(ex: Exchange, runtime: Runtime): void {
    this.inFlight--;
    this.metrics.requestsInFlight--;
    const socket = ex.wire.socket;
    if (socket !== null && this.active.get(socket) === ex) this.active.delete(socket);
    const facts = exchangeFacts(ex, runtime.config.version);
    this.writeAudit(auditRecord(facts, this.clock.now()));
    if (ex.trace !== null) runtime.config.tracer?.end(ex, ex.trace, facts);
    const m = this.metrics;
    const latencySeconds = (facts.latencyMs ?? 0) / 1000;
    m.request(facts.route ?? '', facts.status, ex.decision, latencySeconds);
    m.stageDecided(ex.stage ?? '', ex.decision);
    if (ex.denial !== null) m.denied(facts.route ?? '', ex.denial.code);
    const upstream = ex.route?.upstream ?? null;
    if (ex.upstreamLatencyMs !== null && upstream !== null) m.upstream(upstream.name, ex.upstreamLatencyMs / 1000);
    if (this.inFlight === 0 && this.idle !== null) this.idle();
  }

  /** The one audit record of an admin request (never the token, never a key's secret). */
  auditAdmin(operation: AdminOperation): void {
    this.writeAudit(auditRecord(adminFacts(operation, this.config.version), this.clock.now()));
    logAdminOperation(this.logger, operation);
  }

  private writeAudit(record: AuditRecord): void {
    this.audit.write(record);
    this.anomalies?.observe(record);
  }

  /** The one record of a connection-level rejection on any listener. */
  private recordRejection(rejection: SocketRejection): void {
    if (rejection.listener === 'admin') {
      this.writeAudit(auditRecord(adminRejectionFacts(rejection, this.config.version), this.clock.now()));
      return;
    }
    const socket = rejection.socket;
    if (rejection.kind === 'discarded') {
        this.writeAudit(auditRecord(connectionFacts(socket, null, randomUUID(), DISCARDED, this.config.version), this.clock.now()));
      return;
    }
    const { req, denial, requestId } = rejection;
    const status = DENIALS[denial.code].status;
    const outcome = { status, decision: 'deny', reason: denial.code, detail: denial.reason } as const;
    this.writeAudit(auditRecord(connectionFacts(socket, req, requestId, outcome, this.config.version), this.clock.now()));
    this.metrics.requests.labels({ route: '', status: String(status), decision: 'deny' }).inc();
    this.metrics.stageDecided('listener', 'deny');
    this.metrics.denied('', denial.code);
  }

  /**
   * Graceful shutdown: stop accepting, let in-flight requests finish (up to drainTimeoutMs), then
   * close what is left, the upstream pools, the admin listener and the audit trail (flushed).
   */
  /**
   * Releases what a start that failed part way had opened (a listener already bound, the resources,
   * the audit file), so a program that embeds the gateway is left holding nothing.
   */
  private async abandonStart(): Promise<void> {
    this.draining = true;
    await Promise.all(this.listeners.map((l) => l.close()));
    await this.resources.stopAll().catch((err: unknown) => { this.logger.warn({ err }, 'releasing resources after a failed start failed'); });
    await this.anomalies?.close();
    await this.audit.close().catch((err: unknown) => { this.logger.warn({ err }, 'closing the audit trail after a failed start failed'); });
  }

  async stop(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.watch.stop();
    this.upkeep?.stop();
    // The admin listener keeps answering (readiness says draining) until the proxy listeners are done.
    const proxies = this.listeners.filter((l) => l !== this.admin);
    const closed = Promise.all(proxies.map((l) => l.stopAccepting()));
    if (this.inFlight > 0) {
      const drained = new Promise<void>((done) => { this.idle = done; });
      const timer = setTimeout(() => this.idle?.(), this.config.drainTimeoutMs);
      await drained;
      clearTimeout(timer);
      if (this.inFlight > 0) this.logger.warn({ inFlight: this.inFlight }, 'drain timeout: closing remaining connections');
    }
    for (const listener of proxies) listener.closeAllConnections();
    await closed;
    await Promise.all([...this.config.upstreamPools.values()].map((u) => u.destroy()));
    await this.admin?.close();
    await this.resources.stopAll();
    await this.anomalies?.close();
    await this.audit.close();
    this.logger.info('gateway stopped');
  }
}

/** A proxy exchange as the listener sees it: whom a connection error on its socket concerns. */
function exchangeInProgress(ex: Exchange): RequestInProgress {
  return {
    req: ex.req,
    res: ex.wire.res,
    get responseClosed() { return ex.wire.responseClosed; },
    clientClosed() {
      if (ex.denial === null && ex.decision === 'allow') {
        ex.decision = 'abort';
        ex.detail = 'client closed the connection mid-request';
      }
    },
    refuse(denial) {
      ex.stage = 'listener';
      if (ex.wire.res.headersSent) { ex.decision = 'error'; ex.detail = denial.reason; ex.denial = denial; ex.wire.channel.destroy(); return; }
      reply(ex, denial);
    },
  };
}
