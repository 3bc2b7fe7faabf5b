// The audit trail's public names, kept where the rest of the code has imported them from.
export type { AuditRecord } from './audit-record.js';
export type { AuditState } from './trail.js';
export { AuditTrail } from './trail.js';
