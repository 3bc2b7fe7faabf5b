import { execFile } from 'node:child_process';

/** What one `openssl` run printed and how it ended. */
export interface OpensslRun {
  readonly code: number;
  readonly output: string;
}

/** Runs `openssl <args>` with no input, bounded by `timeoutMs`; never rejects. */
export function openssl(args: readonly string[], timeoutMs = 15_000): Promise<OpensslRun> {
  return new Promise((resolve) => {
    const child = execFile('openssl', [...args], { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, output: `${stdout}${stderr}` });
    });
    child.stdin?.end();
  });
}

/** `openssl s_client` against 127.0.0.1:`port`: one handshake, then EOF. */
export function sClient(port: number, args: readonly string[]): Promise<OpensslRun> {
  return openssl(['s_client', '-connect', `127.0.0.1:${port}`, '-brief', ...args]);
}
