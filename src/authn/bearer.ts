/**
 * The bearer token of a request (RFC 6750 §2.1): `undefined` when there is no `Authorization`
 * header with the Bearer scheme (the authenticator abstains), `null` when one is present but
 * unusable: no token, junk after it, or several `Authorization` headers (Node would keep only the
 * first, and another hop might pick a different one).
 */
export function bearerToken(rawHeaders: readonly string[]): string | null | undefined {
  let value: string | undefined;
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (name !== undefined && name.length === 13 && name.toLowerCase() === 'authorization') {
      count++;
      value = rawHeaders[i + 1];
    }
  }
  if (value === undefined) return undefined;
  const space = value.indexOf(' ');
  const scheme = space === -1 ? value : value.slice(0, space);
  if (scheme.toLowerCase() !== 'bearer') return count > 1 ? null : undefined;
  if (count > 1 || space === -1) return null;
  const token = value.slice(space + 1).replace(/^ +/, '');
  return TOKEN68.test(token) ? token : null;
}

/** RFC 6750 b64token. */
export const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
