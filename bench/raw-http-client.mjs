// A minimal HTTP/1.1 client for the soak's open-loop generator: one fixed GET, sent over up to N
// keep-alive connections, one request at a time on each, with just enough response parsing to
// find where each response ends (Content-Length or chunked). It costs the load generator's core
// about half of what undici's dispatch does per request, and that core is shared with the upstream
// (docs/performance.md#soak).
//
// Bounded: heads of at most 16 KiB, chunk-size lines of at most 1 KiB; every request has a
// deadline (checked every 100 ms), including the time it waits for a connection; a connection
// that fails before connecting fails the oldest waiting request, so a dead server cannot make it
// reconnect without end. A response with no length (read to close) or that cannot be parsed
// fails its request and closes the connection.
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { clearInterval, setInterval } from 'node:timers';

const MAX_HEAD_BYTES = 16 * 1024;
const MAX_LINE_BYTES = 1024;
const SWEEP_MS = 100;
/**
 * A connection idle this long is closed by the client. A server closes idle keep-alive
 * connections itself (the gateway after 5 s by default); a request written on one just as the
 * server's close is under way would fail through no fault of the server. Clients avoid the race
 * the same way (undici stops reusing a connection a second before the server's keep-alive
 * timeout).
 */
const IDLE_CLOSE_MS = 2000;
const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

const HEAD = 0;
const BODY = 1;
const CHUNK_SIZE = 2;
const CHUNK_DATA = 3;
const CHUNK_END = 4;
const TRAILER = 5;

class ResponseError extends Error {
  constructor(message) {
    super(message);
    this.code = 'BAD_RESPONSE';
  }
}

/**
 * `url`: the request's origin and path; `headers`: extra request headers; `connections`: most
 * connections open at once; `timeoutMs`: from `send()` to the end of the response.
 * `onDone(status, startedAt, tag)` is called for each complete response (tag: what `send` was given) and `onFail(kind, err)` for
 * each failed request, kind one of connect | read | write | timeout. Answers { send, inFlight, close }.
 */
export function createRawClient({ url, headers, connections, timeoutMs, onDone, onFail }) {
  const target = new URL(url);
  if (target.protocol !== 'http:') throw new Error(`only http: targets, got ${target.protocol}`);
  for (const [name, value] of Object.entries(headers)) {
    if (/[\r\n:]/.test(name) || /[\r\n]/.test(String(value))) throw new Error(`header ${JSON.stringify(name)}: no CR, LF (or ':' in the name)`);
  }
  const request = Buffer.from(
    `GET ${target.pathname}${target.search} HTTP/1.1\r\nhost: ${target.host}\r\n` +
    Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('') + '\r\n', 'latin1');
  const port = Number(target.port || 80);
  const all = new Set();
  const idle = [];
  const waiting = []; // requests waiting for a connection, oldest first from `head`
  let head = 0;
  let inFlight = 0;
  let closed = false;

  const takeWaiting = () => {
    if (head === waiting.length) return undefined;
    const req = waiting[head];
    waiting[head++] = undefined;
    if (head > 1024 && head * 2 > waiting.length) { waiting.splice(0, head); head = 0; }
    return req;
  };

  function fail(kind, err) {
    inFlight--;
    onFail(kind, err);
  }

  function start(conn, req) {
    conn.req = req;
    conn.state = HEAD;
    conn.socket.write(request);
  }

  function next(conn) {
    const req = takeWaiting();
    if (req === undefined) { conn.idleAt = performance.now(); idle.push(conn); } else start(conn, req);
  }

  function open() {
    const conn = { socket: connect({ host: target.hostname, port }), req: null, state: HEAD, pending: null, remaining: 0, status: 0,
      connected: false, keepAlive: true, error: null, timedOut: false };
    all.add(conn);
    conn.socket.setNoDelay(true);
    conn.socket.on('connect', () => { conn.connected = true; next(conn); });
    conn.socket.on('data', (chunk) => {
      try {
        onData(conn, chunk);
      } catch (err) {
        conn.error = err;
        conn.socket.destroy();
      }
    });
    conn.socket.on('error', (err) => { conn.error = err; });
    conn.socket.on('close', () => onClose(conn));
  }

  function onClose(conn) {
    all.delete(conn);
    const at = idle.indexOf(conn);
    if (at !== -1) idle.splice(at, 1);
    if (!conn.connected) {
      // Never connected: fail the oldest waiting request, so a dead server costs a request per attempt.
      if (takeWaiting() !== undefined) fail('connect', conn.error ?? new Error('connection closed before connecting'));
    } else if (conn.req !== null) {
      const kind = conn.timedOut ? 'timeout' : conn.error?.code === 'EPIPE' ? 'write' : 'read';
      fail(kind, conn.error ?? new Error(conn.timedOut ? `no response within ${timeoutMs} ms` : 'connection closed mid-response'));
      conn.req = null;
    }
    if (!closed && head < waiting.length && all.size < connections) open();
  }

  /** Parses what arrived; finishes the request at the end of its response. */
  function onData(conn, chunk) {
    if (conn.req === null) throw new ResponseError('bytes with no request outstanding');
    let buf = conn.pending === null ? chunk : Buffer.concat([conn.pending, chunk]);
    conn.pending = null;
    let i = 0;
    for (;;) {
      if (conn.state === HEAD) {
        const end = find(buf, HEAD_END, i, MAX_HEAD_BYTES, 'response head');
        if (end === -1) return keep(conn, buf, i);
        parseHead(conn, buf.toString('latin1', i, end));
        i = end + 4;
      } else if (conn.state === BODY || conn.state === CHUNK_DATA) {
        const take = Math.min(conn.remaining, buf.length - i);
        conn.remaining -= take;
        i += take;
        if (conn.remaining > 0) return undefined;
        if (conn.state === CHUNK_DATA) conn.state = CHUNK_END;
        else break;
      } else if (conn.state === CHUNK_END) {
        if (buf.length - i < 2) return keep(conn, buf, i);
        if (buf[i] !== 13 || buf[i + 1] !== 10) throw new ResponseError('chunk not followed by CRLF');
        i += 2;
        conn.state = CHUNK_SIZE;
      } else {
        const end = find(buf, CRLF, i, MAX_LINE_BYTES, 'chunk line');
        if (end === -1) return keep(conn, buf, i);
        const line = buf.toString('latin1', i, end);
        i = end + 2;
        if (conn.state === TRAILER) {
          if (line === '') break; // trailer fields, if any, are skipped
        } else {
          const size = /^([0-9a-fA-F]{1,8})(?:;.*)?$/.exec(line)?.[1];
          if (size === undefined) throw new ResponseError(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
          conn.remaining = parseInt(size, 16);
          conn.state = conn.remaining === 0 ? TRAILER : CHUNK_DATA;
        }
      }
    }
    if (i < buf.length) throw new ResponseError('bytes after the end of the response');
    const req = conn.req;
    conn.req = null;
    inFlight--;
    onDone(conn.status, req.startedAt, req.tag);
    if (conn.keepAlive) next(conn);
    else conn.socket.end();
  }

  /** Where `needle` starts in `buf` from `i`, or -1 while it may still come; throws past `max` bytes. */
  function find(buf, needle, i, max, what) {
    const end = buf.indexOf(needle, i);
    if ((end === -1 ? buf.length : end) - i > max) throw new ResponseError(`${what} longer than ${max} bytes`);
    return end;
  }

  /** Keeps the unparsed rest for the next chunk (bounded by the `find` that asked for more). */
  function keep(conn, buf, i) {
    conn.pending = buf.subarray(i);
    return undefined;
  }

  function parseHead(conn, text) {
    const lines = text.split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0])?.[1];
    if (status === undefined) throw new ResponseError(`bad status line ${JSON.stringify(lines[0].slice(0, 40))}`);
    conn.status = Number(status);
    let length = null;
    let chunked = false;
    let connection = '';
    for (let k = 1; k < lines.length; k++) {
      const colon = lines[k].indexOf(':');
      const name = lines[k].slice(0, colon).toLowerCase();
      const value = lines[k].slice(colon + 1).trim().toLowerCase();
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value) || (length !== null && length !== Number(value))) throw new ResponseError(`bad content-length ${JSON.stringify(value)}`);
        length = Number(value);
      } else if (name === 'transfer-encoding') chunked = value.split(',').map((s) => s.trim()).at(-1) === 'chunked';
      else if (name === 'connection') connection = value;
    }
    const tokens = connection.split(',').map((s) => s.trim());
    conn.keepAlive = lines[0].startsWith('HTTP/1.1') ? !tokens.includes('close') : tokens.includes('keep-alive');
    if (chunked) conn.state = CHUNK_SIZE;
    else if (length !== null) {
      conn.state = BODY;
      conn.remaining = length;
    } else if (conn.status === 204 || conn.status === 304) {
      conn.state = BODY;
      conn.remaining = 0;
    } else throw new ResponseError('response with neither content-length nor chunked encoding');
  }

  // Deadlines: a request outstanding past timeoutMs fails as a timeout, its connection closed.
  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const conn of all) {
      if (conn.req !== null && now - conn.req.startedAt > timeoutMs) {
        conn.timedOut = true;
        conn.socket.destroy();
      }
    }
    // The least recently used idle connections are at the front.
    while (idle.length > 0 && now - idle[0].idleAt > IDLE_CLOSE_MS) idle.shift().socket.destroy();
    while (head < waiting.length && now - waiting[head].startedAt > timeoutMs) {
      takeWaiting();
      fail('timeout', new Error(`no connection within ${timeoutMs} ms`));
    }
  }, SWEEP_MS);

  return {
    /** Sends the request once; its outcome reaches onDone (with `tag`) or onFail. */
    send(tag) {
      inFlight++;
      const req = { startedAt: performance.now(), tag };
      const conn = idle.pop();
      if (conn !== undefined) start(conn, req);
      else {
        waiting.push(req);
        if (all.size < connections) open();
      }
    },
    inFlight: () => inFlight,
    /** Closes every connection; requests still outstanding are left unanswered. */
    close() {
      closed = true;
      clearInterval(sweeper);
      for (const conn of all) conn.socket.destroy();
    },
  };
}
