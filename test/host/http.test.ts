import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Socket } from 'node:net';
import t from 'tap';
import { freePort } from '../fixtures/ports.js';
import { tlsFiles } from '../fixtures/tls.js';
import { appFromYaml, sample } from './app.js';

/** A TCP server that accepts connections and never answers: the worst kind of sick service. */
async function blackHole(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => { sockets.add(socket); });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    close: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

async function statusServer(status: number): Promise<{ port: number; close(): Promise<void> }> {
  const server = createHttpServer((_req, res) => { res.statusCode = status; res.end('{}'); });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

t.test('a target that accepts and never answers costs only its own series', async (t) => {
  const hole = await blackHole();
  t.teardown(() => hole.close());
  const ok = await statusServer(200);
  t.teardown(() => ok.close());
  const timeoutSeconds = 1;
  const app = await appFromYaml([
    `collectors: { timeoutSeconds: ${timeoutSeconds} }`,
    'targets:',
    '  disks: [{ path: / }]',
    '  http:',
    `    - { name: stuck, url: "http://127.0.0.1:${hole.port}/health" }`,
    `    - { name: auth-service, url: "http://127.0.0.1:${ok.port}/health" }`,
  ].join('\n'));
  t.teardown(() => app.fastify.close());
  const address = await app.fastify.listen({ host: '127.0.0.1', port: 0 });
  // The contract is an answer within timeout + 1 s; the client gives up after exactly that.
  const response = await fetch(`${address}/metrics`, { signal: AbortSignal.timeout((timeoutSeconds + 1) * 1000) });
  t.equal(response.status, 200);
  const body = await response.text();
  t.equal(sample(body, 'upkeep_http_up{service="stuck"}'), 0);
  t.equal(sample(body, 'upkeep_collector_up{collector="http",target="stuck"}'), 0);
  t.equal(sample(body, 'upkeep_http_up{service="auth-service"}'), 1);
  t.equal(sample(body, 'upkeep_collector_up{collector="http",target="auth-service"}'), 1);
  t.ok((sample(body, 'upkeep_http_duration_seconds{service="auth-service"}') ?? -1) >= 0);
  t.equal(sample(body, 'upkeep_collector_up{collector="disks",target="/"}'), 1, 'other collectors are unaffected');
  t.ok(sample(body, 'upkeep_disk_used_ratio{path="/"}') !== undefined);
});

t.test('an unhealthy answer is a working probe of a down service', async (t) => {
  const sick = await statusServer(503);
  t.teardown(() => sick.close());
  const teapot = await statusServer(418);
  t.teardown(() => teapot.close());
  const app = await appFromYaml([
    'targets:',
    '  http:',
    `    - { name: api, url: "http://127.0.0.1:${sick.port}/health" }`,
    `    - { name: odd, url: "http://127.0.0.1:${teapot.port}/", expectStatus: 418, timeoutSeconds: 2 }`,
  ].join('\n'));
  t.teardown(() => app.fastify.close());
  const body = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  t.equal(sample(body, 'upkeep_http_up{service="api"}'), 0);
  t.equal(sample(body, 'upkeep_collector_up{collector="http",target="api"}'), 1);
  t.equal(sample(body, 'upkeep_http_up{service="odd"}'), 1, 'expectStatus overrides 2xx');
});

t.test('a refused connection is a failed probe', async (t) => {
  const port = await freePort();
  const app = await appFromYaml(`targets:\n  http:\n    - { name: gone, url: "http://127.0.0.1:${port}/" }\n`);
  t.teardown(() => app.fastify.close());
  const body = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  t.equal(sample(body, 'upkeep_http_up{service="gone"}'), 0);
  t.equal(sample(body, 'upkeep_collector_up{collector="http",target="gone"}'), 0);
  const ready = (await app.fastify.inject({ method: 'GET', url: '/readyz' })).json();
  t.match(ready, { status: 'ready', targets: [{ collector: 'http', target: 'gone', up: false, lastError: `fetch failed: connect ECONNREFUSED 127.0.0.1:${port}` }] }, 'with fetch\'s cause, not only "fetch failed"');
});

t.test('an https service signed by a CA Node does not know: the probe fails, and its error names NODE_EXTRA_CA_CERTS', async (t) => {
  const { files } = await tlsFiles(t);
  const server = createHttpsServer({ cert: await readFile(files.cert), key: await readFile(files.key) }, (_req, res) => { res.end('ok'); });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const app = await appFromYaml(`targets:\n  http:\n    - { name: internal, url: "https://127.0.0.1:${port}/health" }\n`);
  t.teardown(() => app.fastify.close());
  const body = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  t.equal(sample(body, 'upkeep_http_up{service="internal"}'), 0);
  const ready = (await app.fastify.inject({ method: 'GET', url: '/readyz' })).json();
  t.match(ready, { targets: [{ target: 'internal', up: false, lastError: 'fetch failed: unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE); for a service signed by a private CA, start upkeep with NODE_EXTRA_CA_CERTS set to that CA\'s certificate file (signed by a public CA: the service must send its intermediate certificate too)' }] });
});
