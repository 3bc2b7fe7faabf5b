/** A Redis URL as it may be shown in metrics labels and logs: without its password or query; `redis` when it does not parse. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    // ioredis takes options from the query too, a password among them (`?password=…`): none is shown.
    u.search = '';
    return u.toString();
  } catch {
    return 'redis';
  }
}
