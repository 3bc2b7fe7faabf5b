/**
 * Request headers that servers, frameworks and CDNs behind a proxy believe the proxy set: the
 * client's address, the original URL or method, a verified client certificate, or an identity
 * established by another authenticating proxy. A client that sends one directly can impersonate
 * the proxy's word (Spring's `X-Forwarded-Prefix`, Symfony's `X-Original-URL`, Rack's
 * `X-HTTP-Method-Override`, IIS's `X-ARR-ClientCert`, RFC 9440 `Client-Cert`, Grafana's
 * `X-WEBAUTH-USER`, Kong's `X-Consumer-*`, …). The gateway removes every one of them from every
 * request; a trusted proxy may pass the names listed in `headers.fromTrustedProxies`.
 * docs/security.md lists each entry and who reads it.
 *
 * Names are normalised (lower case, `_` read as `-`).
 */
export const PROXY_ASSERTED_EXACT: ReadonlyMap<string, string> = new Map([
  // The client's address, as CDNs, load balancers and frameworks spell it.
  ['true-client-ip', 'client address (Akamai, Cloudflare Enterprise)'],
  ['x-client-ip', 'client address (Express request-ip, Symfony, many libraries)'],
  ['client-ip', 'client address (PHP HTTP_CLIENT_IP)'],
  ['x-cluster-client-ip', 'client address (Rackspace, Symfony, request-ip)'],
  ['x-originating-ip', 'client address (Microsoft)'],
  ['x-original-forwarded-for', 'client address (ingress-nginx)'],
  ['x-proxyuser-ip', 'client address (Google Cloud)'],
  ['x-azure-clientip', 'client address (Azure Front Door)'],
  ['x-azure-socketip', 'client address (Azure Front Door)'],
  ['wl-proxy-client-ip', 'client address (WebLogic)'],
  ['proxy-client-ip', 'client address (WebLogic, Tomcat RemoteIpValve users)'],
  ['x-forwarded', 'client address (old proxies, request-ip)'],
  ['forwarded-for', 'client address (old proxies, request-ip)'],
  ['x-true-client-ip', 'client address (various CDNs)'],
  ['forwarded', 'client address, scheme and host (RFC 7239) — recomputed by the gateway as X-Forwarded-*'],
  ['x-real-ip', 'client address (nginx convention)'],
  ['do-connecting-ip', 'client address (DigitalOcean App Platform)'],
  ['incap-client-ip', 'client address (Imperva Incapsula)'],
  ['ali-cdn-real-ip', 'client address (Alibaba Cloud CDN)'],
  ['cdn-src-ip', 'client address (various CDNs)'],
  ['x-proxied-https', 'original scheme (Jetty ForwardedRequestCustomizer)'],
  // The original URL, host or scheme.
  ['x-original-url', 'original URL (IIS URL Rewrite, Symfony, Laminas)'],
  ['x-rewrite-url', 'original URL (IIS ISAPI_Rewrite, Symfony)'],
  ['x-original-uri', 'original URL (nginx auth_request convention)'],
  ['x-original-host', 'original host (Azure, ASP.NET)'],
  ['x-host', 'original host (various frameworks)'],
  ['x-url-scheme', 'original scheme (Werkzeug, Rack)'],
  ['x-scheme', 'original scheme (nginx convention, Rack)'],
  ['front-end-https', 'original scheme (Microsoft, Rack)'],
  ['x-arr-ssl', 'original scheme (IIS Application Request Routing)'],
  // Method overrides: only forwarded on routes that allow them, to methods the route allows.
  ['x-http-method-override', 'method override (Rack, Express method-override, Spring, ASP.NET)'],
  ['x-http-method', 'method override (OData, ASP.NET)'],
  ['x-method-override', 'method override (Google APIs, Express method-override)'],
  ['x-original-method', 'original method (nginx auth_request, Traefik forward auth)'],
  // A client certificate verified by the proxy.
  ['client-cert', 'verified client certificate (RFC 9440)'],
  ['client-cert-chain', 'verified client certificate chain (RFC 9440)'],
  ['x-arr-clientcert', 'verified client certificate (IIS, Azure App Service)'],
  ['x-client-verify', 'client certificate verification result (nginx convention)'],
  ['x-client-dn', 'client certificate subject (nginx convention)'],
  ['x-client-s-dn', 'client certificate subject (nginx $ssl_client_s_dn convention)'],
  ['x-client-i-dn', 'client certificate issuer (nginx $ssl_client_i_dn convention)'],
  ['x-client-serial', 'client certificate serial (nginx convention)'],
  ['x-client-fingerprint', 'client certificate fingerprint (nginx convention)'],
  ['x-client-san', 'client certificate subjectAltName'],
  ['x-spiffe-id', 'SPIFFE ID of a verified client certificate'],
  // Identities asserted by other authenticating proxies.
  ['x-remote-user', 'user (Apache, Kubernetes authenticating proxy)'],
  ['x-userinfo', 'user claims (Kong OIDC)'],
  ['x-id-token', 'ID token (Kong OIDC)'],
  ['x-access-token', 'access token (Kong OIDC, oauth2-proxy style)'],
  ['x-jwt-assertion', 'user assertion (WSO2, Apigee)'],
  ['x-goog-iap-jwt-assertion', 'user assertion (Google IAP)'],
  ['x-endpoint-api-userinfo', 'user claims (Google Cloud Endpoints)'],
  ['x-apigateway-api-userinfo', 'user claims (Google API Gateway)'],
  ['x-amzn-request-context', 'authorizer claims (AWS Lambda Web Adapter)'],
  ['x-apigateway-event', 'request context and authorizer claims (aws-serverless-express)'],
  ['x-apigateway-context', 'request context (aws-serverless-express)'],
  ['smuser', 'user (SiteMinder)'],
  ['smuserdn', 'user (SiteMinder)'],
  ['smsession', 'session (SiteMinder)'],
  ['sm-user', 'user (SiteMinder SM_USER)'],
  ['sm-universalid', 'user (SiteMinder)'],
  // Framework internals a client must never set.
  ['x-middleware-subrequest', 'Next.js middleware recursion marker (CVE-2025-29927: skips middleware auth)'],
  ['x-invoke-path', 'Next.js internal routing'],
  ['x-invoke-query', 'Next.js internal routing'],
  ['x-matched-path', 'Next.js internal routing'],
  ['x-now-route-matches', 'Next.js internal routing'],
  ['x-sendfile-type', 'Rack::Sendfile (CVE-2025-61780: file disclosure)'],
  ['x-accel-mapping', 'Rack::Sendfile path mapping (CVE-2025-61780)'],
]);

/** Whole families: a normalised name starting with one of these is removed. */
export const PROXY_ASSERTED_PREFIXES: readonly (readonly [string, string])[] = [
  ['x-forwarded-', 'forwarding facts (Port, Prefix, Server, Ssl, Scheme, Uri, Path, Client-Cert, User, Email, Groups, Access-Token, …) — the gateway sets For, Proto and Host itself'],
  ['x-envoy-', 'Envoy internal facts (Original-Path, External-Address, Internal, …)'],
  ['x-ssl-', 'client certificate and TLS facts (nginx, HAProxy conventions)'],
  ['ssl-client-', 'client certificate (CGI SSL_CLIENT_* variables)'],
  ['x-client-cert', 'client certificate (X-Client-Cert, X-Client-Certificate, …)'],
  ['x-amzn-mtls-', 'client certificate (AWS ALB mutual TLS)'],
  ['x-tls-client-', 'client certificate (X-TLS-Client-Cert, X-TLS-Client-Subject, …)'],
  ['x-mtls-', 'client certificate or identity (X-MTLS-Subject, …)'],
  ['x-auth-request-', 'identity (oauth2-proxy)'],
  ['x-remote-', 'identity or address (Kubernetes authenticating proxy X-Remote-Group/Extra-*, X-Remote-Addr)'],
  ['remote-', 'identity (Authelia Remote-User/Groups/Email/Name)'],
  ['x-webauth-', 'identity (Grafana auth proxy)'],
  ['x-consumer-', 'identity (Kong)'],
  ['x-credential-', 'identity (Kong)'],
  ['x-anonymous-', 'identity (Kong)'],
  ['x-authenticated-', 'identity (Kong)'],
  ['x-goog-authenticated-user-', 'identity (Google IAP)'],
  ['x-amzn-oidc-', 'identity (AWS ALB OIDC)'],
  ['x-ms-client-principal', 'identity (Azure App Service authentication)'],
  ['x-ms-token-', 'tokens (Azure App Service authentication)'],
  ['x-pomerium-', 'identity (Pomerium)'],
  ['x-vouch-', 'identity (Vouch Proxy)'],
  ['x-authentik-', 'identity (authentik)'],
  ['x-portcullis-', 'reserved for the gateway'],
  ['cf-', 'Cloudflare facts (CF-Connecting-IP, CF-Visitor, CF-Pseudo-IPv4, CF-IPCountry, CF-Access-*, …)'],
  ['fastly-', 'Fastly facts (Fastly-Client-IP, Fastly-SSL, …)'],
  ['cloudfront-', 'CloudFront facts (CloudFront-Viewer-Address, CloudFront-Forwarded-Proto, …)'],
  ['x-appengine-', 'Google App Engine facts (X-AppEngine-Remote-Addr, -User-IP, -Inbound-AppId, -Cron, …)'],
  ['fly-', 'Fly.io facts (Fly-Client-IP, …)'],
  ['x-vercel-', 'Vercel facts (X-Vercel-Forwarded-For, …)'],
  ['x-nf-', 'Netlify facts (X-Nf-Client-Connection-Ip, …)'],
  ['x-sucuri-', 'Sucuri facts (X-Sucuri-ClientIP, …)'],
  ['iv-', 'identity (IBM WebSEAL iv-user, iv-groups, iv-creds)'],
  ['tailscale-', 'identity (Tailscale serve: Tailscale-User-Login, …)'],
  ['teleport-', 'identity (Teleport: Teleport-Jwt-Assertion)'],
  ['x-middleware-', 'Next.js middleware internals'],
];

/** The prefixes by first character, so a header like `accept` is checked against none. */
const PREFIXES_BY_FIRST = new Map<string, string[]>();
for (const [prefix] of PROXY_ASSERTED_PREFIXES) {
  const first = prefix.charAt(0);
  PREFIXES_BY_FIRST.set(first, [...(PREFIXES_BY_FIRST.get(first) ?? []), prefix]);
}

/** True if a normalised header name belongs to a family the gateway never takes from a client. */
export function isProxyAsserted(normalised: string): boolean {
  if (PROXY_ASSERTED_EXACT.has(normalised)) return true;
  const prefixes = PREFIXES_BY_FIRST.get(normalised.charAt(0));
  if (prefixes !== undefined) for (const prefix of prefixes) if (normalised.startsWith(prefix)) return true;
  return false;
}

/** Method-override headers: dropped unless the route allows overrides (then checked against its methods). */
export const METHOD_OVERRIDE_HEADERS: ReadonlySet<string> = new Set(['x-http-method-override', 'x-http-method', 'x-method-override']);

/**
 * Trace context in the formats other than W3C Trace Context that tracing libraries and meshes read
 * (their default propagators): each names a trace and parent span, or carries baggage (key-value
 * pairs the backends' code reads as context). Taken from trusted proxies only, like `traceparent`:
 * a client's would choose the trace ids, or the baggage, in the systems behind the gateway.
 * Names are normalised (lower case, `_` read as `-`).
 */
export const TRACE_CONTEXT_EXACT: ReadonlyMap<string, string> = new Map([
  ['b3', 'Zipkin B3 single header (Envoy, Istio, Spring, OpenTelemetry B3 propagator)'],
  ['uber-trace-id', 'Jaeger trace context'],
  ['baggage', 'W3C Baggage (OpenTelemetry default propagator)'],
  ['correlation-context', 'W3C Correlation-Context, the draft Baggage replaced'],
  ['x-cloud-trace-context', 'Google Cloud trace context'],
  ['grpc-trace-bin', 'OpenCensus binary trace context (gRPC)'],
  ['x-amzn-trace-id', 'AWS X-Ray trace context'],
  ['sw8', 'Apache SkyWalking trace context'],
  ['sw8-correlation', 'Apache SkyWalking correlation context'],
  ['sw8-x', 'Apache SkyWalking extension context'],
  ['elastic-apm-traceparent', 'Elastic APM trace context'],
  ['x-ot-span-context', 'Lightstep / Envoy OpenTracing span context'],
]);

/** Trace context families: a normalised name starting with one of these is trace context. */
export const TRACE_CONTEXT_PREFIXES: readonly (readonly [string, string])[] = [
  ['x-b3-', 'Zipkin B3 multiple headers (X-B3-TraceId, -SpanId, -ParentSpanId, -Sampled, -Flags)'],
  ['uberctx-', 'Jaeger baggage'],
  ['ot-tracer-', 'OpenTracing trace context (ot-tracer-traceid, -spanid, -sampled)'],
  ['ot-baggage-', 'OpenTracing baggage'],
  ['x-datadog-', 'Datadog trace context (x-datadog-trace-id, -parent-id, -sampling-priority, -origin, -tags)'],
];

/** True if a normalised header name is trace context in a format other than W3C Trace Context. */
export function isTraceContext(normalised: string): boolean {
  if (TRACE_CONTEXT_EXACT.has(normalised)) return true;
  for (const [prefix] of TRACE_CONTEXT_PREFIXES) if (normalised.startsWith(prefix)) return true;
  return false;
}
