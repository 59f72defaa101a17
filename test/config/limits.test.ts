import t from 'tap';
import { parseConfig } from '../../src/config/load.js';

function errors(text: string): { path: string; message: string }[] {
  const result = parseConfig(text, {});
  return result.ok ? [] : result.errors;
}

t.test('every limit has a default', async (t) => {
  const result = parseConfig('{}', {});
  if (!result.ok) throw new Error('the empty config is valid');
  t.same(result.config.server, {
    host: '127.0.0.1', port: 9630, bodyLimitBytes: 1048576,
    headersTimeoutSeconds: 10, requestTimeoutSeconds: 30, idleTimeoutSeconds: 10, keepAliveTimeoutSeconds: 72, shutdownTimeoutSeconds: 10,
    maxHeaderBytes: 16384, maxAlertsPerWebhook: 1000, maxLabels: 64, maxLabelNameBytes: 256, maxLabelValueBytes: 4096,
    maxParams: 32, maxParamNameBytes: 128, maxParamValueBytes: 4096, runsPageLimit: 1000,
  });
  t.same(result.config.state, { dir: './data', retention: '90 days' });
  t.match(result.config.remediation, { timeoutSeconds: 3600, maxTimeoutSeconds: 86400, maxQueued: 1000 });
});

t.test('limits that cannot work are config errors naming their path', async (t) => {
  t.same(errors('remediation: { timeoutSeconds: 7200, maxTimeoutSeconds: 3600 }'), [
    { path: 'remediation.timeoutSeconds', message: 'must not be more than remediation.maxTimeoutSeconds' },
  ]);
  t.same(errors('server: { headersTimeoutSeconds: 60 }'), [
    { path: 'server.headersTimeoutSeconds', message: 'must not be more than server.requestTimeoutSeconds (the headers are part of the request)' },
  ]);
  t.same(errors('server: { maxAlertsPerWebhook: 0, maxLabelValueBytes: 1.5 }\nremediation: { maxQueued: -1 }').map((error) => error.path), [
    'server.maxAlertsPerWebhook', 'server.maxLabelValueBytes', 'remediation.maxQueued',
  ]);
});

t.test('no seconds value may overflow a Node timer (2^31-1 ms), wherever it is', async (t) => {
  const tooLong = 2 ** 31;
  const message = 'must be at most 2000000 (about 23 days)';
  t.same(errors(`remediation: { maxTimeoutSeconds: ${tooLong}, timeoutSeconds: ${tooLong} }`), [
    { path: 'remediation.timeoutSeconds', message },
    { path: 'remediation.maxTimeoutSeconds', message },
  ]);
  t.same(errors(`collectors: { timeoutSeconds: ${tooLong} }`), [{ path: 'collectors.timeoutSeconds', message }]);
  t.same(errors(`server: { shutdownTimeoutSeconds: ${tooLong}, requestTimeoutSeconds: ${tooLong} }`), [
    { path: 'server.requestTimeoutSeconds', message },
    { path: 'server.shutdownTimeoutSeconds', message },
  ]);
  t.same(errors('remediation: { maxTimeoutSeconds: 2000000, timeoutSeconds: 2000000 }'), [], 'the largest value is accepted');
});
