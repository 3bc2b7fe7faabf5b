// Every command of `portcullis`, in one table: parsing, `--help`, `portcullis help <command>` and
// the usage errors all read it. Implementations load on use, so help and errors start fast.
import type { Command, Invocation, OptionSpec } from './command.js';
import type { KeysVerb } from './keys.js';
import * as AUDIT_OPTIONS from './audit-options.js';

const CONFIG: OptionSpec = { name: 'config', short: 'c', type: 'string', value: 'FILE', description: 'the config (default: $PORTCULLIS_CONFIG, else gateway.yaml)' };
const JSON_OUTPUT: OptionSpec = { name: 'json', type: 'boolean', description: 'print JSON, for scripts' };

const KEYS_NOTES = `Durations: 45s, 30m, 24h, 90d. The key store is the one the config's apiKeys section names.
Exit codes: 0 done, 1 store or config failure, 2 bad arguments, 3 unknown key, 4 key state forbids it.`;

/** Runs `keys <verb>`, loading the key commands (and the stores) only then. */
const keys = (verb: KeysVerb) => async (inv: Invocation): Promise<number> => (await import('./keys.js')).keysCommand(verb, inv);

const KEYS: readonly Command[] = [
  {
    path: ['keys', 'create'],
    summary: 'issue an API key and print it once',
    synopsis: '-c FILE --name NAME [options]',
    description: `Prints the key alone on stdout (so KEY=$(portcullis keys create …) works) and its details on
stderr; only its hash is stored.\n\n${KEYS_NOTES}`,
    options: [
      CONFIG,
      { name: 'name', type: 'string', value: 'NAME', description: 'what the key is for (required)' },
      { name: 'tenant', type: 'string', value: 'T', description: 'the tenant the key acts for' },
      { name: 'roles', type: 'string', value: 'a,b', description: 'roles, comma separated' },
      { name: 'scopes', type: 'string', value: 'x,y', description: 'scopes, comma separated' },
      { name: 'cidrs', type: 'string', value: 'NET,…', description: 'client networks the key is accepted from (10.0.0.0/8,…)' },
      { name: 'tier', type: 'string', value: 'NAME', description: 'the rate-limit tier of the key' },
      { name: 'meta', type: 'string', multiple: true, value: 'k=v', description: 'metadata (repeatable)' },
      { name: 'expires', type: 'string', value: 'DURATION', description: 'lifetime (default and maximum: apiKeys settings)' },
      { name: 'json', type: 'boolean', description: 'print the key and its details as JSON on stdout' },
    ],
    examples: [
      'portcullis keys create -c gateway.yaml --name billing-sync --tenant acme --scopes orders:read --expires 90d',
      'KEY=$(portcullis keys create -c gateway.yaml --name nightly-export --roles service)',
    ],
    run: keys('create'),
  },
  {
    path: ['keys', 'list'],
    summary: 'every key: id, prefix, status, expiry, last use (never secrets)',
    synopsis: '-c FILE [--json]',
    description: KEYS_NOTES,
    options: [CONFIG, JSON_OUTPUT],
    examples: ['portcullis keys list -c gateway.yaml', 'portcullis keys list -c gateway.yaml --json'],
    run: keys('list'),
  },
  {
    path: ['keys', 'show'],
    summary: 'one key, as JSON',
    synopsis: 'ID -c FILE',
    description: KEYS_NOTES,
    options: [CONFIG, { name: 'json', type: 'boolean', description: 'JSON, as without it (every keys command takes --json)' }],
    positionals: { names: ['ID'] },
    examples: ['portcullis keys show 7f3kq9x2m4b8c1dz -c gateway.yaml'],
    run: keys('show'),
  },
  {
    path: ['keys', 'revoke'],
    summary: 'stop a key on every gateway within a second',
    synopsis: 'ID -c FILE [--json]',
    description: KEYS_NOTES,
    options: [CONFIG, { name: 'json', type: 'boolean', description: 'print the revoked key as JSON on stdout' }],
    positionals: { names: ['ID'] },
    examples: ['portcullis keys revoke 7f3kq9x2m4b8c1dz -c gateway.yaml'],
    run: keys('revoke'),
  },
  {
    path: ['keys', 'rotate'],
    summary: 'issue a successor; the old key works until the grace period ends',
    synopsis: 'ID --grace DURATION -c FILE [--expires DURATION] [--json]',
    description: KEYS_NOTES,
    options: [
      CONFIG,
      { name: 'grace', type: 'string', value: 'DURATION', description: 'how long the old key keeps working (required; 0s ends it now)' },
      { name: 'expires', type: 'string', value: 'DURATION', description: 'lifetime of the new key' },
      { name: 'json', type: 'boolean', description: 'print the new key and its details as JSON on stdout' },
    ],
    positionals: { names: ['ID'] },
    examples: ['portcullis keys rotate 7f3kq9x2m4b8c1dz --grace 24h -c gateway.yaml'],
    run: keys('rotate'),
  },
];

const ADMIN: readonly Command[] = [
  {
    path: ['admin', 'token'],
    summary: 'print a new admin API token and its admin.tokenHash',
    synopsis: '[--json]',
    description: `Prints a new random token (32 bytes, base64url) and its SHA-256 in the form admin.tokenHash
takes. Put only the hash in gateway.yaml; keep the token in your secret store and send it as
"Authorization: Bearer <token>" to the admin API. Nothing is stored: the token is shown this once.`,
    options: [{ name: 'json', type: 'boolean', description: 'print {"token", "tokenHash"} as JSON' }],
    examples: ['portcullis admin token', 'portcullis admin token --json > admin-token.json'],
    run: async (inv) => (await import('./admin-token.js')).adminTokenCommand(inv),
  },
];

const AUDIT_READ_NOTES = `Reads a trail file, a directory of trail files (every chain: sealed files in order, then the
active one; chains merged by time) or the NATS stream. Lines that do not parse are skipped and
counted on stderr at the end. Times: ISO 8601 with Z or an offset, or a duration ago (15m, 24h, 7d).
Exit codes: 0 done, 1 the trail or the config cannot be read, 2 bad arguments.`;

/** The verbs of `portcullis audit` that read the trail; the readers load only when one runs. */
const AUDIT: readonly Command[] = [
  {
    path: ['audit', 'tail'],
    summary: 'the last records of the audit trail, filtered; --follow for new ones as they are written',
    synopsis: '[--from PATH|nats://…] [--follow] [-n N] [filters] [--json]',
    description: `Prints the last N matching records (default 20), then with --follow every new one, following file
rotation, until Ctrl+C. On a terminal each record is one human-readable line (time, status,
method, path, route, identity, decision/reason, latency), coloured unless NO_COLOR is set; every
value is escaped, so a tampered record cannot drive the terminal. Otherwise, or with --json, each
record is its stored JSON line. By default the chain's own file, start and checkpoint records are
left out (--kind all shows them).

${AUDIT_READ_NOTES}`,
    options: [
      AUDIT_OPTIONS.FROM,
      AUDIT_OPTIONS.CONFIG,
      AUDIT_OPTIONS.STREAM,
      AUDIT_OPTIONS.SUBJECT,
      { name: 'follow', short: 'f', type: 'boolean', description: 'keep printing records as they are written (and across rotation) until Ctrl+C' },
      { name: 'lines', short: 'n', type: 'string', value: 'N', description: 'how many of the last matching records to print first (default 20, at most 100000)' },
      { name: 'identity', type: 'string', value: 'X', description: 'only records of this subject or API key id' },
      { name: 'status', type: 'string', value: '4xx|401|…', description: 'only these statuses: an exact one, a class, or several comma separated (401,5xx)' },
      { name: 'route', type: 'string', value: 'R', description: 'only records of this route' },
      { name: 'decision', type: 'string', value: 'allow|deny|error|abort', description: 'only records with this decision' },
      { name: 'kind', type: 'string', value: 'KIND,…', description: 'only these kinds: request, admin, alert, gap, checkpoint, file, start, or all (default: request, admin, alert, gap)' },
      AUDIT_OPTIONS.SINCE,
      AUDIT_OPTIONS.UNTIL,
      { name: 'json', type: 'boolean', description: 'print each record as its JSON line, even on a terminal' },
      AUDIT_OPTIONS.COLOR,
    ],
    examples: [
      'portcullis audit tail -c gateway.yaml --follow --decision deny',
      'portcullis audit tail --from /var/lib/portcullis/audit -n 100 --status 4xx --identity alice',
      'portcullis audit tail --from nats://127.0.0.1:4222 --follow --kind alert',
    ],
    run: async (inv) => (await import('./audit-tail.js')).auditTailCommand(inv),
  },
  {
    path: ['audit', 'stats'],
    summary: 'totals, top identities, routes and denial codes of the audit trail over a time range',
    synopsis: '[--from PATH|nats://…] [--since TIME] [--until TIME] [--top N] [--json]',
    description: `Counts records by kind, decision and status class, and lists the top identities, routes and
denial codes. Memory stays bounded: each top list tracks at most 10000 distinct keys, exactly;
past that it approximates (space-saving) and marks the counts that may be too high.

${AUDIT_READ_NOTES}`,
    options: [
      AUDIT_OPTIONS.FROM,
      AUDIT_OPTIONS.CONFIG,
      AUDIT_OPTIONS.STREAM,
      AUDIT_OPTIONS.SUBJECT,
      AUDIT_OPTIONS.SINCE,
      AUDIT_OPTIONS.UNTIL,
      { name: 'top', type: 'string', value: 'N', description: 'rows in each top list (default 10, at most 1000)' },
      { name: 'json', type: 'boolean', description: 'print the statistics as JSON' },
      AUDIT_OPTIONS.COLOR,
    ],
    examples: ['portcullis audit stats -c gateway.yaml --since 24h', 'portcullis audit stats --from /var/lib/portcullis/audit --since 2026-11-30 --until 2026-12-01 --top 20 --json'],
    run: async (inv) => (await import('./audit-stats.js')).auditStatsCommand(inv),
  },
  {
    path: ['audit', 'watch'],
    summary: 'run the anomaly detectors over the merged trail of every gateway, printing each alert',
    synopsis: '--from nats://…|PATH [-c FILE] [--since TIME] [--json]',
    description: `Reads the records every gateway publishes to the NATS stream (or a trail directory) as they arrive
and runs the detectors of the config's audit.anomalies over all of them at once (every detector at its
defaults when the section is absent), so a credential used on two instances, or a failure spike spread
over them, is seen. Each alert is printed (a human-readable line on a terminal, its JSON otherwise) and
posted to audit.anomalies.webhook when one is configured; operational messages go to stderr. Records the
stream holds twice are looked at once. Without --since it watches from now on; --since replays from
then, the detectors' windows following the records' own times. Runs until Ctrl+C.
Exit codes: 0 stopped, 1 the source or the config cannot be read, 2 bad arguments.`,
    options: [
      { ...AUDIT_OPTIONS.FROM, description: 'the NATS stream (nats://host:4222) or a trail directory (required)' },
      { ...AUDIT_OPTIONS.CONFIG, description: 'the config whose audit.anomalies (and audit.nats stream and subject) to use (default: $PORTCULLIS_CONFIG, else gateway.yaml)' },
      AUDIT_OPTIONS.STREAM,
      AUDIT_OPTIONS.SUBJECT,
      { ...AUDIT_OPTIONS.SINCE, description: 'replay from TIME: ISO 8601 (2026-11-30T10:00Z) or a duration ago (15m, 24h)' },
      { name: 'json', type: 'boolean', description: 'print each alert as its JSON record, even on a terminal' },
      AUDIT_OPTIONS.COLOR,
    ],
    examples: ['portcullis audit watch -c gateway.yaml --from nats://127.0.0.1:4222', 'portcullis audit watch -c gateway.yaml --from nats://127.0.0.1:4222 --since 1h --json'],
    run: async (inv) => (await import('./audit-watch.js')).auditWatchCommand(inv),
  },
  {
    path: ['audit', 'verify'],
    summary: 'check the hash chains and signed checkpoints of audit trail files',
    synopsis: 'PATH… [--keys DIR] [--json]',
    description: `PATH is a trail file or a directory (its *.log files, active and sealed). Every chain found is
checked across its files: each line canonical JSON, each hash, prev link and seq, the file numbers,
and each checkpoint's count, head and Ed25519 signature. The first problem of each chain is named
with its file, line and seq: modified, deleted, inserted, reordered, missing file, spliced,
truncated tail, unparseable, not canonical, bad checkpoint, unknown key, bad signature. Public keys
are the *.pub.pem files of --keys DIR, else of the keys/ directory next to the trail.
Exit codes: 0 verified, 1 tampering or a key or signature problem, 2 bad arguments, 3 only a
truncated tail (what a crash leaves), 4 a path cannot be read.`,
    options: [
      { name: 'keys', type: 'string', value: 'DIR', description: 'the directory of audit public keys (*.pub.pem); default: keys/ next to the trail' },
      JSON_OUTPUT,
    ],
    positionals: { names: ['PATH'], variadic: true },
    examples: ['portcullis audit verify /var/lib/portcullis/audit', 'portcullis audit verify audit/audit.000000000001.log audit/audit.log --keys /etc/portcullis/audit-keys --json'],
    run: async (inv) => (await import('./audit-verify.js')).auditVerifyCommand(inv),
  },
  {
    path: ['audit', 'rotate-key'],
    summary: 'a new checkpoint signing key; old public keys are kept',
    synopsis: '-c FILE [--json]',
    description: `Writes a new Ed25519 key where the config's audit trail keeps its signing key
(audit.signingKeyFile, default <dataDir>/audit/keys/signing.pem) and its public key beside it as
<keyId>.pub.pem. Every public key signed with before stays, so older checkpoints still verify.
A running gateway signs with the key it started with until its next start.`,
    options: [CONFIG, JSON_OUTPUT],
    examples: ['portcullis audit rotate-key -c gateway.yaml'],
    run: async (inv) => (await import('./audit-keys.js')).auditRotateKeyCommand(inv),
  },
];

const POLICY_NOTES = `A test file lists cases: a request (method, target, headers, from, body, at), an identity to
assume, and the decision expected (allow or deny, and optionally status, code, route, rule); every
case runs through the config's real stages as \`explain\` runs them, contacting nothing and counting no
limit. Without --tests, the tests of gateway.yaml are gateway.tests.yaml beside it. The format and CI
usage: docs/policy-tests.md.`;

/** The verbs of `portcullis policy`. */
const POLICY: readonly Command[] = [
  {
    path: ['policy', 'test'],
    summary: 'run the policy test cases kept beside the config; exit 1 when one fails',
    synopsis: '[-c FILE] [--tests FILE…] [--coverage] [--json]',
    description: `Prints one row per case (expected and actual decision, route, deciding stage, rule), each failure
with what differs and where the case is written, and a summary; --coverage adds the routes no case
reaches, the attribute rules no case evaluates, and the rules seen only holding or only refusing.

${POLICY_NOTES}
Exit codes: 0 every case passes, 1 a case fails or the config is invalid, 2 bad arguments or a test
file that cannot be read or is not valid (each problem with file:line).`,
    options: [
      CONFIG,
      { name: 'tests', short: 't', type: 'string', multiple: true, value: 'FILE', description: 'a test file (repeatable); default: <config name>.tests.yaml beside the config' },
      { name: 'coverage', type: 'boolean', description: 'also report routes and rules no case exercises' },
      { name: 'json', type: 'boolean', description: 'print the cases, summary and coverage as JSON' },
    ],
    examples: ['portcullis policy test -c gateway.yaml', 'portcullis policy test -c gateway.yaml --tests policy/admin.tests.yaml --tests policy/tenants.tests.yaml --coverage'],
    run: async (inv) => (await import('./policy.js')).policyTestCommand(inv),
  },
  {
    path: ['policy', 'diff'],
    summary: 'which requests change decision between two configs (test cases and recorded traffic)',
    synopsis: 'OLD NEW [--tests FILE…] [--audit PATH|nats://…] [--sample N] [--json]',
    description: `Runs every test case (--tests, else the tests beside NEW, else beside OLD) and, with --audit, a
deterministic sample of distinct recorded requests through both configs, and prints each request
whose decision, status, code or route changes. The sample reads at most --max-read records (default
100000, from --since when given) and keeps --sample distinct requests (default 1000). A recorded
request is replayed with its method, path and client address, and the subject, auth method, key id
and tenant of its identity: the trail holds no query, headers, body, roles, scopes or claims, and the
output says so.

${POLICY_NOTES}
Exit codes: 0 no request changes, 1 some do, 2 bad arguments or a test file problem, 3 a config is
invalid or the trail cannot be read.`,
    options: [
      { name: 'tests', short: 't', type: 'string', multiple: true, value: 'FILE', description: 'a test file (repeatable); default: the tests beside NEW, else beside OLD' },
      { name: 'audit', type: 'string', value: 'PATH|URL', description: 'also replay recorded requests: a trail file or directory, or the NATS stream (nats://host:4222)' },
      AUDIT_OPTIONS.STREAM,
      AUDIT_OPTIONS.SUBJECT,
      { name: 'since', type: 'string', value: 'TIME', description: 'with --audit: only records at or after TIME: ISO 8601 or a duration ago (24h, 7d)' },
      { name: 'sample', type: 'string', value: 'N', description: 'with --audit: distinct recorded requests to replay (default 1000, at most 100000)' },
      { name: 'max-read', type: 'string', value: 'N', description: 'with --audit: records to read at most (default 100000, at most 10000000)' },
      { name: 'json', type: 'boolean', description: 'print the changes and counts as JSON' },
    ],
    positionals: { names: ['OLD', 'NEW'] },
    examples: [
      'portcullis policy diff gateway.yaml gateway.next.yaml',
      'portcullis policy diff gateway.yaml gateway.next.yaml --audit /var/lib/portcullis/audit --since 7d --sample 5000',
    ],
    run: async (inv) => (await import('./policy.js')).policyDiffCommand(inv),
  },
];

/** The verbs of `portcullis certs`. */
const CERTS: readonly Command[] = [
  {
    path: ['certs', 'dev'],
    summary: 'a local CA, a server certificate and client certificates, for HTTPS and mTLS in development',
    synopsis: '[--out DIR] [--name DNS…] [--client NAME[=SPIFFE-ID]…] [--days N] [--force]',
    description: `For development only: the CA's private key is written to disk beside the certificates, so
anyone who can read it can issue certificates that whatever trusts ca.crt accepts.
Writes into DIR (default ./tls, created 0700; private keys 0600): ca.crt and ca.key (a root CA);
server.crt (for localhost, 127.0.0.1, ::1 and every --name, followed by the CA) and server.key;
for each client, client-NAME.crt and .key (clientAuth, its SPIFFE ID as URI SAN; without --client,
one client "demo" with spiffe://portcullis.local/ns/demo/sa/client; --client NAME alone gets
spiffe://portcullis.local/ns/NAME/sa/client). ECDSA P-256. Existing files are never replaced
without --force. Prints the files, the listen.https and clientAuth lines for gateway.yaml and curl
commands. Exit codes: 0 written, 1 a file exists (without --force) or cannot be written, 2 bad
arguments.`,
    options: [
      { name: 'out', short: 'o', type: 'string', value: 'DIR', description: 'the directory to write into (default tls)' },
      { name: 'name', type: 'string', multiple: true, value: 'DNS', description: 'another DNS name or IP address for the server certificate (repeatable)' },
      { name: 'client', type: 'string', multiple: true, value: 'NAME[=SPIFFE-ID]', description: 'a client certificate (repeatable); NAME is 1-63 of a-z, 0-9, "-"' },
      { name: 'days', type: 'string', value: 'N', description: 'how long the certificates are valid (default 90, at most 825)' },
      { name: 'force', type: 'boolean', description: 'replace files that exist' },
    ],
    examples: [
      'portcullis certs dev',
      'portcullis certs dev --out dev-tls --name gateway.test --client payments=spiffe://example.test/ns/payments/sa/api --client billing',
    ],
    run: async (inv) => (await import('./certs-dev.js')).certsDevCommand(inv),
  },
];

/** The verbs of `portcullis import`. */
const IMPORT: readonly Command[] = [
  {
    path: ['import', 'openapi'],
    summary: 'a config with one validated route per operation of an OpenAPI 3.1 document, each refused until given a policy',
    synopsis: 'SPEC [--out FILE] [--upstream NAME] [--upstream-url URL] [--authenticator NAME] [--prefix PATH]',
    description: `Reads SPEC (YAML or JSON, OpenAPI 3.1.x, local $refs only, at most 4 MiB) and prints a complete
gateway config: the upstream, an apiKey authenticator and one route per operation, matching its path
(a {param} per template parameter) and method and validating requests against it (validate.openapi).
Every route denies (403) until you give it a policy: it authenticates and requires the role
openapi-no-policy-yet; replace each authorize block with what its operation requires. Operations the
gateway cannot take (a path template the router cannot express, such as /files/{name}.{ext}; two
operations the router cannot tell apart; a parameter style or schema validation does not support)
are skipped, each named on stderr with its file:line and reason.
Exit codes: 0 written, 1 SPEC cannot be read or used (file:line and why on stderr) or FILE exists
without --force, 2 bad arguments.`,
    options: [
      { name: 'out', short: 'o', type: 'string', value: 'FILE', description: 'write the config to FILE instead of stdout (the document is referred to relative to it)' },
      { name: 'force', type: 'boolean', description: 'replace FILE if it exists' },
      { name: 'upstream', type: 'string', value: 'NAME', description: 'the name of the upstream the routes forward to (default api)' },
      { name: 'upstream-url', type: 'string', value: 'URL', description: 'where the API runs (default http://127.0.0.1:8081)' },
      { name: 'authenticator', type: 'string', value: 'NAME', description: 'the authenticator the routes use (default callers, an apiKey authenticator)' },
      { name: 'prefix', type: 'string', value: 'PATH', description: 'match the operations under PATH (/api) and strip it before forwarding' },
    ],
    positionals: { names: ['SPEC'] },
    examples: [
      'portcullis import openapi petstore.yaml > gateway.yaml',
      'portcullis import openapi api/openapi.json --out gateway.yaml --upstream orders --upstream-url http://10.0.0.5:3000 --prefix /api',
    ],
    run: async (inv) => (await import('./import-openapi.js')).importOpenApiCommand(inv),
  },
];

/** The commands of `portcullis`, in the order help lists them. */
export const COMMANDS: readonly Command[] = [
  {
    path: ['start'],
    summary: 'run the gateway',
    synopsis: '[-c FILE] [--workers N|auto] [--wait-ready DURATION]',
    description: `Serves until SIGTERM or SIGINT, which stop accepting, drain in-flight requests, flush the audit
trail and exit; SIGHUP reloads the config (an invalid one is refused and the running one keeps
serving). A config error prints every problem with file:line and option, and exits 1.`,
    options: [
      CONFIG,
      { name: 'workers', short: 'w', type: 'string', value: 'N|auto', description: 'N worker processes sharing the port (auto: one per core); limits stay exact' },
      { name: 'wait-ready', type: 'string', value: 'DURATION', description: 'wait up to this long (30s, 2m) for /readyz to say ready (every authenticator a route uses can decide); the gateway listens meanwhile and answers 503 where it cannot decide yet; not ready in time, it stops and exits 1 naming what is not ready' },
    ],
    examples: ['portcullis start -c gateway.yaml', 'portcullis start -c /etc/portcullis/gateway.yaml --workers auto --wait-ready 30s'],
    run: async (inv) => (await import('./start.js')).startCommand(inv),
  },
  {
    path: ['check'],
    summary: 'validate a config; every error with file:line and option',
    synopsis: '[-c FILE]',
    description: 'Opens no socket and no store. Exit codes: 0 valid (prints the config version), 1 invalid.',
    options: [CONFIG],
    examples: ['portcullis check -c gateway.yaml'],
    run: async (inv) => (await import('./start.js')).checkCommand(inv),
  },
  {
    path: ['explain'],
    summary: 'how the gateway would handle one request, stage by stage',
    synopsis: '[-c FILE] METHOD TARGET [options]',
    description: `Runs one request through the config's request path in process and prints the normalised target,
the route that matched (and why the others did not), each stage's decision in order, the final
status and problem code, and exactly the path and headers the upstream would receive. Nothing is
contacted and no store is used: limits show what they would count.`,
    options: [
      CONFIG,
      { name: 'header', short: 'H', type: 'string', multiple: true, value: "'N: V'", description: 'a request header (repeatable); Host defaults to localhost' },
      { name: 'identity', type: 'string', value: 'JSON', description: 'assume this caller instead of authenticating: {"sub":"alice","roles":["admin"],"scopes":["orders:read"],"tenant":"acme","claims":{"level":3}} (claims: what attribute rules read as claims)' },
      { name: 'from', type: 'string', value: 'ADDRESS', description: 'the client address the request comes from (default 192.0.2.10)' },
      { name: 'at', type: 'string', value: 'TIME', description: 'judge the request at this time, an ISO 8601 date and time with its offset like 2026-06-03T09:30:00+02:00 (default now): what attribute rules read as request.time' },
      { name: 'body', type: 'string', value: 'TEXT', description: 'the request body, read and checked as a served request\'s (request validation); Content-Length is set to its length unless given' },
      { name: 'json', type: 'boolean', description: 'print the explanation as JSON' },
    ],
    positionals: { names: ['METHOD', 'TARGET'] },
    examples: [
      'portcullis explain -c gateway.yaml GET /api/acme/orders/1 --identity \'{"sub":"alice","scopes":["orders:read"],"tenant":"acme"}\'',
      "portcullis explain -c gateway.yaml GET /api/acme/orders/1 -H 'Authorization: Bearer eyJ…' --json",
    ],
    run: async (inv) => (await import('./explain.js')).explainCommand(inv),
  },
  {
    path: ['policy'],
    summary: 'policy tests: test (cases beside the config, coverage), diff (two configs)',
    synopsis: '<command> [options]',
    options: [],
    examples: ['portcullis policy test -c gateway.yaml --coverage', 'portcullis policy diff gateway.yaml gateway.next.yaml'],
    verbs: POLICY,
  },
  {
    path: ['keys'],
    summary: 'manage API keys: create, list, show, revoke, rotate',
    synopsis: '<command> [options]',
    description: KEYS_NOTES,
    options: [],
    examples: ['portcullis keys create -c gateway.yaml --name billing-sync --scopes orders:read', 'portcullis keys list -c gateway.yaml'],
    verbs: KEYS,
  },
  {
    path: ['audit'],
    summary: 'the audit trail: verify, tail, stats, watch, rotate-key',
    synopsis: '<command> [options]',
    options: [],
    examples: ['portcullis audit verify /var/lib/portcullis/audit', 'portcullis audit tail -c gateway.yaml --follow', 'portcullis audit stats -c gateway.yaml --since 24h', 'portcullis audit watch -c gateway.yaml --from nats://127.0.0.1:4222'],
    verbs: AUDIT,
  },
  {
    path: ['admin'],
    summary: 'admin API credentials',
    synopsis: '<command> [options]',
    options: [],
    examples: ['portcullis admin token'],
    verbs: ADMIN,
  },
  {
    path: ['certs'],
    summary: 'certificates for development: certs dev',
    synopsis: '<command> [options]',
    options: [],
    examples: ['portcullis certs dev --out tls'],
    verbs: CERTS,
  },
  {
    path: ['import'],
    summary: 'routes from an API description: import openapi',
    synopsis: '<command> [options]',
    options: [],
    examples: ['portcullis import openapi petstore.yaml --out gateway.yaml'],
    verbs: IMPORT,
  },
  {
    path: ['demo'],
    summary: 'the quickstart: the gateway, an echo upstream, a token issuer and an authorization server, with curl lines to paste',
    synopsis: '[--port N] [--https-port N] [--admin-port N] [--host ADDRESS]',
    description: `Runs examples/quickstart/gateway.yaml with a local echo upstream, token issuer and OAuth 2.0
authorization server (opaque tokens, introspection) on free loopback ports, creates API keys and
tokens, and prints ready-to-paste curl lines. It serves HTTPS too, with a
development CA and certificates it makes for the run (in its temporary directory, removed when it
stops). Ctrl+C stops it.`,
    options: [
      { name: 'port', type: 'string', value: 'N', description: 'the public port (default $PORT, else 8080)' },
      { name: 'https-port', type: 'string', value: 'N', description: 'the HTTPS port, on the same address, with certificates the demo makes for this run (default $HTTPS_PORT, else 8443)' },
      { name: 'admin-port', type: 'string', value: 'N', description: 'the admin API and metrics port (default $ADMIN_PORT, else 9901)' },
      { name: 'host', type: 'string', value: 'ADDRESS', description: 'the address the public port binds (default 127.0.0.1; 0.0.0.0 exposes it to the network)' },
    ],
    examples: ['portcullis demo', 'portcullis demo --port 8081 --https-port 8444 --admin-port 9902'],
    // The demo parses its own options; this table declares them for help and rejects unknown ones.
    run: async (inv) => { await (await import('../demo/demo.js')).runDemo([...inv.args]); return -1; },
  },
  {
    path: ['schema'],
    summary: 'print the JSON Schema of gateway.yaml',
    synopsis: '',
    description: 'The schema editors use to check and complete gateway.yaml (published as schema/gateway.schema.json).',
    options: [],
    examples: ['portcullis schema > gateway.schema.json'],
    run: async () => {
      const { jsonSchema } = await import('../config/schema.js');
      process.stdout.write(JSON.stringify(jsonSchema(), null, 2) + '\n');
      return 0;
    },
  },
  {
    path: ['help'],
    summary: 'the help of portcullis, or of one command',
    synopsis: '[COMMAND [VERB]]',
    options: [],
    positionals: { names: ['COMMAND', 'VERB'], min: 0 },
    examples: ['portcullis help start', 'portcullis help keys rotate'],
    // main answers `help` itself: it needs the whole table.
  },
];

/** The root of the table: `portcullis` itself. */
export const ROOT: Command = {
  path: [],
  summary: 'a security gateway for HTTP APIs',
  synopsis: '<command> [options]',
  description: 'Signals: SIGHUP reloads the config; SIGTERM/SIGINT drain in-flight requests, then exit.',
  options: [{ name: 'version', short: 'V', type: 'boolean', description: 'print the version' }],
  examples: ['portcullis check -c gateway.yaml', 'portcullis start -c gateway.yaml', 'portcullis demo'],
  verbs: COMMANDS,
};

/** Every command below `root`, groups and their verbs alike: what the help tests walk. */
export function allCommands(root: Command = ROOT): Command[] {
  return (root.verbs ?? []).flatMap((c) => [c, ...allCommands(c)]);
}
