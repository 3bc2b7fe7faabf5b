import type { Logger } from 'pino';
import type { AnomalyOptions } from '../../config/compile-anomalies.js';
import type { Clock } from '../../lib/clock.js';
import type { Metrics } from '../../observability/metrics.js';
import { alertRecord } from './alert-record.js';
import { AnomalyEngine } from './engine.js';
import type { GeoLookup } from './geo.js';
import type { Alert, ObservedRecord } from './types.js';
import { WebhookNotifier } from './webhook.js';

/** Where an alert goes besides the webhook: the trail (an `alert` record) and a counter. */
export interface AlertOutlets {
  /** Appends the alert record to the chain (the gateway's trail); absent for `audit watch` without a trail. */
  readonly record?: (record: Record<string, unknown>) => void;
  /** Counts one alert (`portcullis_anomaly_alerts_total{detector,severity}`). */
  readonly count?: (alert: Alert) => void;
  /** Every alert, as it is raised (`audit watch` prints it). */
  readonly print?: (alert: Alert) => void;
}

/**
 * The detectors of `audit.anomalies` and what follows an alert: an `alert` record in the trail
 * (chained like every other record), a counter, one warn log line and, when configured, a signed
 * webhook POST. The gateway feeds it its own records; `audit watch` feeds it the merged stream.
 */
export class AnomalyMonitor {
  private constructor(
    readonly engine: AnomalyEngine,
    private readonly webhook: WebhookNotifier | null,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly outlets: AlertOutlets,
  ) {}

  /** Null when the section is absent or turned off. Opens the country database when impossibleTravel needs it. */
  static async create(options: AnomalyOptions | null, deps: { readonly logger: Logger; readonly clock: Clock; readonly geo?: GeoLookup | null }, outlets: AlertOutlets): Promise<AnomalyMonitor | null> {
    if (options === null || !options.enabled) return null;
    const engine = await AnomalyEngine.create(options, { geo: deps.geo ?? null });
    const webhook = options.webhook === null ? null : new WebhookNotifier(options.webhook, { clock: deps.clock, logger: deps.logger });
    return new AnomalyMonitor(engine, webhook, deps.logger, deps.clock, outlets);
  }

  /**
   * Feeds one record; alerts it raises go out at once. `now` defaults to the clock: a replay of old
   * records passes the record's own time so windows follow the trail, not the reader.
   */
  observe(record: ObservedRecord, now = this.clock.now()): readonly Alert[] {
    const alerts = this.engine.observe(record, now);
    if (alerts.length === 0) return alerts;
    for (const alert of alerts) {
      this.outlets.record?.(alertRecord(alert));
      this.outlets.count?.(alert);
      this.outlets.print?.(alert);
      this.logger.warn({ event: 'anomaly', detector: alert.detector, severity: alert.severity, subject: alert.subject, evidence: alert.evidence }, alert.summary);
    }
    this.webhook?.notify(alerts);
    return alerts;
  }

  /** Alerts the webhook could not deliver (queue full, refused, or out of attempts). */
  get webhookDropped(): number {
    return this.webhook?.stats().dropped ?? 0;
  }

  async close(): Promise<void> {
    await this.webhook?.close();
  }
}

/** What a gateway process gives its monitor: alerts become records in its own chain and counters in its metrics. */
export interface ProcessMonitorDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly trail: { append(record: Record<string, unknown>): void };
  readonly metrics: Metrics;
  /** The country database the gateway's config compiled (shared, not opened again); absent: opened from the options' path. */
  readonly geo?: GeoLookup | null;
}

/** The monitor of one gateway process (null when `audit.anomalies` is absent or off), over the records that process writes. */
export async function processMonitor(options: AnomalyOptions | null, deps: ProcessMonitorDeps): Promise<AnomalyMonitor | null> {
  const { metrics, trail } = deps;
  const monitor = await AnomalyMonitor.create(options, deps, {
    record: (record) => trail.append(record),
    count: (alert) => metrics.anomalyAlerts.inc({ detector: alert.detector, severity: alert.severity }),
  });
  if (monitor !== null) metrics.anomalyWebhookDropped.collect = () => monitor.webhookDropped;
  return monitor;
}
