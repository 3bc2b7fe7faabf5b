import type { IncomingMessage } from 'node:http';

/**
 * Whether a Content-Length declares a body: a length above zero. Node's parser takes digits only,
 * so `0`, `00` and `000` all declare none; the value is compared as the number it is, never as text.
 */
export function declaresLength(length: string | undefined): boolean {
  return length !== undefined && length !== '0' && Number(length) > 0;
}

/**
 * Whether a request has a body whose length was not declared up front, to be counted while it
 * streams: HTTP/1.1 `Transfer-Encoding` (chunked), or an HTTP/2 request without Content-Length
 * whose HEADERS frame did not end the stream (RFC 9113 §8.1: DATA frames follow, however many).
 */
export function hasUndeclaredBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  if (req.httpVersionMajor !== 2 || req.headers['content-length'] !== undefined) return false;
  // The compatibility API's request carries its stream; `endAfterHeaders`: END_STREAM was on HEADERS.
  const stream = (req as IncomingMessage & { readonly stream?: { readonly endAfterHeaders?: boolean } }).stream;
  return stream?.endAfterHeaders !== true;
}
