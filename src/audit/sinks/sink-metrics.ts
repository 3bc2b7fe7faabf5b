/**
 * What a sink counts, when the gateway passes a metrics object: records by outcome
 * (`portcullis_audit_sink_records_total{sink,outcome}`) and the bytes in its spool
 * (`portcullis_audit_spool_bytes{sink}`). Optional: a sink without it counts only `dropped`.
 */
export interface SinkMetrics {
  sinkRecords(sink: string, outcome: SinkOutcome, count: number): void;
  spoolBytes(sink: string, bytes: number): void;
}

/**
 * `delivered`: acknowledged by the stream or a 2xx from the collector; `duplicate`: the stream
 * already held it (same Nats-Msg-Id); `spooled`: written to the on-disk spool; `retried`: sent
 * again after a failure; `rejected`: refused for good (HTTP 4xx); `dropped`: lost (queue or spool full).
 */
export type SinkOutcome = 'delivered' | 'duplicate' | 'spooled' | 'retried' | 'rejected' | 'dropped';
