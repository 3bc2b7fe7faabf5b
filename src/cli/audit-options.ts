// The options `audit tail` and `audit stats` share, as data for the command table: kept apart from
// their implementations so that help and usage errors load nothing else.
import type { OptionSpec } from './command.js';

export const FROM: OptionSpec = { name: 'from', type: 'string', value: 'PATH|URL', description: 'a trail file or directory, or the NATS stream (nats://host:4222); default: the trail of the config' };
export const CONFIG: OptionSpec = { name: 'config', short: 'c', type: 'string', value: 'FILE', description: 'the config whose trail to read when --from is not given (default: $PORTCULLIS_CONFIG, else gateway.yaml)' };
export const SINCE: OptionSpec = { name: 'since', type: 'string', value: 'TIME', description: 'only records at or after TIME: ISO 8601 (2026-11-30T10:00Z) or a duration ago (15m, 24h, 7d)' };
export const UNTIL: OptionSpec = { name: 'until', type: 'string', value: 'TIME', description: 'only records at or before TIME (as --since)' };
export const COLOR: OptionSpec = { name: 'color', type: 'string', value: 'auto|always|never', description: 'colours: auto (on a terminal, unless NO_COLOR is set), always (human-readable with colours even when not a terminal), never' };
export const STREAM: OptionSpec = { name: 'stream', type: 'string', value: 'NAME', description: 'with a nats:// --from: the JetStream stream (default: audit.nats.stream of the config, else PORTCULLIS_AUDIT)' };
export const SUBJECT: OptionSpec = { name: 'subject', type: 'string', value: 'PREFIX', description: 'with a nats:// --from: the subject prefix the gateways publish under (default: audit.nats.subject of the config, else portcullis.audit)' };
