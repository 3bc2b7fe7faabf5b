import { OperatorError } from '../lib/operator-error.js';

/** The listener a bind failure concerns. */
export interface ListenTarget {
  /** `http`, `admin`. */
  readonly name: string;
  /** Where its address is configured: `listen.http`, `admin`. */
  readonly option: string;
  readonly port: number;
  readonly host: string;
}

/** A host as configured, printable on one line whatever it holds. */
function shown(host: string): string {
  return /^[A-Za-z0-9.:%_-]{1,253}$/.test(host) ? host : JSON.stringify(host.slice(0, 256));
}

/** Resolver failures: the configured host is a name that gave no address. */
const UNRESOLVED = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'EAI_NONAME']);

/** Which of the listener's two settings would have to change. */
export type ListenSetting = 'port' | 'host';

/** The setting at fault for an errno: the address for those about the address, else the port. */
function settingAtFault(code: string): ListenSetting {
  return code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT' || UNRESOLVED.has(code) ? 'host' : 'port';
}

/** What went wrong and what would be right, for one errno of listen(2) or of the name lookup before it. */
function explain(code: string, t: ListenTarget, err: Error): string {
  const port = `${t.option}.port ${t.port}`;
  const host = `${t.option}.host ${shown(t.host)}`;
  if (code === 'EADDRINUSE') return `${port} is in use (EADDRINUSE): another process listens there; pick another port or stop it`;
  if (code === 'EACCES' && t.port > 0 && t.port < 1024) {
    return `${port} is a privileged port (EACCES): ports below 1024 need root or CAP_NET_BIND_SERVICE; pick a port from 1024 up`;
  }
  if (code === 'EACCES' || code === 'EPERM') return `${port} on ${shown(t.host)} is not allowed (${code}): a security policy refuses this bind; pick another port or address`;
  if (code === 'EADDRNOTAVAIL') {
    return `${host} is not an address of this machine (EADDRNOTAVAIL): use one of its addresses, 127.0.0.1 for this machine only, or 0.0.0.0 for every interface`;
  }
  if (UNRESOLVED.has(code)) return `${host} does not resolve to an address (${code}): use an IP address (127.0.0.1, 0.0.0.0, ::) or a name this machine resolves`;
  if (code === 'EAFNOSUPPORT') return `${host} is of an address family this machine does not support (EAFNOSUPPORT): use 0.0.0.0 or 127.0.0.1 where IPv6 is off`;
  return `${t.option} cannot listen on ${shown(t.host)} port ${t.port} (${code}): ${err.message.replace(/\s+/g, ' ').slice(0, 300)}`;
}

/**
 * A listener that could not bind. Its message is one line naming the option (`listen.http.port`,
 * `admin.host`, …) and what would be right; `listener` and `code` let a caller with its own ways
 * of setting the port (the demo's flags and variables) give its own advice.
 */
export class ListenError extends OperatorError {
  /** The setting to change: `port` or `host` of `option`. */
  readonly setting: ListenSetting;

  private constructor(message: string, readonly listener: string, readonly option: string, readonly code: string, readonly port: number, options: { cause: unknown }) {
    super(message, options);
    this.setting = settingAtFault(code);
  }

  /** The failure of binding `target`, from the error node:net emitted. */
  static from(err: NodeJS.ErrnoException, target: ListenTarget): ListenError {
    const code = typeof err.code === 'string' && /^[A-Z_0-9]{1,32}$/.test(err.code) ? err.code : 'unknown error';
    return new ListenError(explain(code, target, err), target.name, target.option, code, target.port, { cause: err });
  }
}
