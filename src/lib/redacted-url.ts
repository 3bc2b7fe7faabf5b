/** A Redis URL as it may be shown in metrics labels and logs: the password replaced by `***`; `redis` when it does not parse. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'redis';
  }
}
