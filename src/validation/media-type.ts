import type { MediaTypeRule } from './contract.js';

/** A Content-Type field value, parsed: the media type in lower case and its charset parameter, if any. */
export interface ContentType {
  /** `type/subtype`, lower case (both are case-insensitive, RFC 9110 §8.3.1). */
  readonly type: string;
  /** The `charset` parameter's value in lower case, unquoted; null when absent. */
  readonly charset: string | null;
}

/** Why a Content-Type is not accepted (private: the audit reason; never quotes the value). */
export type ContentTypeProblem = string;

/** RFC 9110 §5.6.2 tchar. */
function isTchar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39)
    || c === 0x21 || (c >= 0x23 && c <= 0x27) || c === 0x2a || c === 0x2b || c === 0x2d || c === 0x2e
    || c === 0x5e || c === 0x5f || c === 0x60 || c === 0x7c || c === 0x7e;
}

function token(s: string, from: number): number {
  let j = from;
  while (j < s.length && isTchar(s.charCodeAt(j))) j++;
  return j;
}

function ows(s: string, from: number): number {
  let j = from;
  while (s.charCodeAt(j) === 0x20 || s.charCodeAt(j) === 0x09) j++;
  return j;
}

/**
 * Parses a Content-Type value strictly by RFC 9110 §8.3.1: `type "/" subtype *( OWS ";" OWS
 * [ name "=" ( token / quoted-string ) ] )`. Returns the problem as a string for anything else: a
 * missing subtype, a parameter without a value, an unterminated quoted string, a repeated charset
 * parameter (which one would the upstream believe?), trailing garbage.
 */
export function parseContentType(value: string): ContentType | ContentTypeProblem {
  const s = value;
  let i = ows(s, 0);
  const typeEnd = token(s, i);
  if (typeEnd === i || s.charCodeAt(typeEnd) !== 0x2f) return 'not a media type (type/subtype)';
  const subEnd = token(s, typeEnd + 1);
  if (subEnd === typeEnd + 1) return 'not a media type (type/subtype)';
  const type = s.slice(i, subEnd).toLowerCase();
  let charset: string | null = null;
  i = ows(s, subEnd);
  while (i < s.length) {
    if (s.charCodeAt(i) !== 0x3b) return 'unexpected characters after the media type';
    i = ows(s, i + 1);
    if (i >= s.length || s.charCodeAt(i) === 0x3b) continue; // an empty parameter is allowed
    const nameEnd = token(s, i);
    if (nameEnd === i || s.charCodeAt(nameEnd) !== 0x3d) return 'a parameter without a name=value form';
    const name = s.slice(i, nameEnd).toLowerCase();
    let paramValue: string;
    let j = nameEnd + 1;
    if (s.charCodeAt(j) === 0x22) {
      let out = '';
      j++;
      for (;;) {
        if (j >= s.length) return 'an unterminated quoted parameter value';
        const c = s.charCodeAt(j);
        if (c === 0x22) { j++; break; }
        if (c === 0x5c) {
          const q = s.charCodeAt(j + 1);
          if (Number.isNaN(q) || (q < 0x20 && q !== 0x09) || q === 0x7f) return 'an invalid quoted-pair in a parameter value';
          out += s[j + 1] as string;
          j += 2;
          continue;
        }
        if ((c < 0x20 && c !== 0x09) || c === 0x7f) return 'a control character in a parameter value';
        out += s[j] as string;
        j++;
      }
      paramValue = out;
    } else {
      const end = token(s, j);
      if (end === j) return 'a parameter without a value';
      paramValue = s.slice(j, end);
      j = end;
    }
    if (name === 'charset') {
      if (charset !== null) return 'the charset parameter is repeated';
      charset = paramValue.toLowerCase();
    }
    i = ows(s, j);
  }
  return { type, charset };
}

/** The accepted media type of a request with a body, or why it is refused (415). */
export function acceptedMediaType(header: string | undefined, mediaTypes: ReadonlyMap<string, MediaTypeRule>): { readonly rule: MediaTypeRule } | { readonly problem: string } {
  if (header === undefined) return { problem: 'a request body without a Content-Type' };
  const parsed = parseContentType(header);
  if (typeof parsed === 'string') return { problem: `Content-Type ${parsed}` };
  const rule = mediaTypes.get(parsed.type);
  if (rule === undefined) return { problem: `content type ${parsed.type.slice(0, 100)} not accepted` };
  if (parsed.charset !== null) {
    // RFC 8259 §8.1: JSON exchanged between systems is UTF-8; a missing charset means UTF-8.
    const accepted = rule.charsets ?? UTF8_ONLY;
    if (!accepted.has(parsed.charset)) return { problem: `charset ${parsed.charset.slice(0, 40)} not accepted for ${parsed.type}` };
  }
  return { rule };
}

const UTF8_ONLY: ReadonlySet<string> = new Set(['utf-8']);

/** Whether a media type is JSON: application/json or a structured syntax suffix +json (RFC 6839). */
export function isJsonMediaType(type: string): boolean {
  return type === 'application/json' || type.endsWith('+json');
}
