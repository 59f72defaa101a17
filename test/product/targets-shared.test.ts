import { createServer } from 'node:http';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { startUntilReady } from '../../src/demo/servers/process.js';
import { freePort, waitFor } from '../fixtures/ports.js';
import { startPostgres } from '../fixtures/postgres.js';
import { tempDir } from '../http/helpers.js';
import { serveInstalled, writeConfig, type Served } from './installed.js';

const SCRAPE_SECONDS = 1;
const SERVICES = Array.from({ length: 30 }, (_unused, index) => `svc-${String(index + 1).padStart(2, '0')}`);
// Shorter than the defaults (2 s, 10 s), so the handover takes seconds; the lease stays several
// heartbeats and scrapes long, so the handover's gap is still told from a scrape's.
const HEARTBEAT_SECONDS = 1;
const MEMBER_LEASE_SECONDS = 5;
// How long a dead replica's targets may go uncollected: its heartbeat ages past the lease, a peer
// notices at its next heartbeat, and Prometheus's next scrape of the peer (one scrape on each side);
// a ceiling with a heartbeat and a scrape to spare for a loaded machine, not a measurement.
const LONGEST_GAP_SECONDS = MEMBER_LEASE_SECONDS + 2 * HEARTBEAT_SECONDS + 3 * SCRAPE_SECONDS;

const readyz = z.object({ targets: z.array(z.object({ collector: z.string(), target: z.string() })) });
const matrix = z.object({ status: z.literal('success'), data: z.object({ result: z.array(z.object({ metric: z.record(z.string(), z.string()), values: z.array(z.tuple([z.number(), z.string()])) })) }) });

async function owned(replica: Served): Promise<string[]> {
  const reply = readyz.parse(await (await fetch(`${replica.base}/readyz`)).json());
  return reply.targets.filter((target) => target.collector === 'http').map((target) => target.target).sort();
}

/**
 * Waits until the replicas' shares cover every service, each once, and returns them. If they never
 * do, each replica's membership lines (joins, changes of the live list, failed heartbeats) go into
 * the error: they say which replica saw whom.
 */
async function sharesCovering(replicas: readonly Served[]): Promise<string[][]> {
  try {
    return await waitFor('the replicas to share out every target', async () => {
      const shares = await Promise.all(replicas.map((replica) => owned(replica)));
      if (shares.flat().length !== SERVICES.length || new Set(shares.flat()).size !== SERVICES.length) throw new Error(`shares ${shares.map((share) => share.length).join(', ')}`);
      return shares;
    }, 60_000, 200);
  } catch (err) {
    const membership = replicas.map((replica, index) => `replica ${index + 1}:\n${replica.output().split('\n').filter((line) => /replicas|heartbeat/.test(line)).join('\n')}`);
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${membership.join('\n')}`);
  }
}

t.test('thirty targets over three installed replicas: each collected by one, a kill -9 hands its targets on within the lease, Prometheus sees no duplicate and no longer gap', async (t) => {
  const postgres = await startPostgres();
  t.teardown(() => postgres.destroy());
  await postgres.query('create database upkeep');
  const health = createServer((_request, response) => { response.writeHead(200).end('ok'); });
  health.listen(0, '127.0.0.1');
  await once(health, 'listening');
  t.teardown(() => new Promise((resolve) => health.close(resolve)));
  const address = health.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const config = { targets: { http: SERVICES.map((name) => ({ name, url: `http://127.0.0.1:${port}/${name}` })) } };
  const replicas = await Promise.all([1, 2, 3].map(async () => {
    const { file } = await writeConfig(t, {
      ...config,
      state: { dir: await tempDir(t), postgres: { url: postgres.url('upkeep'), memberHeartbeatSeconds: HEARTBEAT_SECONDS, memberLeaseSeconds: MEMBER_LEASE_SECONDS } },
    });
    return serveInstalled(t, file);
  }));

  const shares = await sharesCovering(replicas);
  t.ok(shares.every((share) => share.length > 0), `each replica collects a share: ${shares.map((share) => share.length).join(', ')}`);
  for (const [index, replica] of replicas.entries()) {
    const text = await (await fetch(`${replica.base}/metrics`)).text();
    const exposed = [...text.matchAll(/^upkeep_http_up\{service="([^"]+)"\} 1$/gm)].map((match) => match[1]).sort();
    t.same(exposed, shares[index], `replica ${index + 1} exposes the series of its share and no other`);
    t.match(text, new RegExp(`^upkeep_replica_targets ${shares[index]?.length}$`, 'm'));
    t.match(text, /^upkeep_replica_members 3$/m);
  }

  const dir = await tempDir(t, 'upkeep-prometheus-');
  const prometheusPort = await freePort();
  await writeFile(join(dir, 'prometheus.yml'), JSON.stringify({
    global: { scrape_interval: `${SCRAPE_SECONDS}s`, scrape_timeout: `${SCRAPE_SECONDS}s` },
    scrape_configs: [{ job_name: 'upkeep', static_configs: [{ targets: replicas.map((replica) => `127.0.0.1:${replica.port}`) }] }],
  }));
  const prometheusUrl = `http://127.0.0.1:${prometheusPort}`;
  const prometheus = await startUntilReady('prometheus', 'prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${prometheusPort}`,
  ], prometheusUrl, dir);
  t.teardown(() => prometheus.destroy());
  const query = async (path: string, params: Record<string, string>) => matrix.parse(await (await fetch(`${prometheusUrl}${path}`, { method: 'POST', body: new URLSearchParams(params) })).json()).data.result;
  await waitFor('Prometheus to have scraped every service', async () => {
    const result = await query('/api/v1/query', { query: 'upkeep_http_up[1m]' });
    const seen = new Set(result.map((series) => series.metric.service));
    if (seen.size !== SERVICES.length) throw new Error(`${seen.size} services`);
  }, 60_000, 500);
  const start = Date.now() / 1000;
  await new Promise((resolve) => setTimeout(resolve, 3_000));

  // The replica with the largest share dies without a word.
  const victim = shares.reduce((best, share, index) => (share.length > (shares[best]?.length ?? 0) ? index : best), 0);
  const dead = replicas[victim]!;
  dead.child.kill('SIGKILL');
  await once(dead.child, 'exit');
  const survivors = replicas.filter((replica) => replica !== dead);
  const after = await sharesCovering(survivors);
  for (const [index, share] of after.entries()) {
    const before = shares[replicas.indexOf(survivors[index]!)] ?? [];
    t.ok(before.every((service) => share.includes(service)), 'a survivor kept its own targets and took some of the dead one\'s');
  }
  // Long enough for Prometheus to scrape the new owners a few times.
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const end = Date.now() / 1000;

  const counts = await query('/api/v1/query_range', { query: 'count by (service) (upkeep_http_up)', start: String(start), end: String(end), step: '0.5' });
  t.equal(counts.length, SERVICES.length, 'Prometheus saw every service');
  const duplicated = counts.filter((series) => series.values.some(([, value]) => value !== '1')).map((series) => series.metric.service);
  t.same(duplicated, [], 'no service was exposed by two replicas at any time');

  // The raw samples of every replica's series of a service, merged: the longest wait between two.
  const raw = await query('/api/v1/query', { query: `upkeep_http_up[${Math.ceil(end - start) + 5}s]`, time: String(end) });
  const samples = new Map<string, number[]>();
  for (const series of raw) {
    const service = series.metric.service ?? '';
    samples.set(service, [...(samples.get(service) ?? []), ...series.values.map(([time]) => time)]);
  }
  const gaps = [...samples.entries()].map(([service, times]) => {
    const sorted = times.sort((a, b) => a - b);
    return { service, gap: Math.max(...sorted.slice(1).map((time, index) => time - (sorted[index] ?? time))), last: sorted.at(-1) ?? 0 };
  });
  const moved = shares[victim] ?? [];
  const handover = gaps.filter((entry) => moved.includes(entry.service)).map((entry) => entry.gap);
  t.comment(`the dead replica's ${moved.length} services: longest gap ${Math.max(...handover).toFixed(1)} s, shortest ${Math.min(...handover).toFixed(1)} s`);
  t.equal(gaps.length, SERVICES.length);
  t.same(gaps.filter((entry) => entry.gap > LONGEST_GAP_SECONDS), [], `no service went unscraped for longer than ${LONGEST_GAP_SECONDS} s`);
  t.same(gaps.filter((entry) => entry.last < end - 3 * SCRAPE_SECONDS).map((entry) => entry.service), [], 'every service is scraped at the end');
  t.ok(gaps.filter((entry) => moved.includes(entry.service)).every((entry) => entry.gap > SCRAPE_SECONDS * 2), 'the dead replica\'s services did wait for the lease (the gap measured is the handover)');

  for (const replica of survivors) {
    const lines = replica.logLines();
    t.ok(lines.some((line) => line.msg === 'the live replicas changed' && Array.isArray(line.members) && line.members.length === 2), 'a survivor logged the dead replica leaving the live ones');
    t.same(lines.filter((line) => typeof line.level !== 'number' || line.level >= 50), [], 'no errors logged');
    t.equal(await replica.stop(), 0, 'exits 0 on SIGTERM', { output: replica.output() });
  }
});
