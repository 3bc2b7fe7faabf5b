// Rotation is not an outage: while the file trail seals its active file and opens the next, the
// gateway keeps serving (the trail stays healthy), and every record lands in the chain.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { verifyTrail } from '../src/audit/verify.js';
import { startEchoUpstream } from './harness/echo.js';
import { startGateway } from './harness/gateway.js';

describe('audit rotation under load', () => {
  it('answers every request while files are sealed, and the chain verifies across them', async (t) => {
    const echo = await startEchoUpstream();
    const gw = await startGateway({
      audit: { rotate: { maxBytes: 65536 } },
      upstreams: { echo: { targets: [echo.url] } },
      routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true }],
    });
    t.after(async () => { await gw.close(); await echo.close(); });
    const statuses = new Map<number, number>();
    let sent = 0;
    // Records of about 1 KiB (a long path): a seal every 60 or so, several hundred in all.
    const path = `/open/${'p'.repeat(600)}`;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (sent < 1600) {
        sent++;
        const res = await fetch(`${gw.url}${path}`);
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    }));
    assert.deepEqual([...statuses.keys()], [200], `every request answered 200: ${JSON.stringify([...statuses])}`);
    await gw.auditBarrier();
    const report = await verifyTrail([join(gw.dir, 'data', 'audit')]);
    assert.deepEqual(report.chains.flatMap((c) => c.problems), []);
    assert.ok((report.chains[0]?.files.length ?? 0) >= 5, `rotated into ${report.chains[0]?.files.length} files`);
  });
});
