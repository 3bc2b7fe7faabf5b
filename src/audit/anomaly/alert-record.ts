import type { AuditRecord } from '../audit-record.js';
import type { Alert, ObservedRecord } from './types.js';

/**
 * The members of the `alert` record an anomaly becomes in the trail (docs/audit.md, "Anomaly
 * detection"); the chain adds `chain`, `seq`, `prev` and `hash`. Every text member is already
 * bounded and escaped by the detector that made the alert.
 */
export function alertRecord(alert: Alert): Record<string, unknown> {
  return {
    kind: 'alert',
    detector: alert.detector,
    severity: alert.severity,
    subject: alert.subject,
    summary: alert.summary,
    evidence: alert.evidence,
    time: alert.time,
  };
}

/**
 * The in-process record as the detectors read it. No copy: ObservedRecord takes null for a member
 * that does not apply, as AuditRecord holds it.
 */
export function observedFromAuditRecord(r: AuditRecord): ObservedRecord {
  return r;
}
