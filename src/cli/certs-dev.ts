// `portcullis certs dev`: a local CA, a server certificate for this machine and client
// certificates with SPIFFE IDs, for trying HTTPS and mTLS in development.
import { existsSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { fsFailure, shownPath } from '../lib/fs-failure.js';
import { DEFAULT_CLIENT, DEV_DAYS, clientNameProblem, defaultSpiffeId, devFileNames, existingDevFiles, issueDevCertificates, serverNameProblem, spiffeIdProblem, writeDevFiles, type DevClient, type DevCertificateRequest, type DevFile } from '../tls/dev-certificates.js';
import { UsageError, shown, type Invocation } from './command.js';

/** Where the files go without --out. */
export const DEFAULT_OUT = 'tls';

/** The request the options describe; a usage error for anything malformed, duplicated or ambiguous. */
export function devRequest(values: Invocation['values']): DevCertificateRequest {
  const names: string[] = [];
  for (const name of (values.name as string[] | undefined) ?? []) {
    const problem = serverNameProblem(name);
    if (problem !== null) throw new UsageError(`--name "${shown(name)}": ${problem}`);
    if (!names.includes(name)) names.push(name);
  }
  const clients: DevClient[] = [];
  for (const given of (values.client as string[] | undefined) ?? [DEFAULT_CLIENT]) {
    const eq = given.indexOf('=');
    const name = eq < 0 ? given : given.slice(0, eq);
    const spiffeId = eq < 0 ? defaultSpiffeId(name) : given.slice(eq + 1);
    const nameProblem = clientNameProblem(name);
    if (nameProblem !== null) throw new UsageError(`--client "${shown(given)}": ${nameProblem}`);
    const idProblem = spiffeIdProblem(spiffeId);
    if (idProblem !== null) throw new UsageError(`--client "${shown(given)}": ${idProblem}`);
    if (clients.some((c) => c.name === name)) throw new UsageError(`--client ${name} given twice; each client needs its own name (its files are client-${name}.crt and .key)`);
    clients.push({ name, spiffeId });
  }
  const daysText = values.days as string | undefined;
  let days: number = DEV_DAYS.default;
  if (daysText !== undefined) {
    days = /^[1-9][0-9]{0,3}$/.test(daysText) ? Number(daysText) : NaN;
    if (!(days >= 1 && days <= DEV_DAYS.max)) throw new UsageError(`--days: a number of days from 1 to ${DEV_DAYS.max} (got "${shown(daysText)}")`);
  }
  return { names, clients, days };
}

/** A path as the user would type it: relative to the working directory when under it. */
function display(dir: string, name: string): string {
  const path = join(dir, name);
  if (isAbsolute(dir)) {
    const rel = relative(process.cwd(), path);
    if (rel !== '' && !rel.startsWith('..') && !isAbsolute(rel)) return rel;
  }
  return path;
}

/**
 * Makes and writes the set into --out (default ./tls); returns the exit code: 0 written, 1 when a
 * file exists (without --force) or cannot be written. Usage errors propagate.
 */
export async function certsDevCommand({ values }: Invocation): Promise<number> {
  const request = devRequest(values);
  const dir = (values.out as string | undefined) ?? DEFAULT_OUT;
  const force = values.force === true;
  const names = devFileNames(request);
  try {
    const existing = force ? [] : existingDevFiles(dir, names);
    if (existing.length > 0) {
      const more = existing.length > 1 ? ` (and ${existing.length - 1} more of the files it would write)` : '';
      process.stderr.write(`portcullis certs dev: ${shownPath(display(dir, existing[0] ?? ''))} exists${more}; nothing was written. Give --force to replace them, or --out another directory\n`);
      return 1;
    }
  } catch (err) {
    process.stderr.write(`portcullis certs dev: cannot look into ${shownPath(dir)} ${fsFailure(err)}\n`);
    return 1;
  }
  const files = await issueDevCertificates(request);
  const created = !existsSync(dir);
  try {
    writeDevFiles(dir, files, force);
  } catch (err) {
    const path = (err as NodeJS.ErrnoException).path ?? dir;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'EEXIST' ? 'exists (made meanwhile by something else); give --force to replace it' : fsFailure(err);
    process.stderr.write(`portcullis certs dev: cannot write ${shownPath(path)} ${why}\n`);
    return 1;
  }
  process.stdout.write(summary(dir, created, files, request));
  return 0;
}

const PLAIN = /^[A-Za-z0-9/._+@~-]+$/;
/** A path as a shell word. */
const sh = (path: string): string => (PLAIN.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`);
/** A path as a YAML scalar. */
const yaml = (path: string): string => (PLAIN.test(path) ? path : JSON.stringify(path));

function summary(dir: string, created: boolean, files: readonly DevFile[], request: DevCertificateRequest): string {
  const at = (name: string): string => display(dir, name);
  const width = Math.max(...files.map((f) => at(f.name).length)) + 2;
  const client = request.clients[0];
  const cacert = `curl --cacert ${sh(at('ca.crt'))}`;
  return [
    `Wrote development certificates, valid for ${request.days} days, into ${shownPath(dir)} (${created ? 'created 0700' : 'which existed'}; keys 0600):`,
    ...files.map((f) => `  ${at(f.name).padEnd(width)}${f.what}`),
    '',
    'For development only: the CA key is on disk beside the certificates, and whoever reads it can',
    'issue certificates that anything trusting ca.crt accepts. Never add this CA to a browser or',
    'system trust store you use for anything else; production certificates come from your CA or an',
    'ACME client (docs/tls.md).',
    '',
    'In gateway.yaml (paths are relative to the config file: these assume it is in the current directory):',
    '  listen:',
    '    https:',
    '      port: 8443',
    `      cert: ${yaml(at('server.crt'))}`,
    `      key: ${yaml(at('server.key'))}`,
    '      clientAuth:',
    '        mode: request',
    `        ca: ${yaml(at('ca.crt'))}`,
    ...(client === undefined ? [] : [
      '  authenticators:',
      '    services:',
      '      type: mtls',
      '      subjectFrom: spiffe',
      '      identities:',
      `        - match: { spiffe: "${client.spiffeId}" }`,
      '          roles: [service]',
    ]),
    '',
    'Then, with the gateway running:',
    `  ${cacert} https://localhost:8443/`,
    ...(client === undefined ? [] : [`  ${cacert} --cert ${sh(at(`client-${client.name}.crt`))} --key ${sh(at(`client-${client.name}.key`))} https://localhost:8443/`]),
  ].join('\n') + '\n';
}
