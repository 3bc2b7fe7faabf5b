import type { RawHttp2 } from './schema-listen.js';

/**
 * HTTP/2 on the HTTPS listener, compiled from `listen.https.http2`: the limits of one session
 * (one client connection), each bounding what a single client can make the gateway hold or do.
 * Restart-only, like the rest of `listen`.
 */
export interface Http2Settings {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: streams past it are refused (REFUSED_STREAM). */
  readonly maxConcurrentStreams: number;
  /** node:http2 `maxSessionMemory`, MiB. */
  readonly maxSessionMemoryMb: number;
  /** Streams the client may reset before they are answered, per window, before the session is closed. */
  readonly maxStreamResets: number;
  readonly streamResetWindowMs: number;
  /** node:http2 `maxSessionInvalidFrames`. */
  readonly maxInvalidFrames: number;
  /** node:http2 `maxSessionRejectedStreams`. */
  readonly maxRejectedStreams: number;
}

/** Documented defaults; docs/configuration.md lists the same values. */
export const HTTP2_DEFAULTS: Http2Settings = Object.freeze({
  maxConcurrentStreams: 100,
  maxSessionMemoryMb: 10,
  maxStreamResets: 100,
  streamResetWindowMs: 10000,
  maxInvalidFrames: 100,
  maxRejectedStreams: 100,
});

/** The HTTP/2 settings of an HTTPS listener; null when `enabled: false` (HTTP/1.1 only). */
export function compileHttp2(raw: RawHttp2 | undefined): Http2Settings | null {
  const r = raw ?? {};
  if (r.enabled === false) return null;
  const d = HTTP2_DEFAULTS;
  return {
    maxConcurrentStreams: r.maxConcurrentStreams ?? d.maxConcurrentStreams,
    maxSessionMemoryMb: r.maxSessionMemoryMb ?? d.maxSessionMemoryMb,
    maxStreamResets: r.maxStreamResets ?? d.maxStreamResets,
    streamResetWindowMs: r.streamResetWindowMs ?? d.streamResetWindowMs,
    maxInvalidFrames: r.maxInvalidFrames ?? d.maxInvalidFrames,
    maxRejectedStreams: r.maxRejectedStreams ?? d.maxRejectedStreams,
  };
}
