import { readFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import t from 'tap';
import { z } from 'zod';
import { freePort } from '../fixtures/ports.js';
import { tlsFiles } from '../fixtures/tls.js';
import { serveInstalled, writeConfig } from './installed.js';

/**
 * An https health endpoint whose certificate an internal CA signed, as most are inside a company.
 * Node trusts only its bundled CAs: the probe fails, and it said "unable to verify the first
 * certificate" without saying what to do. NODE_EXTRA_CA_CERTS (in the unit file or the
 * container's env) is Node's own way to add a CA; the error now names it, and it works.
 */
const ready = z.object({ targets: z.array(z.object({ target: z.string(), up: z.boolean(), lastError: z.string().nullish() })) });

t.test('the installed serve probes an https service signed by a private CA once NODE_EXTRA_CA_CERTS names that CA, and says so when it does not', async (t) => {
  const { files } = await tlsFiles(t);
  const server = createServer({ cert: await readFile(files.cert), key: await readFile(files.key) }, (_request, response) => { response.end('ok'); });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  const { file } = await writeConfig(t, { targets: { http: [{ name: 'auth', url: `https://127.0.0.1:${port}/health` }] } });

  const untrusting = await serveInstalled(t, file);
  t.match(await (await fetch(`${untrusting.base}/metrics`)).text(), /^upkeep_http_up\{service="auth"\} 0$/m, 'without the CA: down');
  const [target] = ready.parse(await (await fetch(`${untrusting.base}/readyz`)).json()).targets;
  t.equal(target?.lastError, 'fetch failed: unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE); for a service signed by a private CA, start upkeep with NODE_EXTRA_CA_CERTS set to that CA\'s certificate file (signed by a public CA: the service must send its intermediate certificate too)', 'and why, with the way out');
  t.equal(await untrusting.stop(), 0);

  const trusting = await serveInstalled(t, file, { env: { NODE_EXTRA_CA_CERTS: files.ca } });
  t.match(await (await fetch(`${trusting.base}/metrics`)).text(), /^upkeep_http_up\{service="auth"\} 1$/m, 'with NODE_EXTRA_CA_CERTS: up');
  t.equal(await trusting.stop(), 0);
  t.same(trusting.logLines().filter((line) => 'notJson' in line), [], 'and nothing but JSON on its output');
});
