import { connect, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';

export interface H2Response {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The stream's RST_STREAM code (0: it ended normally). */
  readonly rstCode: number;
}

/** An HTTP/2 session with node:http2 to an HTTPS URL, trusting `ca`, for the tests. */
export function h2Connect(url: string, ca: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect(url, { ca, servername: 'localhost' });
    session.once('connect', () => { session.off('error', reject); session.on('error', () => undefined); resolve(session); });
    session.once('error', reject);
  });
}

/** One request on a session: status 0 when the stream was reset before a response. */
export function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string | Buffer): Promise<H2Response> {
  return new Promise((resolve) => {
    const stream = session.request({ ':method': body === undefined ? 'GET' : 'POST', ...headers }, { endStream: body === undefined });
    let status = 0;
    let responseHeaders: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => { responseHeaders = h; status = Number(h[':status']); });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => undefined);
    stream.on('close', () => resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks).toString('utf8'), rstCode: stream.rstCode ?? 0 }));
    if (body !== undefined) stream.end(body);
  });
}

/** The session closed (GOAWAY received or connection ended), bounded. */
export function h2Closed(session: ClientHttp2Session, timeoutMs = 5000): Promise<boolean> {
  if (session.closed || session.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    session.once('close', () => { clearTimeout(timer); resolve(true); });
  });
}
