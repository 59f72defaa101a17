import type { CollectorModule } from './framework/types.js';

export const http: CollectorModule = {
  name: 'http',
  families: [
    { name: 'upkeep_http_duration_seconds', help: 'Time the health probe took to get its response.', type: 'gauge', labelNames: ['service'] },
  ],
  upFamily: { name: 'upkeep_http_up', help: 'Whether the service answered its health probe with the expected status (1) or not (0).', label: 'service' },
  build({ config }) {
    return config.targets.http.map((target) => ({
      collector: 'http',
      target: target.name,
      async collect(signal: AbortSignal) {
        const started = performance.now();
        const timeout = AbortSignal.timeout((target.timeoutSeconds ?? config.collectors.timeoutSeconds) * 1000);
        const response = await fetch(target.url, { signal: AbortSignal.any([signal, timeout]), redirect: 'manual' }).catch((err: unknown) => { throw withCause(err); });
        await response.body?.cancel();
        const healthy = target.expectStatus === undefined ? response.status >= 200 && response.status < 300 : response.status === target.expectStatus;
        const service = target.name;
        return {
          readings: [
            { family: 'upkeep_http_up', labels: { service }, value: healthy ? 1 : 0 },
            { family: 'upkeep_http_duration_seconds', labels: { service }, value: (performance.now() - started) / 1000 },
          ],
        };
      },
    }));
  },
};

// What Node's TLS calls a certificate from a CA it does not know.
const UNKNOWN_CA = new Set(['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY']);

/**
 * fetch's own words ("fetch failed") with its cause's ("self-signed certificate", "connect
 * ECONNREFUSED 127.0.0.1:8080"): the log and /readyz said only "fetch failed". A service whose
 * certificate a private CA signed is told how to trust that CA.
 */
function withCause(err: unknown): unknown {
  if (!(err instanceof Error && err.cause instanceof Error)) return err;
  const code = 'code' in err.cause ? String(err.cause.code) : '';
  const hint = UNKNOWN_CA.has(code) ? ` (${code}); for a service signed by a private CA, start upkeep with NODE_EXTRA_CA_CERTS set to that CA's certificate file (signed by a public CA: the service must send its intermediate certificate too)` : '';
  return new Error(`${err.message}: ${err.cause.message}${hint}`);
}
