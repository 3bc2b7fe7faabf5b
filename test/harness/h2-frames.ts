import { connect, type TLSSocket } from 'node:tls';

/**
 * A raw HTTP/2 client over TLS for the tests that must send what a conforming client never would:
 * connection-specific fields, a header block cut into endless CONTINUATION frames, a stream reset
 * right after its HEADERS. Frames are built by hand (RFC 9113 §4.1); header blocks are HPACK
 * literals without indexing or Huffman coding (RFC 7541 §6.2.3), which every decoder accepts.
 */

export const FRAME = Object.freeze({ DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8, CONTINUATION: 0x9 });
export const FLAG = Object.freeze({ END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 });
/** Error codes (RFC 9113 §7). */
export const H2_ERROR = Object.freeze({ NO_ERROR: 0x0, PROTOCOL_ERROR: 0x1, INTERNAL_ERROR: 0x2, REFUSED_STREAM: 0x7, CANCEL: 0x8, COMPRESSION_ERROR: 0x9, ENHANCE_YOUR_CALM: 0xb });

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** An HPACK integer with an `prefixBits`-bit prefix (RFC 7541 §5.1), the first byte's high bits `mask`. */
function hpackInteger(value: number, prefixBits: number, mask: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([mask | value]);
  const bytes = [mask | max];
  let rest = value - max;
  while (rest >= 128) { bytes.push((rest % 128) + 128); rest = Math.floor(rest / 128); }
  bytes.push(rest);
  return Buffer.from(bytes);
}

function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  return Buffer.concat([hpackInteger(bytes.length, 7, 0), bytes]);
}

/** A header block of literal fields, never indexed, names and values as given (no case folding). */
export function headerBlock(fields: readonly (readonly [string, string])[]): Buffer {
  return Buffer.concat(fields.flatMap(([name, value]) => [Buffer.from([0x10]), hpackString(name), hpackString(value)]));
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/**
 * The status of a response HEADERS frame when the server sent it as an indexed static-table
 * field (200, 204, 206, 304, 400, 404, 500: how nghttp2 sends them), else null.
 */
export function indexedStatus(payload: Buffer): number | null {
  const first = payload[0];
  if (first === undefined || (first & 0x80) === 0) return null;
  const statuses: Readonly<Record<number, number>> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };
  return statuses[first & 0x7f] ?? null;
}

/** One raw HTTP/2 connection: the frames the server sent, in order, and how to wait for more. */
export class RawH2 {
  readonly frames: Frame[] = [];
  private buffered = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  /** Set once the server closed the connection (or it failed). */
  ended = false;

  private constructor(readonly socket: TLSSocket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const end = (): void => { this.ended = true; this.wake(); };
    socket.on('close', end);
    socket.on('error', end);
  }

  /** Connects with ALPN `h2` only, sends the preface and an empty SETTINGS frame. */
  static connect(port: number, ca: string, settings: Buffer = Buffer.alloc(0)): Promise<RawH2> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ALPNProtocols: ['h2'] });
      socket.once('error', reject);
      socket.once('secureConnect', () => {
        socket.off('error', reject);
        if (socket.alpnProtocol !== 'h2') { socket.destroy(); reject(new Error(`ALPN chose ${String(socket.alpnProtocol)}`)); return; }
        const raw = new RawH2(socket);
        socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0, settings)]));
        resolve(raw);
      });
    });
  }

  send(bytes: Buffer): boolean {
    if (this.socket.destroyed) return false;
    return this.socket.write(bytes);
  }

  /**
   * Resolves once the settings exchange is over (the server acknowledged ours; ours of its SETTINGS
   * went out on receipt): after it, the client writes only what the test sends.
   */
  async settled(timeoutMs = 5000): Promise<void> {
    await this.waitFor((f) => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) !== 0, timeoutMs);
  }

  /** Resolves once the socket drained, closed, or `timeoutMs` passed: never rejects (a flood's writes may fail). */
  drained(timeoutMs = 2000): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
  }

  /** A request's HEADERS frame (END_HEADERS set unless `endHeaders` is false). */
  request(streamId: number, fields: readonly (readonly [string, string])[], options: { endStream?: boolean; endHeaders?: boolean } = {}): boolean {
    const flags = (options.endStream ?? true ? FLAG.END_STREAM : 0) | (options.endHeaders ?? true ? FLAG.END_HEADERS : 0);
    return this.send(frame(FRAME.HEADERS, flags, streamId, headerBlock(fields)));
  }

  reset(streamId: number, code: number = H2_ERROR.CANCEL): boolean {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(code);
    return this.send(frame(FRAME.RST_STREAM, 0, streamId, payload));
  }

  /** Resolves with the first frame (from the start) that matches, or null once the connection ended or `timeoutMs` passed. */
  async waitFor(match: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(match);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (this.ended || left <= 0) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  /** Resolves once the server closed the connection (true), or false after `timeoutMs`. */
  async closed(timeoutMs = 5000): Promise<boolean> {
    await this.waitFor(() => false, timeoutMs);
    return this.ended;
  }

  /** The GOAWAY the server sent, as its error code and last stream id, or null. */
  goaway(): { code: number; lastStreamId: number } | null {
    const f = this.frames.find((x) => x.type === FRAME.GOAWAY);
    if (f === undefined) return null;
    return { lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4) };
  }

  /** The RST_STREAM code the server sent on a stream, or null. */
  resetCode(streamId: number): number | null {
    const f = this.frames.find((x) => x.type === FRAME.RST_STREAM && x.streamId === streamId);
    return f === undefined ? null : f.payload.readUInt32BE(0);
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 9) {
      const length = this.buffered.readUIntBE(0, 3);
      if (this.buffered.length < 9 + length) break;
      const f: Frame = {
        type: this.buffered.readUInt8(3), flags: this.buffered.readUInt8(4),
        streamId: this.buffered.readUInt32BE(5) & 0x7fffffff, payload: this.buffered.subarray(9, 9 + length),
      };
      this.buffered = this.buffered.subarray(9 + length);
      // The server's SETTINGS are acknowledged, as a client must (RFC 9113 §6.5.3), or it closes the connection.
      if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0) this.send(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      this.frames.push(f);
    }
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
