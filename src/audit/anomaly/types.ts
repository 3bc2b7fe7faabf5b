/**
 * The anomaly detectors' view of the trail: records as parsed from any source (the gateway's own
 * chain, a file, the NATS stream), and what they report.
 */

/**
 * A parsed audit record (docs/audit.md, "Records"); only the members detectors read are typed. A
 * member that is null or absent does not apply, so the in-process AuditRecord is one as it is
 * (observedFromAuditRecord) and a parsed line needs no copy. Records from a file or the stream are
 * untrusted: detectors check the type of every member they read.
 */
export interface ObservedRecord {
  readonly kind: string;
  readonly time: string;
  readonly status?: number | null;
  readonly decision?: string | null;
  readonly reason?: string | null;
  readonly detail?: string | null;
  readonly route?: string | null;
  readonly path?: string | null;
  readonly method?: string | null;
  readonly clientIp?: string | null;
  readonly identity?: { readonly subject: string; readonly authMethod: string; readonly keyId?: string | null } | null;
  readonly tenant?: string | null;
  readonly limit?: string | null;
  /** The chain the record came from (the stream's subject, or the file's chain); set by the reader. */
  readonly chain?: string | null;
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
