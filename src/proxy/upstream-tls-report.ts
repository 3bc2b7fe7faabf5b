import type { Logger } from '../observability/logger.js';
import { inUse, parseCertificates, type CertificateInUse } from '../tls/certificate-expiry.js';
import type { UpstreamSpec } from './upstream-spec.js';

/** The upstreams whose certificates are not verified (`tls.insecureSkipVerify: true`), by name. */
export function insecureUpstreams(upstreams: ReadonlyMap<string, UpstreamSpec>): string[] {
  return [...upstreams.values()].filter((u) => u.tls?.insecureSkipVerify === true).map((u) => u.name).sort();
}

/** Every CA and client certificate the upstreams configure, for the expiry metric and warnings (compile checked they parse). */
export function upstreamCertificates(upstreams: ReadonlyMap<string, UpstreamSpec>): CertificateInUse[] {
  const out: CertificateInUse[] = [];
  for (const u of upstreams.values()) {
    const material = u.tls?.material;
    if (material === undefined) continue;
    for (const pem of material.ca ?? []) for (const cert of parseCertificates(pem)) out.push(inUse('upstream-ca', u.name, cert));
    if (material.cert !== null) for (const cert of parseCertificates(material.cert)) out.push(inUse('upstream-client', u.name, cert));
  }
  return out;
}

/**
 * What a config that goes live says about its upstreams' TLS, at start and at every reload: a
 * warning naming each upstream whose certificate is not verified, so an insecure setting is never
 * silently carried from one config to the next.
 */
export function reportUpstreamTls(upstreams: ReadonlyMap<string, UpstreamSpec>, logger: Logger): void {
  for (const name of insecureUpstreams(upstreams)) {
    logger.warn({ upstream: name }, `upstream ${name} has tls.insecureSkipVerify: true: its certificate is not verified, so anyone on the network path can impersonate it and read or change the traffic`);
  }
}
