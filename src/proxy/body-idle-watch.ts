import type { IncomingMessage } from 'node:http';
import type { ClientChannel } from '../pipeline/exchange.js';

/**
 * Watches a request body for a client that stops sending it, or sends it too slowly (slow-body
 * "R.U.D.Y." attacks, a trickle meant to hold an upstream connection). Every `idleMs` it compares
 * the bytes read from the client (its connection, or its HTTP/2 stream); a whole period with fewer than `minBytes` new bytes (at
 * least one) calls `onIdle` once. No per-chunk work: one timer per request with a body, re-armed
 * with `refresh()`, so an idle gap is detected between `idleMs` and twice that.
 *
 * Bytes the gateway has not consumed yet (the request stream holds data because the upstream, or
 * the queue for it, is the slow side) never count as client idleness: the period starts over.
 */
export class BodyIdleWatch {
  /** Called once when the client has been idle for a whole period; replaced as the exchange moves on. */
  onIdle: () => void = () => undefined;
  private lastRead: number;
  /** Least new bytes per period: 1, or what the minimum rate asks for. */
  readonly minBytes: number;
  private readonly timer: NodeJS.Timeout;
  private readonly check = (): void => {
    const req = this.req;
    if (req.complete || req.destroyed) return; // the body is in (or gone): nothing left to wait for
    const read = this.socket.bytesRead;
    if (read - this.lastRead < this.minBytes && req.readableLength === 0) {
      this.onIdle();
      return;
    }
    this.lastRead = read;
    this.timer.refresh();
  };

  /** `minBytesPerSecond` 0 checks idleness only. */
  constructor(private readonly req: IncomingMessage, private readonly socket: Pick<ClientChannel, 'bytesRead'>, readonly idleMs: number, minBytesPerSecond: number) {
    this.minBytes = Math.max(1, Math.ceil(minBytesPerSecond * idleMs / 1000));
    this.lastRead = socket.bytesRead;
    this.timer = setTimeout(this.check, idleMs);
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
