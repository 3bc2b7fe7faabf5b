/**
 * Characters that must never reach an audit record value raw. JSON.stringify escapes C0 controls
 * in the file, but a reader that decodes the record (`jq -r`, a SIEM view) gets them back, so they
 * are escaped in the value itself: C0 controls and DEL (`\n` forges a record in a line-oriented
 * reader, ESC drives the terminal), C1 controls (0x9B is CSI to some terminals), the Unicode line
 * and paragraph separators (line breaks to JavaScript before ES2019 and to several log viewers),
 * bidirectional overrides and isolates (CVE-2021-42574 "Trojan Source": text that reads differently
 * than it is), and lone surrogates (not valid UTF-8).
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function escapeChar(ch: string): string {
  const code = ch.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * Attacker text made safe for the audit trail and bounded: every unsafe character (see above) is
 * replaced by a visible escape (`\x1b`, `\u202e`), and a result longer than `maxChars` is cut and
 * ends with the truncation marker `…[truncated: N chars]`, N being the original length. The result
 * is never longer than `maxChars` (UTF-16 code units; `maxChars` must be at least 32).
 */
export function boundText(value: string, maxChars: number): string {
  // Escaping can only lengthen text, so text past maxChars is cut before it is escaped.
  const head = value.length > maxChars ? value.slice(0, maxChars) : value;
  const safe = head.replace(UNSAFE, escapeChar);
  if (value.length <= maxChars && safe.length <= maxChars) return safe;
  const marker = `…[truncated: ${value.length} chars]`;
  let keep = maxChars - marker.length;
  // Never split a surrogate pair: half a character is not valid UTF-8.
  const last = safe.charCodeAt(keep - 1);
  if (last >= 0xd800 && last <= 0xdbff) keep--;
  return safe.slice(0, keep) + marker;
}

/** boundText for optional values: undefined and null stay null. */
export function boundOptional(value: string | null | undefined, maxChars: number): string | null {
  return value === undefined || value === null ? null : boundText(value, maxChars);
}
