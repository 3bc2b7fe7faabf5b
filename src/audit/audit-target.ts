/** A scheme followed by slashes (either way round: some clients send `http:\\`), then the authority and the rest. */
const NOT_ORIGIN_FORM = /^([A-Za-z][A-Za-z0-9+.-]{0,31}:(?=[/\\]))?([/\\]*)([^/\\]*)(.*)$/s;

/**
 * What the audit trail may keep of a raw request target that was not parsed into a canonical path
 * (absolute-form, authority-form, a target the parser refused): the query and fragment are cut
 * (tokens and keys travel there), and so is any `user:password@` userinfo (RFC 3986 §3.2.1 calls
 * it deprecated precisely because it carries credentials), and matrix parameters after `;`, in absolute-form
 * (`GET http://u:p@host/x`) and authority-form (`CONNECT u:p@host:443`) alike. Length and unsafe
 * characters are bounded where the record is written.
 */
export function auditTarget(raw: string | undefined): string {
  if (raw === undefined) return '';
  const cut = raw.search(/[?#]/);
  // Matrix parameters carry session ids (`;jsessionid=…`): the `;` stays, to show why it was refused.
  const target = (cut === -1 ? raw : raw.slice(0, cut)).replace(/;[^/\\]*/g, ';…');
  // Origin form: a path, whatever it contains (`/users/@me` is a path, not userinfo).
  if (target.startsWith('/') && !target.startsWith('//') && !target.startsWith('/\\')) return target;
  const parts = NOT_ORIGIN_FORM.exec(target);
  if (parts === null) return '';
  const [, scheme = '', slashes = '', authority = '', rest = ''] = parts;
  const at = authority.lastIndexOf('@');
  return scheme + slashes + (at === -1 ? authority : authority.slice(at + 1)) + rest;
}
