import { Socket } from 'node:net';

/**
 * A connection's peer address, also once the connection is gone. A socket forgets its address
 * when its handle is released unless it was read before, and Node ends a TLS connection whose
 * client certificate did not verify before any listener sees it. Such a TLS socket still refers
 * to the TCP socket it wraps (`_parent`), whose address the listener reads as the connection
 * arrives (see Listener). '' when neither knows it.
 */
export function peerAddress(socket: Socket): string {
  const own = socket.remoteAddress;
  if (own !== undefined) return own;
  const parent = (socket as { _parent?: unknown })._parent;
  return parent instanceof Socket ? parent.remoteAddress ?? '' : '';
}

/** Reads a socket's peer address, which the socket then keeps for its whole life (see peerAddress). */
export function notePeerAddress(socket: Socket): string {
  return socket.remoteAddress ?? '';
}
