import { processMonitor, type AnomalyMonitor } from '../audit/anomaly/monitor.js';
import cluster, { type Worker } from 'node:cluster';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { ApiKeyBackend } from '../authn/api-key/backend.js';
import { ADMIN_LISTENER_LIMITS, adminRejectionFacts, createAdminApp, logAdminOperation } from '../admin/admin-app.js';
import type { AdminHost, AdminOperation, KeyAdmin, ReloadResult, WorkersStatus } from '../admin/admin-host.js';
import type { AuditRecord, AuditState, AuditTrail } from '../audit/trail.js';
import { AUDIT_SLOT_ENV, createTrail, processName } from '../audit/trail-wiring.js';
import { adminFacts, auditRecord } from '../audit/record-builder.js';
import type { CompiledConfig } from '../config/compile.js';
import { ConfigError, formatProblem } from '../config/errors.js';
import { loadConfigFile } from '../config/load.js';
import { systemClock, type Clock, type Timer } from '../lib/clock.js';
import { OperatorError } from '../lib/operator-error.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { insecureUpstreams } from '../proxy/upstream-tls-report.js';
import { READY, readiness, ReadinessWatch, type ComponentReadiness, type Readiness } from '../lifecycle/readiness.js';
import { restartOnlyValues, type InEffect, type RestartOnlyValues } from '../lifecycle/restart-only.js';
import { ConfigUpkeep, refreshSigningKey } from '../server/config-upkeep.js';
import { compileInEffect, jwksUris } from '../server/gateway.js';
import { Listener } from '../server/listener.js';
import { HostState } from './host-state.js';
import { HostSync } from './host-sync.js';
import { CONFIG_INVALID_EXIT, fromWorker, LIFECYCLE, RESTART_ONLY_ENV, type FromWorker, type StageOutcome, type ToWorker } from './protocol.js';

/** Longest a worker may take to stage a reload or send its metrics before the primary gives up on it. */
const ANSWER_TIMEOUT_MS = 30_000;
/** First wait before forking a replacement for a worker that died; doubled per death in a row, up to the maximum. */
const RESTART_BACKOFF_MS = 100;
const RESTART_BACKOFF_MAX_MS = 10_000;
/** A worker that stayed up this long ends a run of deaths: the next one is replaced after the first wait again. */
const STABLE_AFTER_MS = 30_000;
/** Beyond the config's drain time, how long the primary waits for workers to exit before killing them. */
const EXIT_GRACE_MS = 5_000;
/** Longest a worker may take to report its readiness: a probe waits no longer (the worker counts as not ready). */
const READINESS_ANSWER_MS = 2_000;

export interface SupervisorOptions {
  /** Worker processes to run (at least 1). */
  readonly workers: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly logDestination?: NodeJS.WritableStream;
  /** The clock of the primary's own timers (restart back-off, answer timeouts). */
  readonly clock?: Clock;
}

/** One worker process as the primary follows it. */
interface Member {
  readonly worker: Worker;
  /** 1…N: names the worker's audit chain (`w<slot>`); a replacement takes the slot of the worker it replaces and resumes its chain. */
  readonly slot: number;
  readonly startedAt: number;
  /** The config version it runs, once it listens. */
  version: string | null;
  /** Why it could not start, when it said so (an OperatorError's line). */
  failure: string | null;
}

interface Pending<T> {
  readonly worker: Worker;
  readonly resolve: (value: T) => void;
  readonly timer: Timer;
}

/**
 * The primary of `portcullis start --workers N`: forks N workers (each a whole gateway on the
 * shared port), replaces a worker that dies (with back-off), reloads every worker onto one config
 * version (each stages it, and all commit only when all staged the same version), serves the host's
 * one admin listener (readiness, metrics summed over the workers, reload, API keys) and drains
 * every worker on SIGTERM.
 */
export class Supervisor implements AdminHost {
  readonly logger: Logger;
  readonly metrics = new Metrics(true, 'primary');
  draining = false;
  reloading = false;
  /** The config every worker runs (compiled here too, opening nothing: the admin settings and the version come from it). */
  config: CompiledConfig;
  readonly clock: Clock;
  private readonly audit: AuditTrail;
  /** The anomaly detectors over the primary's own records (admin operations); each worker runs its own over its requests. */
  private anomalies: AnomalyMonitor | null = null;
  private readonly admin: Listener | null = null;
  private readonly members = new Map<number, Member>();
  private readonly pending = new Map<number, Pending<FromWorker>>();
  private nextId = 1;
  /** Deaths in a row (reset by a worker that stayed up): the restart back-off grows with it. */
  private deaths = 0;
  private port: number | null = null;
  private reloads: Promise<unknown> = Promise.resolve();
  /** The API key backend whose store the admin API has used (see keyBackend). */
  private keys: ApiKeyBackend | null = null;
  /** The in-process state every worker shares: limits, quotas, the guard's counts. */
  private readonly hostState: HostState;
  /** What the primary does once for every worker: reading the key stores' change logs, fetching JWKS. */
  private readonly hostSync: HostSync;
  /** The restart-only settings of the host (fixed at start; every worker, a replacement too, runs them). */
  private readonly running: RestartOnlyValues;
  /** The version of the config file last taken, and the restart-only options it changes. */
  private fileVersion: string;
  private pendingRestart: readonly string[];
  private readonly watch: ReadinessWatch;
  /** The host's file watch and certificate expiry warnings (workers do neither). */
  private readonly upkeep: ConfigUpkeep;

  private constructor(effect: InEffect, private readonly options: SupervisorOptions, logger: Logger) {
    const config = effect.config;
    this.config = config;
    this.running = restartOnlyValues(config);
    this.fileVersion = effect.fileVersion;
    this.pendingRestart = effect.restartRequired;
    this.logger = logger;
    this.clock = options.clock ?? systemClock;
    // The primary's chain holds the admin records; each worker writes its own (slot 1…N).
    this.audit = createTrail(config, processName(null), { logger, clock: this.clock, metrics: this.metrics });
    this.metrics.configInfo.set({ version: config.version }, 1);
    this.metrics.configRestartRequired.set(effect.restartRequired.length);
    this.watch = new ReadinessWatch(() => this.evaluateReadiness(), logger, this.clock);
    this.upkeep = new ConfigUpkeep({ clock: this.clock, logger, reload: () => this.reload(), append: (record) => this.audit.append(record) });
    this.hostState = new HostState({ logger, clock: this.clock, metrics: this.metrics });
    this.hostSync = new HostSync({ logger, clock: this.clock, metrics: this.metrics });
    if (config.admin.enabled) {
      const app = createAdminApp(this);
      this.admin = new Listener({ name: 'admin', option: 'admin', port: config.admin.port, host: config.admin.host, limits: ADMIN_LISTENER_LIMITS, handlerAnswersExpect: false }, {
        handle: (req, res) => app.handle(req, res),
        inProgress: (socket) => app.inProgress(socket),
        recordRejection: (rejection) => this.writeAudit(auditRecord(adminRejectionFacts(rejection, this.config.version), this.clock.now())),
        requestIdHeader: () => this.config.requestIdHeader,
      });
    }
  }

  /** Validates the config file (compiling opens nothing) before any worker is forked. */
  static async fromFile(file: string, options: SupervisorOptions): Promise<Supervisor> {
    const loaded = await loadConfigFile(resolve(file), options.env);
    const effect = compileInEffect(loaded, null, { clock: options.clock ?? systemClock, workers: true });
    const logger = createLogger(loaded.raw.log?.level ?? 'info', options.logDestination).child({ primary: true });
    return new Supervisor(effect, options, logger);
  }

  /** Forks the workers, waits until every one listens, then opens the admin listener. */
  async start(): Promise<{ http: number; admin: number | null }> {
    await this.audit.open();
    this.anomalies = await processMonitor(this.config.audit.anomalies, { logger: this.logger, clock: this.clock, trail: this.audit, metrics: this.metrics, geo: this.config.geo === null ? null : { country: (ip) => this.config.geo?.country(ip) ?? null } });
    cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)), args: [this.config.file] });
    cluster.on('message', (worker, message: unknown) => this.received(worker, message));
    const listening = Array.from({ length: this.options.workers }, () => this.fork());
    try {
      const ports = await Promise.all(listening);
      this.port = ports[0] ?? null;
      await this.admin?.listen();
    } catch (err) {
      // A worker that cannot bind the port or open its stores, or the admin listener that cannot
      // bind: the host does not start (no restart loop), and says why once.
      await this.stop();
      throw err;
    }
    const admin = this.admin?.address()?.port ?? null;
    this.logger.info({ http: this.port, admin, version: this.config.version, routes: this.config.routes.length, workers: this.members.size }, 'gateway listening');
    this.watch.start();
    this.upkeep.follow(this.config);
    return { http: this.port ?? 0, admin };
  }

  /** Forks one worker; resolves with its port once it listens. */
  private fork(): Promise<number> {
    const slot = this.freeSlot();
    const worker = cluster.fork({ ...this.options.env, [RESTART_ONLY_ENV]: JSON.stringify(this.running), [AUDIT_SLOT_ENV]: String(slot) });
    // In the same turn as the fork, so the worker's first message about the state it uses is heard.
    this.hostState.attach(worker);
    this.hostSync.attach(worker);
    const member: Member = { worker, slot, startedAt: this.clock.now(), version: null, failure: null };
    this.members.set(worker.id, member);
    return new Promise<number>((resolveListening, reject) => {
      const onMessage = (message: unknown): void => {
        if (fromWorker(message) && message.op === 'failed') member.failure = message.message.slice(0, 2000);
        if (!fromWorker(message) || message.op !== 'listening') return;
        worker.off('message', onMessage);
        member.version = message.version;
        resolveListening(message.port);
        this.joined(member);
      };
      worker.on('message', onMessage);
      worker.once('exit', (code: number | null, signal: string | null) => {
        worker.off('message', onMessage);
        reject(member.failure !== null ? new OperatorError(member.failure) : new Error(`worker ${worker.id} exited before listening (${signal ?? code})`));
        this.exited(member, code, signal as NodeJS.Signals | null);
      });
    });
  }

  /** The lowest worker slot no running worker holds. */
  private freeSlot(): number {
    const taken = new Set([...this.members.values()].map((m) => m.slot));
    let slot = 1;
    while (taken.has(slot)) slot++;
    return slot;
  }

  /** A worker listens: if it runs another version than the host (the file changed since the last reload), every worker is reloaded onto the file. */
  private joined(member: Member): void {
    this.logger.info({ worker: member.worker.id, pid: member.worker.process.pid, version: member.version }, 'worker listening');
    if (member.version !== this.config.version && this.port !== null) {
      this.logger.warn({ worker: member.worker.id, version: member.version, host: this.config.version }, 'a new worker runs another config version than the host (the file changed since the last reload); reloading every worker onto the file');
      void this.reload();
    }
  }

  private exited(member: Member, code: number | null, signal: NodeJS.Signals | null): void {
    this.members.delete(member.worker.id);
    this.hostState.detach(member.worker);
    this.hostSync.detach(member.worker);
    for (const [id, p] of this.pending) {
      if (p.worker !== member.worker) continue;
      p.timer.cancel();
      this.pending.delete(id);
      p.resolve({ t: LIFECYCLE, op: 'staged', id, outcome: { ok: false, errors: [`worker ${member.worker.id} exited`] } });
    }
    // Before the host listens, a worker that could not start fails the start (see start).
    if (this.draining || (this.port === null && member.failure !== null)) return;
    const stable = this.clock.now() - member.startedAt >= STABLE_AFTER_MS;
    this.deaths = stable ? 1 : this.deaths + 1;
    const wait = Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_MS * 2 ** (this.deaths - 1));
    const why = member.failure ?? (code === CONFIG_INVALID_EXIT ? 'its config file does not compile' : signal ?? `exit code ${code}`);
    this.logger.error({ worker: member.worker.id, pid: member.worker.process.pid, why, restartInMs: wait }, 'worker died; replacing it');
    this.metrics.workerRestarts.inc();
    this.clock.setTimer(() => {
      if (this.draining) return;
      this.fork().catch((err: unknown) => this.logger.error({ err: (err as Error).message }, 'replacement worker failed'));
    }, wait);
  }

  private received(worker: Worker, message: unknown): void {
    if (!fromWorker(message) || message.op === 'listening' || message.op === 'failed') return;
    const p = this.pending.get(message.id);
    if (p === undefined || p.worker !== worker) return;
    p.timer.cancel();
    this.pending.delete(message.id);
    p.resolve(message);
  }

  /** Sends a request to one worker; resolves with its answer, or null when it did not answer in time. */
  private ask(member: Member, build: (id: number) => ToWorker, timeoutMs = ANSWER_TIMEOUT_MS): Promise<FromWorker | null> {
    const id = this.nextId++;
    return new Promise((answer) => {
      const timer = this.clock.setTimer(() => { this.pending.delete(id); answer(null); }, timeoutMs);
      this.pending.set(id, { worker: member.worker, resolve: answer, timer });
      member.worker.send(build(id));
    });
  }

  get workersListening(): Member[] {
    return [...this.members.values()].filter((m) => m.version !== null && m.worker.isConnected());
  }

  /**
   * Reloads every worker onto the config file: the primary compiles it first (a refused config
   * never reaches a worker), every worker stages it, and only when all staged the same version do
   * all commit; otherwise all abandon it and the running version keeps serving everywhere.
   */
  reload(): Promise<ReloadResult> {
    const run = this.reloads.then(() => this.reloadAll());
    this.reloads = run.catch(() => undefined);
    return run;
  }

  private async reloadAll(): Promise<ReloadResult> {
    refreshSigningKey(this.audit, this.logger);
    let effect: InEffect;
    try {
      effect = compileInEffect(await loadConfigFile(this.config.file, this.options.env), this.running, { clock: this.clock, workers: true });
    } catch (err) {
      return this.rejected(err instanceof ConfigError ? err.problems.map(formatProblem) : [(err as Error).message]);
    }
    const next = effect.config;
    const answer = (changed: boolean): ReloadResult => ({
      ok: true, version: next.version, changed, restartRequired: [...effect.restartRequired],
      ...(effect.restartRequired.length > 0 ? { pendingVersion: effect.fileVersion } : {}),
    });
    const members = this.workersListening;
    this.reloading = true;
    try {
      const answers = await Promise.all(members.map((m) => this.ask(m, (id) => ({ t: LIFECYCLE, op: 'stage', id }))));
      const outcomes = answers.map((a, i): StageOutcome => (a?.op === 'staged' ? a.outcome : { ok: false, errors: [`worker ${members[i]?.worker.id ?? '?'} did not answer`] }));
      const errors = outcomes.flatMap((o) => (o.ok ? (o.version === next.version ? [] : [`a worker compiled version ${o.version}, the primary ${next.version} (the file changed during the reload)`]) : o.errors));
      const commit = errors.length === 0;
      await Promise.all(members.flatMap((m, i) => {
        const a = answers[i];
        return a?.op === 'staged' ? [this.ask(m, (id) => ({ t: LIFECYCLE, op: 'settle', id, staged: a.id, commit }))] : [];
      }));
      if (!commit) return this.rejected([...new Set(errors)]);
      for (const m of members) m.version = next.version;
      const changed = next.version !== this.config.version;
      const previous = this.config.version;
      this.config = next;
      this.fileVersion = effect.fileVersion;
      this.pendingRestart = effect.restartRequired;
      this.metrics.configInfo.reset();
      this.metrics.configInfo.set({ version: next.version }, 1);
      this.metrics.configRestartRequired.set(effect.restartRequired.length);
      this.metrics.keepJwks(jwksUris(next));
      this.metrics.reloads.inc({ result: 'applied' });
      this.upkeep.follow(next);
      if (effect.restartRequired.length > 0) {
        this.logger.warn({ options: effect.restartRequired, fileVersion: effect.fileVersion, version: next.version }, 'these options change only on restart; the running values stay');
      }
      if (changed) this.logger.info({ version: next.version, previous, workers: members.length }, 'config reloaded on every worker');
      return answer(changed);
    } finally {
      this.reloading = false;
    }
  }

  private rejected(errors: string[]): ReloadResult {
    this.metrics.reloads.inc({ result: 'rejected' });
    this.logger.error({ errors }, 'config reload rejected; every worker keeps the running config');
    return { ok: false, errors };
  }

  /**
   * The host's readiness: the primary's own components (admin listener, audit trail, the workers
   * wanted listening on one version), and every worker's, each combined over the workers (ready
   * only where every worker is; the reason names the first worker that is not).
   */
  readiness(): Promise<Readiness> {
    // Probes arriving together share one round of questions to the workers.
    return this.watch.check();
  }

  private async evaluateReadiness(): Promise<Readiness> {
    const members = this.workersListening;
    const answers = await Promise.all(members.map((m) => this.ask(m, (id) => ({ t: LIFECYCLE, op: 'readiness', id }), READINESS_ANSWER_MS)));
    const components: Record<string, ComponentReadiness> = {};
    components.gateway = this.draining ? { ready: false, reason: 'draining: shutting down' }
      : this.reloading ? { ready: false, reason: 'reloading: the workers are moving to one config version' } : READY;
    const insecure = insecureUpstreams(this.config.upstreams);
    if (insecure.length > 0) components.gateway = { ...components.gateway, insecureUpstreams: insecure };
    if (this.admin !== null) components['listener:admin'] = this.admin.listening ? READY : { ready: false, reason: 'not listening' };
    const audit = this.audit.state;
    const sinks = this.audit.sinkStates();
    components.audit = this.audit.healthy ? { ready: true, state: audit, sinks } : { ready: false, state: audit, sinks, reason: `audit trail ${audit}: admin operations are refused until records can be written` };
    const w = this.workers();
    const settled = w.listening === w.wanted && members.every((m) => m.version === this.config.version);
    components.workers = settled ? { ready: true, wanted: w.wanted, listening: w.listening, versions: w.versions }
      : { ready: false, wanted: w.wanted, listening: w.listening, versions: w.versions,
        reason: w.listening !== w.wanted ? `${w.listening} of ${w.wanted} workers listening` : `workers run versions ${w.versions.join(', ')}, the host ${this.config.version}` };
    answers.forEach((a, i) => {
      const label = `worker ${members[i]?.worker.id ?? '?'}`;
      const reported = a?.op === 'readiness' ? reportedComponents(a.readiness, WORKER_OWN_COMPONENTS + this.config.authenticators.size) : null;
      if (reported === null) { combine(components, 'workers', { ready: false, reason: 'did not report its readiness' }, label); return; }
      for (const [name, c] of reported) combine(components, name, c, label);
    });
    return readiness(this.config.version, components, this.pendingRestart, this.pendingRestart.length > 0 ? this.fileVersion : null);
  }

  /** Resolves with the first ready report, or the last one once `timeoutMs` passed without one. */
  whenReady(timeoutMs: number): Promise<Readiness> {
    return this.watch.whenReady(timeoutMs);
  }

  workers(): WorkersStatus {
    const listening = this.workersListening;
    return { wanted: this.options.workers, listening: listening.length, versions: [...new Set(listening.map((m) => m.version ?? ''))] };
  }

  auditHealthy(): boolean {
    return this.audit.healthy;
  }

  auditState(): AuditState {
    return this.audit.state;
  }


  /** The primary's metrics and every worker's, combined as each metric declares (counters and histograms summed; see Metrics). */
  async metricsText(): Promise<{ contentType: string; text: string }> {
    const answers = await Promise.all(this.workersListening.map((m) => this.ask(m, (id) => ({ t: LIFECYCLE, op: 'metrics', id }))));
    const sets: MetricObjectWithValues<MetricValue<string>>[][] = [await this.metrics.registry.getMetricsAsJSON()];
    for (const a of answers) if (a?.op === 'metrics') sets.push(a.metrics);
    const registry = AggregatorRegistry.aggregate(sets);
    return { contentType: registry.contentType, text: await registry.metrics() };
  }

  /**
   * The API key store the admin API uses here: the backend of the config, kept across reloads that
   * keep its settings (its store connects on first use), closed when a reload replaces it.
   */
  private keyBackend(): ApiKeyBackend | null {
    const wanted = this.config.apiKeys;
    if (this.keys !== null && this.keys.key === wanted?.key) return this.keys;
    if (this.keys !== null) void this.keys.store.close().catch(() => undefined);
    this.keys = wanted;
    return wanted;
  }

  keyAdmin(): KeyAdmin | null {
    const backend = this.keyBackend();
    if (backend === null) return null;
    // The store's service needs no started backend; every worker drops the key from its caches.
    return {
      service: backend.service,
      forget: (keyId) => { for (const m of this.workersListening) m.worker.send({ t: LIFECYCLE, op: 'forget-key', keyId } satisfies ToWorker); },
    };
  }

  /**
   * Revokes through one worker, which digests the token's hash with the host's key and revokes it
   * in its list: through Redis (oauth.redis) to every gateway, else through this primary's host
   * list to every other worker. The primary holds neither the key nor a list of its own.
   */
  async revokeToken(hash: string, untilMs: number): Promise<string | null> {
    const member = this.workersListening[0];
    if (member === undefined) return 'no worker is listening';
    const answer = await this.ask(member, (id) => ({ t: LIFECYCLE, op: 'revoke', id, tokenHash: hash, untilMs }));
    if (answer?.op !== 'revoked') return `worker ${member.worker.id} did not answer`;
    return answer.error;
  }

  auditAdmin(operation: AdminOperation): void {
    this.writeAudit(auditRecord(adminFacts(operation, this.config.version), this.clock.now()));
    logAdminOperation(this.logger, operation);
  }

  private writeAudit(record: AuditRecord): void {
    this.audit.write(record);
    this.anomalies?.observe(record);
  }

  /** Drains every worker (each finishes its requests in flight, up to drainTimeoutMs), then closes the admin listener and the trail. */
  async stop(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.watch.stop();
    this.upkeep.stop();
    const members = [...this.members.values()];
    const exited = members.map((m) => new Promise<void>((done) => {
      if (m.worker.isDead()) { done(); return; }
      m.worker.once('exit', () => done());
    }));
    for (const m of members) m.worker.process.kill('SIGTERM');
    const killer = setTimeout(() => { for (const m of members) if (!m.worker.isDead()) m.worker.process.kill('SIGKILL'); }, this.config.drainTimeoutMs + EXIT_GRACE_MS);
    await Promise.all(exited);
    clearTimeout(killer);
    await this.hostState.close();
    await this.hostSync.close();
    await this.admin?.close();
    await this.keys?.store.close();
    await this.anomalies?.close();
    await this.audit.close();
    this.logger.info('gateway stopped');
  }
}

/**
 * Components a worker reports besides one per authenticator (`gateway`, its listeners, `audit`),
 * with room to spare: the bound a report is held to is this plus the host config's authenticators.
 */
const WORKER_OWN_COMPONENTS = 16;

/**
 * A worker's components, each with a boolean `ready`, or null for a report of another shape or
 * with more than `max` of them (a worker reports one per authenticator a route uses, and a few of its own).
 */
function reportedComponents(report: unknown, max: number): [string, ComponentReadiness][] | null {
  const components = (report as { components?: unknown } | null)?.components;
  if (components === null || typeof components !== 'object' || Array.isArray(components)) return null;
  const entries = Object.entries(components as Record<string, unknown>);
  if (entries.length > max) return null;
  const valid = entries.filter((e): e is [string, ComponentReadiness] => e[1] !== null && typeof e[1] === 'object' && typeof (e[1] as { ready?: unknown }).ready === 'boolean');
  return valid.length === entries.length ? valid : null;
}

/**
 * Adds one process's report of a component to the host's: ready only if every process's is; the
 * first reason not ready is kept, prefixed with the process (`worker 2: JWKS … has not been loaded`).
 */
function combine(components: Record<string, ComponentReadiness>, name: string, report: ComponentReadiness, label: string): void {
  const seen = components[name];
  if (report.ready) { components[name] = seen ?? report; return; }
  if (seen !== undefined && !seen.ready) return;
  components[name] = { ...report, reason: `${label}: ${report.reason ?? 'not ready'}` };
}

/** `--workers N|auto`: a count of at least 1, or the cores this process may use. */
export function workerCount(value: string, available: number): number | null {
  if (value === 'auto') return Math.max(1, available);
  if (!/^[1-9][0-9]{0,2}$/.test(value)) return null;
  return Number(value);
}
