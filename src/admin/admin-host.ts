import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { AuditState } from '../audit/audit-log.js';
import type { KeyService } from '../authn/api-key/key-service.js';
import type { CompiledConfig } from '../config/compile.js';
import type { Readiness } from '../lifecycle/readiness.js';
import type { Logger } from '../observability/logger.js';
import type { Clock } from '../lib/clock.js';
import type { AdminCode } from './admin-errors.js';

/**
 * A reload's answer. Taken: `version` is the config in effect (the file's own version unless
 * `restartRequired` lists options the file changes that apply on restart only; then
 * `pendingVersion` is the file's version, in effect after a restart). Refused: the located errors.
 */
export type ReloadResult =
  | { ok: true; version: string; changed: boolean; restartRequired: string[]; pendingVersion?: string }
  | { ok: false; errors: string[] };

/** What one admin request did, for its audit record. */
export interface AdminOutcome {
  readonly status: number;
  readonly code: AdminCode | null;
  readonly detail: string;
  readonly keyId: string | null;
}

/** One admin request as its audit record shows it (never the token, never a key's secret). */
export interface AdminOperation {
  /** Null for a request the HTTP parser refused. */
  readonly req: IncomingMessage | null;
  readonly socket: Socket;
  readonly requestId: string;
  readonly outcome: AdminOutcome;
  /** Whether the caller presented the admin token. */
  readonly authenticated: boolean;
  readonly latencyMs: number;
}

/** How many workers a host's primary wants and has listening, and the config versions they run (one, when settled). */
export interface WorkersStatus {
  readonly wanted: number;
  readonly listening: number;
  readonly versions: readonly string[];
}

/** What the admin API changes keys with: the store's lifecycle service, and the caches to tell. */
export interface KeyAdmin {
  readonly service: KeyService;
  /** Drops a revoked or rotated key from every cache that serves requests, so the change holds at once. */
  forget(id: string): void;
}

/**
 * What the admin API needs from the gateway it administers. The admin application depends on
 * this interface only, never on the gateway itself.
 */
export interface AdminHost {
  /** The running config (the admin settings are read from it once, when the application is built). */
  readonly config: CompiledConfig;
  readonly logger: Logger;
  /** The clock revocations are judged by (default: the machine's). */
  readonly clock?: Clock;
  readonly draining: boolean;
  /** A reload is under way (readiness says `reloading` until every worker runs one version). */
  readonly reloading: boolean;
  /** The workers of a host's primary, or null for a single gateway process. */
  workers(): WorkersStatus | null;
  /** Readiness of every component (for a host's primary, of every worker too). */
  readiness(): Readiness | Promise<Readiness>;
  auditHealthy(): boolean;
  auditState(): AuditState;
  /** Re-reads, validates and swaps in the config file; a rejected config keeps the running one. */
  reload(): Promise<ReloadResult>;
  /** The Prometheus exposition of every metric. */
  metricsText(): Promise<{ readonly contentType: string; readonly text: string }>;
  /** The API key operations of the running config, or null when it has no API key store. */
  keyAdmin(): KeyAdmin | null;
  /**
   * Revokes the token whose tokenHash is `hash` until `untilMs` (epoch ms) on every gateway sharing
   * the revocation list; resolves with null once done, or with why it could not be shared (the
   * admin API answers 503).
   */
  revokeToken(hash: string, untilMs: number): Promise<string | null>;
  /** Writes the one audit record of an admin request. */
  auditAdmin(operation: AdminOperation): void;
}
