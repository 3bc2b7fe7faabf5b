/**
 * Revoked bearer tokens, by digest (TokenDigester): every authenticator that takes bearer tokens
 * refuses one listed here, and caches drop it. A revocation lasts until the token would have
 * expired anyway (`untilMs`), so the list is bounded by the tokens still alive.
 */
export interface RevocationList {
  /** True when no token is revoked and the list is current: the hot path then skips digesting. */
  readonly empty: boolean;
  /**
   * Why the list may be missing revocations made elsewhere (a shared list cut off from the others
   * longer than it may be); null while it is current. While not null, bearer authenticators refuse
   * every token with 503 authentication_unavailable (fail closed).
   */
  readonly unavailable: string | null;
  isRevoked(digest: string): boolean;
  /** Revokes until `untilMs` (epoch ms); resolves once every gateway sharing the list will refuse it. */
  revoke(digest: string, untilMs: number): Promise<void>;
  /** Told of every revocation, made here or by another gateway; returns the unsubscribe. */
  onRevoked(listener: (digest: string) => void): () => void;
  /** The revocations this process holds in force: digest and end (epoch ms). */
  inForce(): [digest: string, untilMs: number][];
  /** Holds a revocation handed over from the list this one replaces (in this process only; nothing is shared or told). */
  carryOver(digest: string, untilMs: number): void;
}
