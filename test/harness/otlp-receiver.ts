import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

/** One span as an OTLP/HTTP JSON request carries it. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly traceState?: string;
  readonly name: string;
  readonly kind: number;
  readonly startTimeUnixNano: string;
  readonly endTimeUnixNano: string;
  readonly attributes: readonly { readonly key: string; readonly value: { readonly stringValue?: string; readonly intValue?: string } }[];
  readonly status: { readonly code?: number };
}

interface ExportRequest {
  resourceSpans: { resource: { attributes: ReceivedSpan['attributes'] }; scopeSpans: { scope: { name: string }; spans: ReceivedSpan[] }[] }[];
}

/**
 * An OpenTelemetry collector's OTLP/HTTP traces endpoint, in process on loopback: it parses every
 * JSON export request and keeps its spans, its raw bytes and its headers. `hold()` makes it take
 * requests without answering them (a slow collector) until `release()`.
 */
export interface OtlpReceiver {
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Every request body as received, byte for byte. */
  readonly bodies: Buffer[];
  readonly requests: { readonly contentType: string | undefined; readonly headers: IncomingMessage['headers']; readonly serviceName: string | undefined; readonly pid: number | undefined; readonly spans: number }[];
  /** Resolves with every span once `match` holds for the spans received so far (bounded). */
  waitFor(match: (spans: readonly ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  /** Resolves once `count` export requests have arrived (answered or held). */
  requestsArrived(count: number, timeoutMs?: number): Promise<void>;
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const bodies: Buffer[] = [];
  const requests: OtlpReceiver['requests'][number][] = [];
  const waiters = new Set<() => void>();
  let held: ServerResponse[] | null = null;
  const notify = (): void => { for (const w of [...waiters]) w(); };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      bodies.push(body);
      const parsed = JSON.parse(body.toString('utf8')) as ExportRequest;
      const resource = parsed.resourceSpans[0]?.resource.attributes;
      const pid = resource?.find((a) => a.key === 'process.pid')?.value.intValue;
      const before = spans.length;
      for (const rs of parsed.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      requests.push({
        contentType: req.headers['content-type'], headers: req.headers, serviceName: resource?.find((a) => a.key === 'service.name')?.value.stringValue,
        pid: pid === undefined ? undefined : Number(pid), spans: spans.length - before,
      });
      if (held !== null) held.push(res);
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      notify();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const until = (check: () => boolean, timeoutMs: number, what: string): Promise<void> => new Promise((resolve, reject) => {
    if (check()) { resolve(); return; }
    const timer = setTimeout(() => { waiters.delete(waiter); reject(new Error(`the collector did not receive ${what} within ${timeoutMs} ms`)); }, timeoutMs);
    const waiter = (): void => {
      if (!check()) return;
      clearTimeout(timer);
      waiters.delete(waiter);
      resolve();
    };
    waiters.add(waiter);
  });
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    spans,
    bodies,
    requests,
    async waitFor(match, timeoutMs = 10_000) {
      await until(() => match(spans), timeoutMs, 'the spans expected');
      return [...spans];
    },
    requestsArrived: (count, timeoutMs = 10_000) => until(() => requests.length >= count, timeoutMs, `${count} export requests`),
    hold() { held ??= []; },
    release() {
      const waiting = held ?? [];
      held = null;
      for (const res of waiting) res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    },
    close: () => new Promise<void>((done) => { server.close(() => done()); server.closeAllConnections(); }),
  };
}

/** A span's attribute value (string, or an integer as a number); undefined when absent. */
export function attribute(span: ReceivedSpan, key: string): string | number | undefined {
  const v = span.attributes.find((a) => a.key === key)?.value;
  if (v === undefined) return undefined;
  return v.intValue !== undefined ? Number(v.intValue) : v.stringValue;
}
