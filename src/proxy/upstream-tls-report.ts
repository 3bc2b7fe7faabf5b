import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { forgetCertificateExpiry, recordCertificateExpiry } from '../tls/certificate-expiry.js';
import type { UpstreamSpec } from './upstream-spec.js';

/** The upstreams whose certificates are not verified (`tls.insecureSkipVerify: true`), by name. */
export function insecureUpstreams(upstreams: ReadonlyMap<string, UpstreamSpec>): string[] {
  return [...upstreams.values()].filter((u) => u.tls?.insecureSkipVerify === true).map((u) => u.name).sort();
}

/**
 * What a config that goes live says about its upstreams' TLS, at start and at every reload: the
 * expiry of each CA and client certificate it configures (the series of certificates it no longer
 * has are dropped), and a warning naming each upstream whose certificate is not verified, so an
 * insecure setting is never silently carried from one config to the next.
 */
export function reportUpstreamTls(upstreams: ReadonlyMap<string, UpstreamSpec>, logger: Logger, metrics: Metrics): void {
  forgetCertificateExpiry(metrics, 'upstream-ca');
  forgetCertificateExpiry(metrics, 'upstream-client');
  for (const u of upstreams.values()) {
    const material = u.tls?.material;
    if (material === undefined) continue;
    for (const pem of material.ca ?? []) recordCertificateExpiry(metrics, 'upstream-ca', u.name, pem);
    if (material.cert !== null) recordCertificateExpiry(metrics, 'upstream-client', u.name, material.cert);
  }
  for (const name of insecureUpstreams(upstreams)) {
    logger.warn({ upstream: name }, `upstream ${name} has tls.insecureSkipVerify: true: its certificate is not verified, so anyone on the network path can impersonate it and read or change the traffic`);
  }
}
