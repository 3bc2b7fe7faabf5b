const ABSOLUTE_FORM = /^([A-Za-z][A-Za-z0-9+.-]{0,31}:\/\/)([^/]*)(.*)$/s;

/**
 * What the audit trail may keep of a raw request target that was not parsed into a canonical path
 * (absolute-form, authority-form, a target the parser refused): the query and fragment are cut
 * (tokens and keys travel there), and so is any `user:password@` userinfo (RFC 3986 §3.2.1 calls
 * it deprecated precisely because it carries credentials), in absolute-form
 * (`GET http://u:p@host/x`) and authority-form (`CONNECT u:p@host:443`) alike. Length and unsafe
 * characters are bounded where the record is written.
 */
export function auditTarget(raw: string | undefined): string {
  if (raw === undefined) return '';
  let target = raw;
  const cut = target.search(/[?#]/);
  if (cut !== -1) target = target.slice(0, cut);
  const absolute = ABSOLUTE_FORM.exec(target);
  if (absolute !== null) {
    const [, scheme = '', authority = '', rest = ''] = absolute;
    return scheme + withoutUserinfo(authority) + rest;
  }
  if (target.startsWith('/')) return target;
  // Authority-form (CONNECT) or garbage: whatever precedes the first `/` is treated as an authority.
  const slash = target.indexOf('/');
  return slash === -1 ? withoutUserinfo(target) : withoutUserinfo(target.slice(0, slash)) + target.slice(slash);
}

function withoutUserinfo(authority: string): string {
  const at = authority.lastIndexOf('@');
  return at === -1 ? authority : authority.slice(at + 1);
}
