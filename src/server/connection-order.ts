import type { Socket } from 'node:net';
import type { Exchange } from '../pipeline/exchange.js';

/** One client connection's exchanges whose response has not closed, oldest first. */
interface Connection {
  /** Each open exchange and what to run when its response is over. */
  readonly open: Map<Exchange, () => void>;
  /** The exchange that waits for each open one (pipelining is strictly in order: at most one). */
  readonly waiting: Map<Exchange, () => void>;
  last: Exchange | null;
  /** A denial is closing the connection: nothing after it is processed. */
  closing: boolean;
}

const connections = new WeakMap<Socket, Connection>();

/**
 * Most requests one connection may have waiting for their turn. Node parses pipelined requests as
 * they arrive, so without a bound one client could queue any number of them; past it the
 * connection is closed, and every request read from it is audited once.
 */
export const MAX_PIPELINED = 64;

function connectionOf(socket: Socket): Connection {
  let connection = connections.get(socket);
  if (connection === undefined) {
    const created: Connection = { open: new Map(), waiting: new Map(), last: null, closing: false };
    // Node never closes a response still queued behind another when the socket dies: end them all here.
    socket.once('close', () => { for (const end of [...created.open.values()]) end(); });
    connections.set(socket, created);
    connection = created;
  }
  return connection;
}

/**
 * Pipelined requests on one connection are handled one at a time, in order, as nginx does: an
 * exchange starts once the response before it is over, and none starts once a denial is closing
 * the connection or the client has gone (RFC 9112 §9.3.2: what follows a refused request on the
 * wire cannot be trusted to be a request). `onResponseOver` runs exactly once per exchange, when its
 * response closed or its connection did.
 *
 * Returns a promise for the exchange's turn (undefined when it is first in line, the common case,
 * so the hot path awaits nothing), resolving to true when it may be processed.
 */
export function enterConnection(ex: Exchange, onResponseOver: () => void): Promise<boolean> | undefined {
  const socket = ex.wire.socket;
  if (socket === null) { enterStream(ex, onResponseOver); return undefined; }
  const connection = connectionOf(socket);
  const previous = connection.last;
  connection.last = ex;
  const end = (): void => {
    if (ex.wire.responseClosed) return;
    ex.wire.responseClosed = true;
    connection.open.delete(ex);
    const next = connection.waiting.get(ex);
    if (next !== undefined) { connection.waiting.delete(ex); next(); }
    onResponseOver();
  };
  connection.open.set(ex, end);
  ex.wire.res.once('close', end);
  if (connection.open.size > MAX_PIPELINED && !connection.closing) {
    connection.closing = true;
    socket.destroy();
  }
  if (previous === null || previous.wire.responseClosed) return mayProceed(socket, connection) ? undefined : Promise.resolve(false);
  return new Promise((resolve) => {
    connection.waiting.set(previous, () => resolve(mayProceed(socket, connection)));
  });
}

/**
 * An HTTP/2 stream: streams of one connection are concurrent by design (RFC 9113 §5), each with
 * its own flow control, so none waits for another and none is keyed on the shared socket (a
 * session's bounds are in h2-front.ts). `onResponseOver` runs once, when the stream's response closed.
 */
function enterStream(ex: Exchange, onResponseOver: () => void): void {
  ex.wire.res.once('close', () => {
    if (ex.wire.responseClosed) return;
    ex.wire.responseClosed = true;
    onResponseOver();
  });
}

function mayProceed(socket: Socket, connection: Connection): boolean {
  return !connection.closing && !socket.destroyed && socket.writable;
}

/** A denial is closing this connection: requests pipelined behind it are not processed. */
export function markClosing(socket: Socket): void {
  connectionOf(socket).closing = true;
}

/** Whether a denial closed this connection. */
export function isClosing(socket: Socket): boolean {
  return connections.get(socket)?.closing === true;
}
