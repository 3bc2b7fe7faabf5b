import type { Clock, Timer } from '../lib/clock.js';
import type { Logger } from '../observability/logger.js';

/**
 * Whether one component can do its part for the requests that need it, and if not, why. Details
 * name only what the config already says (an authenticator's name, a JWKS URL), never a secret.
 */
export interface ComponentReadiness {
  readonly ready: boolean;
  /** Why it is not ready (absent when ready). */
  readonly reason?: string;
  readonly [detail: string]: unknown;
}

/** What `/readyz` reports: ready only when every component is. */
export interface Readiness {
  readonly ready: boolean;
  /** The version of the config in effect. */
  readonly version: string;
  readonly components: Readonly<Record<string, ComponentReadiness>>;
  /** Option paths changed in the config file that apply on restart only. */
  readonly restartRequired: readonly string[];
  /** The config file's version, when restart-only changes keep it from being wholly in effect. */
  readonly pendingVersion?: string;
}

/** Always ready: what a component with nothing to wait for reports. */
export const READY: ComponentReadiness = Object.freeze({ ready: true });

/**
 * A URL in readiness text, split into what may be shown (scheme, host, path) and what may carry a
 * secret: userinfo, and a query string or fragment (`?access_token=…`), up to the next whitespace
 * or quote, but leaving closing brackets of the surrounding text.
 */
const URL_IN_TEXT = /\b([a-z][a-z0-9+.-]*:\/\/)(?:[^\s/?#@]*@)?([^\s?#"'<>]*)(?:[?#][^\s"'<>]*?(?=[)\]]*(?:[\s"'<>]|$)))?/gi;

/**
 * Text as a readiness report may show it: every URL without its userinfo, query string or
 * fragment. /readyz answers without a token, and a reason quotes URLs from the config (a JWKS URL,
 * a store URL) and from drivers' errors.
 */
export function shownText(text: string): string {
  return text.replace(URL_IN_TEXT, (_, scheme: string, rest: string) => `${scheme}${rest}`);
}

/** A component's report with every text in it (its reason, its details) shown as shownText says. */
function shownComponent(c: ComponentReadiness): ComponentReadiness {
  const shown: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(c)) {
    shown[key] = typeof value === 'string' ? shownText(value)
      : Array.isArray(value) ? value.map((v: unknown) => (typeof v === 'string' ? shownText(v) : v)) : value;
  }
  return shown as unknown as ComponentReadiness;
}

/**
 * Assembles a readiness report: ready when every component is. Every URL in it loses its userinfo,
 * query and fragment (shownText), whichever component or worker reported it.
 */
export function readiness(version: string, components: Readonly<Record<string, ComponentReadiness>>, restartRequired: readonly string[], pendingVersion: string | null): Readiness {
  const shown: Record<string, ComponentReadiness> = {};
  for (const [name, c] of Object.entries(components)) shown[name] = shownComponent(c);
  return {
    ready: Object.values(components).every((c) => c.ready),
    version,
    components: shown,
    restartRequired,
    ...(pendingVersion === null ? {} : { pendingVersion }),
  };
}

/** The components that are not ready, each with why: `authenticator:users (JWKS … has not been loaded: HTTP 500)`. */
export function notReady(r: Readiness): string[] {
  return Object.entries(r.components).filter(([, c]) => !c.ready).map(([name, c]) => `${name} (${c.reason ?? 'not ready'})`);
}

/** How often readiness is re-evaluated in the background, so a change is logged without a probe asking. */
export const READINESS_CHECK_MS = 500;

/**
 * Follows a gateway's readiness: re-evaluates it every READINESS_CHECK_MS (on the injected clock)
 * and whenever asked, logs each change once (info when it becomes ready, warn naming the
 * components when it is lost), and lets a caller wait for it.
 */
export class ReadinessWatch {
  private last: boolean | null = null;
  private lastReport: Readiness | null = null;
  private timer: Timer | null = null;
  private stopped = false;
  private checking: Promise<Readiness> | null = null;
  private readonly waiters = new Set<(r: Readiness) => void>();

  constructor(
    /** Evaluates readiness afresh (without noting it here). */
    private readonly evaluate: () => Readiness | Promise<Readiness>,
    private readonly logger: Logger,
    private readonly clock: Clock,
  ) {}

  /** Evaluates now and then every READINESS_CHECK_MS until `stop`. */
  start(): void {
    if (this.timer !== null || this.stopped) return;
    const tick = (): void => {
      if (this.stopped) return;
      this.timer = this.clock.setTimer(() => { void this.check().finally(tick); }, READINESS_CHECK_MS);
    };
    void this.check();
    tick();
  }

  /** Stops the checks (shutdown: readiness is lost on purpose, and not logged as lost); waiters get the last report. */
  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
    const last = this.lastReport ?? { ready: false, version: '', components: {}, restartRequired: [] };
    for (const waiter of this.waiters) waiter(last);
    this.waiters.clear();
  }

  /** Evaluates readiness now (concurrent calls share one evaluation) and notes it. */
  check(): Promise<Readiness> {
    this.checking ??= Promise.resolve().then(() => this.evaluate()).then((r) => this.note(r)).finally(() => { this.checking = null; });
    return this.checking;
  }

  /** Takes note of a report however it was obtained (a probe's too): logs a change once, and wakes the waiters on ready. */
  note(r: Readiness): Readiness {
    if (this.stopped) return r;
    this.lastReport = r;
    if (r.ready !== this.last) {
      if (r.ready) this.logger.info({ version: r.version }, 'gateway ready');
      else this.logger.warn({ notReady: notReady(r) }, this.last === null ? 'gateway not ready yet' : 'gateway no longer ready');
      this.last = r.ready;
    }
    if (r.ready) {
      for (const waiter of this.waiters) waiter(r);
      this.waiters.clear();
    }
    return r;
  }

  /**
   * Resolves with the first ready report, or with the last report once `timeoutMs` passed (or the
   * watch stopped) without one.
   */
  whenReady(timeoutMs: number): Promise<Readiness> {
    return new Promise<Readiness>((resolve) => {
      let timer: Timer | null = null;
      const done = (r: Readiness): void => { timer?.cancel(); this.waiters.delete(done); resolve(r); };
      this.waiters.add(done);
      timer = this.clock.setTimer(() => { void this.check().then(done); }, timeoutMs);
      void this.check();
    });
  }
}
