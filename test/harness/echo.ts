export { startEchoUpstream, type EchoUpstream, type EchoedRequest } from '../../src/demo/echo-upstream.js';
