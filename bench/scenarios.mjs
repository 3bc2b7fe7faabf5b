// What `npm run bench` measures. This is the file to extend: add gateway routes in
// `gatewayConfig` and a scenario per route in `scenarios`, with the baseline its ratios are
// computed against (usually `gateway-public` for a gateway feature, so JWT, API keys or rate
// limits are priced against the plain public route measured in the same run).
//
// A scenario:
//   name        unique id, shown in the table and the JSON
//   target      which server the load goes to: 'upstream' | 'bare-proxy' (pool.request + pipeline)
//               | 'bare-proxy-stream' (pool.stream) | 'gateway'
//   path        request path (with query, if any)
//   connections concurrent keep-alive connections
//   headers     extra request headers: an object, or (ctx) => object when it needs set-up results
//   baseline    name of the scenario its ratios are computed against (itself for a baseline)
//   aims        optional targets checked and reported:
//                 throughputRatio: { min, goal }   requests/s ÷ baseline's
//                 addedP50Ms:      { max }         p50 − baseline's p50, in milliseconds
//   alsoCompare optional names of more scenarios to print (and record) ratios against
//   note        one line for the report

/** Default settings; each can be overridden by the BENCH_* environment variable in brackets. */
export const defaults = {
  warmupSec: 5, // BENCH_WARMUP: before each scenario in round 1 (JIT, connections)
  rewarmSec: 2, // before each scenario in later rounds (re-opens connections)
  durationSec: 10, // BENCH_DURATION: measured seconds per scenario and round
  connections: 50, // BENCH_CONNECTIONS
  // BENCH_ROUNDS: each round runs every scenario once, in order, so slow drift on the machine hits
  // all of them alike; the median over rounds is reported. 1 is a quick look, 3 the default.
  rounds: 3,
};

/**
 * The gateway's config (serialised to YAML by run.mjs). `ctx.upstreamOrigin` is the bench
 * upstream, `ctx.dataDir` a scratch directory for the audit trail, `ctx.workDir` a scratch
 * directory for any files a scenario needs (keys, key files).
 */
export function gatewayConfig(ctx) {
  return {
    listen: { http: { host: '127.0.0.1', port: 0 } },
    admin: { host: '127.0.0.1', port: 0 },
    dataDir: ctx.dataDir,
    // info: the "gateway listening" line (with the bound ports) is logged at info level.
    log: { level: 'info' },
    shutdown: { drainTimeoutMs: 2000 },
    upstreams: { bench: { targets: [ctx.upstreamOrigin] } },
    routes: [
      { name: 'public', match: { methods: ['GET'], path: '/bench/**' }, upstream: 'bench', public: true },
    ],
  };
}

/** The scenarios, run in this order in every round. */
export function scenarios({ connections }) {
  const path = '/bench/hello';
  return [
    { name: 'upstream-direct', target: 'upstream', path, connections, baseline: 'bare-proxy',
      note: 'no proxy; the upstream shares core 0 with the load generator' },
    { name: 'bare-proxy', target: 'bare-proxy', path, connections, baseline: 'bare-proxy',
      note: 'node:http + one undici Pool, the floor for any Node proxy' },
    { name: 'bare-proxy-stream', target: 'bare-proxy-stream', path, connections, baseline: 'bare-proxy',
      note: 'node:http + undici pool.stream, as the gateway forwards: the stricter floor' },
    { name: 'gateway-public', target: 'gateway', path, connections, baseline: 'bare-proxy',
      aims: { throughputRatio: { min: 0.80, goal: 0.90 } }, alsoCompare: ['bare-proxy-stream'],
      note: 'public route: routing, header hygiene, audit record, metrics' },

    { name: 'upstream-direct-c1', target: 'upstream', path, connections: 1, baseline: 'bare-proxy-c1',
      note: 'one connection: latency without queueing' },
    { name: 'bare-proxy-c1', target: 'bare-proxy', path, connections: 1, baseline: 'bare-proxy-c1' },
    { name: 'gateway-public-c1', target: 'gateway', path, connections: 1, baseline: 'bare-proxy-c1',
      aims: { addedP50Ms: { max: 0.25 } }, alsoCompare: ['bare-proxy-stream-c1'] },
    { name: 'bare-proxy-stream-c1', target: 'bare-proxy-stream', path, connections: 1, baseline: 'bare-proxy-c1' },
  ];
}
