import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { AdminSettings } from '../config/compile.js';
import { normaliseIp } from '../lib/ip.js';

/** Names every admin listener answers to: a page can only reach them from the machine itself. */
const LOOPBACK_NAMES: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];

const HOST = /^(\[[0-9a-f:.]{2,45}\]|[a-z0-9](?:[a-z0-9.-]{0,252}))(?::([0-9]{1,5}))?$/;

/** An address as it appears in a Host header: IPv6 in brackets; wildcard binds name nothing. */
function hostForm(address: string): string | null {
  const ip = normaliseIp(address);
  if (ip === '' || ip === '0.0.0.0' || ip === '::') return null;
  return isIP(ip) === 6 ? `[${ip.toLowerCase()}]` : ip.toLowerCase();
}

function count(req: IncomingMessage, name: string): number {
  let n = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]?.toLowerCase() === name) n++;
  return n;
}

/**
 * Whether a request may reach the admin API at all, before any token is looked at. Returns the
 * precise reason for the audit record when it may not (answered 403 `admin_origin_refused`):
 *
 * - DNS rebinding: a page on `attacker.example` whose name is made to resolve to 127.0.0.1 sends
 *   requests the browser thinks are same-origin, but with `Host: attacker.example`. Only the
 *   listener's own names are accepted — `localhost`, `127.0.0.1`, `[::1]`, the bind address, the
 *   address the connection arrived on and `admin.hosts` — each with no port or the listener's port.
 *   A missing or repeated Host is refused too.
 * - Browser pages: a request with an `Origin` header not listed in `admin.origins`, or one that
 *   the browser marks as cross-site or same-site (`Sec-Fetch-Site`) without an allowed Origin.
 */
export function adminRequestRefusal(req: IncomingMessage, settings: AdminSettings): string | null {
  const hosts = count(req, 'host');
  if (hosts !== 1) return hosts === 0 ? 'no Host header' : 'several Host headers';
  const host = (req.headers.host ?? '').toLowerCase();
  const parsed = HOST.exec(host);
  if (parsed === null) return `malformed Host ${host}`;
  const [, rawName = '', port] = parsed;
  const name = rawName.endsWith('.') ? rawName.slice(0, -1) : rawName;
  if (port !== undefined && Number(port) !== req.socket.localPort) return `Host ${host} names another port than the listener's ${String(req.socket.localPort)}`;
  const own = LOOPBACK_NAMES.includes(name) || settings.hosts.includes(name) || name === hostForm(settings.host) || name === hostForm(req.socket.localAddress ?? '');
  if (!own) return `Host ${host} is not one of the admin listener's names (DNS rebinding)`;

  const origins = count(req, 'origin');
  if (origins > 1) return 'several Origin headers';
  const origin = req.headers.origin;
  if (origin !== undefined) {
    return settings.origins.includes(origin.toLowerCase()) ? null : `Origin ${origin} is not in admin.origins (a browser page)`;
  }
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'none' && site !== 'same-origin') return `Sec-Fetch-Site: ${site} (a browser page)`;
  return null;
}
