import { connect } from 'node:net';

export interface RawResponse {
  /** Everything the server sent before closing or the timeout. */
  readonly raw: string;
  /** Status of the first response, or 0 if none arrived. */
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
  /** True when the server closed the connection. */
  readonly closed: boolean;
}

/**
 * Sends raw bytes on a fresh TCP connection — for what `fetch` refuses to send (duplicate
 * Content-Length, obs-fold, bad targets) — and collects the reply until the server closes or
 * `timeoutMs` passes. `chunks` are written with `gapMs` between them (slow clients).
 */
export function rawRequest(port: number, data: string | Buffer | (string | Buffer)[], options: { timeoutMs?: number; gapMs?: number; host?: string } = {}): Promise<RawResponse> {
  const chunks = Array.isArray(data) ? data : [data];
  return new Promise((resolve) => {
    const socket = connect(port, options.host ?? '127.0.0.1');
    const received: Buffer[] = [];
    let closed = false;
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(parseRaw(Buffer.concat(received).toString('latin1'), closed));
    };
    const timer = setTimeout(finish, options.timeoutMs ?? 2000);
    socket.on('data', (c: Buffer) => received.push(c));
    socket.on('end', () => { closed = true; finish(); });
    socket.on('close', () => { closed = true; finish(); });
    socket.on('error', () => { closed = true; finish(); });
    socket.on('connect', () => {
      void (async () => {
        for (const chunk of chunks) {
          if (socket.destroyed) return;
          socket.write(chunk);
          if (options.gapMs !== undefined) await new Promise((r) => setTimeout(r, options.gapMs));
        }
      })();
    });
  });
}

function parseRaw(raw: string, closed: boolean): RawResponse {
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
  const end = raw.indexOf('\r\n\r\n');
  const headers: Record<string, string> = {};
  if (end !== -1) {
    for (const line of raw.slice(0, end).split('\r\n').slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
  }
  return { raw, status: match === null ? 0 : Number(match[1]), headers, body: end === -1 ? '' : raw.slice(end + 4), closed };
}
