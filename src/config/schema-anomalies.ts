import { strict } from './schema-parts.js';

/** `audit.anomalies`: the detectors run over the gateway's own records, and where alerts go. */
export const AnomaliesSchema = strict({}, 'Anomaly detectors over the audit records.');
