/**
 * The anomaly detectors' view of the trail: records as parsed from any source (the gateway's own
 * chain, a file, the NATS stream), and what they report.
 */

/** A parsed audit record (docs/audit.md, "Records"); only the members detectors read are typed. */
export interface ObservedRecord {
  readonly kind: string;
  readonly time: string;
  readonly status?: number;
  readonly decision?: string;
  readonly reason?: string;
  readonly detail?: string;
  readonly route?: string;
  readonly path?: string;
  readonly method?: string;
  readonly clientIp?: string;
  readonly identity?: { readonly subject: string; readonly authMethod: string; readonly keyId?: string };
  readonly tenant?: string;
  readonly limit?: string;
  /** The chain the record came from (the stream's subject, or the file's chain); set by the reader. */
  readonly chain?: string;
}

export type Severity = 'info' | 'low' | 'medium' | 'high' | 'critical';

/** One anomaly, as a detector reports it. It becomes an `alert` record, a metric, a log line and a webhook POST. */
export interface Alert {
  /** The detector's name (`authFailureSpike`, `tenantFanOut`, `credentialNetworks`, `impossibleTravel`, `limitStorm`, `deadCredential`, `adminFirstUse`). */
  readonly detector: string;
  readonly severity: Severity;
  /** What it is about: a credential, a client network, `global`. Never a secret. */
  readonly subject: string;
  /** One human sentence. */
  readonly summary: string;
  /** Evidence: counts, thresholds, the networks or tenants seen (bounded). */
  readonly evidence: Readonly<Record<string, unknown>>;
  /** When the detector decided (ISO 8601), from its clock. */
  readonly time: string;
}

/** One detector: fed every record in order, bounded in memory whatever it is fed. */
export interface Detector {
  readonly name: string;
  /** The alerts this record triggers (usually none). `now` is the detector's clock, in ms. */
  observe(record: ObservedRecord, now: number): readonly Alert[];
}
