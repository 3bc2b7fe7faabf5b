import type { IncomingMessage } from 'node:http';
import { startEchoUpstream as startBase, type EchoUpstream as BaseEchoUpstream } from '../../src/demo/echo-upstream.js';

export type { EchoedRequest } from '../../src/demo/echo-upstream.js';

export interface EchoUpstream extends BaseEchoUpstream {
  /**
   * Resolves once every request for `url` the upstream has started is over: received whole (then
   * it is in `received`) or cut off. A test asserting that nothing complete arrived waits here
   * instead of sleeping.
   */
  settled(url: string): Promise<void>;
}

/** The demo's echo upstream, which also tracks the requests still arriving. */
export async function startEchoUpstream(port = 0, host = '127.0.0.1'): Promise<EchoUpstream> {
  const echo = await startBase(port, host);
  const open = new Map<string, Set<Promise<void>>>();
  echo.server.on('request', (req: IncomingMessage) => {
    const url = req.url ?? '';
    const pending = open.get(url) ?? new Set<Promise<void>>();
    open.set(url, pending);
    const over = new Promise<void>((resolve) => {
      req.once('end', resolve);
      req.once('close', resolve);
      req.once('error', resolve);
    });
    pending.add(over);
    void over.then(() => pending.delete(over));
  });
  return {
    ...echo,
    received: echo.received,
    async settled(url) {
      await Promise.all([...(open.get(url) ?? [])]);
    },
  };
}
