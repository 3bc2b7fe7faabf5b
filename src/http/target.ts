import { deny, type Denial } from '../pipeline/denials.js';

/** How paths are normalised; compiled from `paths` in gateway.yaml. */
export interface TargetOptions {
  /** Collapse runs of `/` into one (`//a///b` → `/a/b`). */
  readonly mergeSlashes: boolean;
  /** Accept `;` in path segments (matrix parameters). Off by default: `/admin;x` is read as `/admin` by some servers. */
  readonly allowSemicolon: boolean;
  /** Longest accepted request target, in bytes (414 above). */
  readonly maxUrlBytes: number;
}

/** A request target parsed once: the canonical path that is matched *and* forwarded, and the query as sent. */
export interface Target {
  /** Canonical percent-encoded path: dot segments resolved, unreserved escapes decoded, hex upper-cased. */
  readonly path: string;
  /** Path segments of `path` (no leading empty segment); a trailing slash yields a final `''`. */
  readonly segments: readonly string[];
  /** `?…` exactly as the client sent it, or `''`. */
  readonly query: string;
}

// Character classes per RFC 3986 §2–3.3, indexed by char code (ASCII only).
const UNRESERVED = new Uint8Array(128);
const PCHAR = new Uint8Array(128);
const QUERY = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9\-._~]/.test(ch)) UNRESERVED[c] = 1;
  if (/[A-Za-z0-9\-._~!$&'()*+,;=:@]/.test(ch)) PCHAR[c] = 1;
  // Query: pchar, '/', '?' and '%' (validated loosely: the gateway forwards the query untouched).
  if (/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]/.test(ch)) QUERY[c] = 1;
}
// RFC 3986 leaves '[' ']' '|' '{' '}' '^' '`' '"' '<' '>' '\\' out of the query grammar, but browsers
// and real clients send some of them unencoded there. Accept the ones with no meaning to a path.
for (const ch of ['[', ']', '|', '{', '}', '^', '`', '"', '<', '>']) QUERY[ch.charCodeAt(0)] = 1;

const HEX = '0123456789ABCDEF';
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * Parses a raw request target exactly once (invariant 2). Accepts origin form only; rejects with
 * 400 what is ambiguous or malformed, 414 what is too long. The returned `path` is what routes
 * are matched on and what is sent upstream, byte for byte: nothing downstream decodes it again.
 */
export function parseTarget(raw: string, options: TargetOptions): Target | Denial {
  if (raw.length > options.maxUrlBytes) return deny('uri_too_long', `target is ${raw.length} bytes, limit ${options.maxUrlBytes}`);
  if (raw.charCodeAt(0) !== 47 /* / */) {
    return deny('invalid_target', raw.startsWith('*') ? 'asterisk-form target' : 'target is not in origin form (absolute-form or authority-form)');
  }
  let queryStart = raw.indexOf('?');
  if (queryStart === -1) queryStart = raw.length;
  for (let i = queryStart; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c >= 128 || QUERY[c] !== 1) return deny('invalid_target', `forbidden character 0x${c.toString(16)} in query`);
  }
  const parsed = parsePath(raw, 1, queryStart, options);
  if (typeof parsed === 'string') return parsed === 'ambiguous' ? deny('ambiguous_path', lastReason) : deny('invalid_target', lastReason);
  return { path: parsed.path, segments: parsed.segments, query: raw.slice(queryStart) };
}

// Reason text for the most recent failure; parsePath is synchronous so this cannot interleave.
let lastReason = '';

interface ParsedPath { readonly path: string; readonly segments: string[] }

/**
 * Canonicalises `raw[start, end)` (the path after its leading `/`). Returns a failure kind and
 * leaves the precise reason in `lastReason`. Shared with route-pattern compilation so patterns and
 * requests are canonicalised by one function.
 */
function parsePath(raw: string, start: number, end: number, options: Pick<TargetOptions, 'mergeSlashes' | 'allowSemicolon'>): ParsedPath | 'invalid' | 'ambiguous' {
  const segments: string[] = [];
  let segment = '';
  let sawHighByte = false;
  let sawSemicolon = false;
  for (let i = start; i <= end; i++) {
    const c = i === end ? 47 : raw.charCodeAt(i);
    if (c === 47 /* / */) {
      const last = i === end;
      if (sawSemicolon && isDotWithParameters(segment)) {
        // `..;x` is `..` to servers that strip matrix parameters (the Tomcat "..;" traversal).
        lastReason = `dot segment with parameters "${segment}"`;
        return 'ambiguous';
      }
      sawSemicolon = false;
      if (segment === '.' || segment === '..') {
        // RFC 3986 §5.2.4; climbing above the root is an attack signal, not something to clamp.
        if (segment === '..' && segments.pop() === undefined) { lastReason = 'dot segment climbs above the root'; return 'ambiguous'; }
        if (last) segments.push('');
      } else if (segment !== '' || last || !options.mergeSlashes) {
        segments.push(segment);
      }
      segment = '';
      continue;
    }
    if (c === 37 /* % */) {
      const h = i + 2 < end ? hexValue(raw.charCodeAt(i + 1)) : -1;
      const l = h === -1 ? -1 : hexValue(raw.charCodeAt(i + 2));
      if (l === -1) { lastReason = `invalid percent-encoding at offset ${i}`; return 'invalid'; }
      const byte = h * 16 + l;
      if (byte === 0x2f || byte === 0x5c) { lastReason = `encoded ${byte === 0x2f ? 'slash' : 'backslash'} %${raw.slice(i + 1, i + 3)}`; return 'ambiguous'; }
      if (byte < 0x20 || byte === 0x7f) { lastReason = `encoded control character %${raw.slice(i + 1, i + 3)}`; return 'invalid'; }
      if (byte < 128 && UNRESERVED[byte] === 1) segment += String.fromCharCode(byte);
      else {
        if (byte >= 128) sawHighByte = true;
        if (byte === 0x3b) {
          // `%3B` is `;` to a hop that decodes before forwarding, and then a matrix parameter to
          // Tomcat or Spring: refused like a raw `;` unless semicolons are allowed.
          if (!options.allowSemicolon) { lastReason = `encoded semicolon %${raw.slice(i + 1, i + 3)}`; return 'ambiguous'; }
          sawSemicolon = true;
        }
        segment += '%' + HEX.charAt(h) + HEX.charAt(l);
      }
      i += 2;
      continue;
    }
    if (c >= 128 || PCHAR[c] !== 1) {
      lastReason = c === 0x5c ? 'backslash in path' : `forbidden character 0x${c.toString(16)} in path`;
      return c === 0x5c ? 'ambiguous' : 'invalid';
    }
    if (c === 59 /* ; */) {
      if (!options.allowSemicolon) { lastReason = 'semicolon in path'; return 'ambiguous'; }
      sawSemicolon = true;
    }
    segment += raw.charAt(i);
  }
  // The root is the empty list; `/a/` is ['a', ''].
  if (segments.length === 1 && segments[0] === '') segments.length = 0;
  const path = '/' + segments.join('/');
  if (sawHighByte) {
    // decodeURIComponent rejects invalid UTF-8, overlong forms and lone surrogates (RFC 3629).
    try { decodeURIComponent(path); } catch { lastReason = 'percent-encoded bytes are not valid UTF-8'; return 'invalid'; }
  }
  return { path, segments };
}

function isDotWithParameters(segment: string): boolean {
  const cut = segment.search(/;|%3B/);
  const bare = cut === -1 ? segment : segment.slice(0, cut);
  return bare === '.' || bare === '..';
}

/**
 * Canonicalises one literal segment of a route pattern with the request rules, so a pattern and
 * the requests it should match meet in the same form. Returns an error message or the canonical text.
 */
export function canonicalSegment(text: string, allowSemicolon: boolean): { ok: true; value: string } | { ok: false; message: string } {
  const parsed = parsePath(text, 0, text.length, { mergeSlashes: false, allowSemicolon });
  if (typeof parsed === 'string') return { ok: false, message: lastReason };
  const value = parsed.segments[0];
  if (parsed.segments.length !== 1 || value === undefined || value === '') return { ok: false, message: 'a segment cannot be empty, a dot segment or contain "/"' };
  return { ok: true, value };
}
