// The gateway of `npm run bench` with a trail that keeps nothing, started as the CLI's `start -c`
// would start it: the same config, routes and request path, so the `*-audit-off` scenarios measure
// the price of the chained, checkpointed audit trail (and of a stream sink) by difference. A
// program embedding the gateway can pass its own trail the same way (GatewayOptions.auditTrail).
import { Gateway } from '../dist/src/server/gateway.js';

/** Takes every record and keeps none; always healthy. */
const keepsNothing = {
  healthy: true,
  state: 'ok',
  write: () => true,
  append: () => undefined,
  sinkStates: () => ({}),
  open: async () => undefined,
  flushed: async () => undefined,
  close: async () => undefined,
};

const configFile = process.argv[2];
if (configFile === undefined) {
  process.stderr.write('usage: node bench/gateway-audit-off.mjs CONFIG\n');
  process.exit(2);
}
const gateway = await Gateway.fromFile(configFile, { auditTrail: keepsNothing });
await gateway.start(); // logs `gateway listening` with the ports, as `start` does
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    gateway.stop().then(() => process.exit(0), () => process.exit(1));
  });
}
