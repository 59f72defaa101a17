import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { Gauge, Registry } from './prom.js';
import { buildScraper } from './collectors/registry.js';
import type { Scraper } from './collectors/framework/scraper.js';
import type { CollectorModule } from './collectors/framework/types.js';
import type { Config } from './config/schema.js';
import { alertmanagerRoutes } from './http/alertmanager.js';
import { bearerAuth } from './http/auth.js';
import { errorReplies, frameworkErrors } from './http/error-replies.js';
import { requestHygiene } from './http/request-hygiene.js';
import { jsonBodies } from './http/json-body.js';
import { remediationRoutes } from './http/remediations.js';
import { runRoutes } from './http/runs.js';
import { metricsRoute } from './http/metrics-route.js';
import { noDefaultCompilers } from './http/zod.js';
import { clientErrorHandler, connectionHooks, timeoutOptions } from './http/slow-clients.js';
import { loggedPath, type Logger } from './log.js';
import { Engine } from './engine/engine.js';
import { joinReplicas } from './engine/state/postgres-members.js';
import type { SuccessRecord } from './engine/state/store.js';
import { ownerOf, targetKey } from './collectors/framework/assignment.js';
import { startSchedule } from './triggers/schedule.js';
import type { AnyAction } from './actions/contract.js';
import { VERSION } from './version.js';

const QUIET_ROUTES = new Set(['/metrics', '/healthz', '/readyz']);
// At shutdown, runs in flight may finish until this long before server.shutdownTimeoutSeconds
// runs out (at most half of it): what is left is for journalling them and closing the clients.
const CLOSING_RESERVE_MS = 2000;

/** What is kept at the end of server.shutdownTimeoutSeconds for journalling the runs and closing the clients. */
function closingReserveMs(shutdownTimeoutSeconds: number): number {
  return Math.min(CLOSING_RESERVE_MS, (shutdownTimeoutSeconds * 1000) / 2);
}

/** How long runs in flight at shutdown may take to finish before they are interrupted. */
function runsGraceMs(shutdownTimeoutSeconds: number): number {
  return shutdownTimeoutSeconds * 1000 - closingReserveMs(shutdownTimeoutSeconds);
}

export interface AppOptions {
  config: Readonly<Config>;
  log: Logger;
  /** Override the collector set (tests); defaults to every known collector. */
  collectors?: readonly CollectorModule[];
  /** Override the remediation set (tests); defaults to every known remediation. */
  actions?: readonly AnyAction[];
}

export interface App {
  fastify: FastifyInstance;
  registry: Registry;
  scraper: Scraper;
  engine: Engine;
}

/** The whole HTTP app. Process concerns (listen, signals) live in cli.ts. */
export async function buildApp(options: AppOptions): Promise<App> {
  const { config, log } = options;
  const registry = new Registry();
  new Gauge({ name: 'upkeep_build_info', help: 'Always 1; the version label says which upkeep is running.', labelNames: ['version'], registers: [registry] }).set({ version: VERSION }, 1);
  // The collectors are built before the engine opens the state store; they read its success records once it has.
  let readSuccesses: Engine['successes'] | undefined;
  const successes = async (remediation: string) => (readSuccesses ? readSuccesses(remediation) : new Map<string, SuccessRecord>());
  const scraper = buildScraper({ config, log, successes }, registry, options.collectors);

  // Widened to Fastify's logger type so route plugins see the default FastifyInstance.
  const loggerInstance: FastifyBaseLogger = log;
  const fastify: FastifyInstance = Fastify({ loggerInstance, bodyLimit: config.server.bodyLimitBytes,
    // Fastify's own request lines log the raw request; upkeep writes one line per request itself.
    logController: new LogController({ disableRequestLogging: true }),
    ...timeoutOptions(config.server), clientErrorHandler: clientErrorHandler(config.server, log),
    schemaController: { compilersFactory: noDefaultCompilers },
    frameworkErrors: frameworkErrors(config.server.authToken),
  });
  connectionHooks(fastify);
  // One line per API request. Scrapes and probes arrive every few seconds; logging them would
  // drown the audit-worthy POSTs.
  fastify.addHook('onResponse', async (request, reply) => {
    const path = request.url.split('?')[0] ?? request.url;
    if (QUIET_ROUTES.has(path)) return;
    request.log.info({ method: request.method, path: loggedPath(request.url), status: reply.statusCode, durationMs: Math.round(reply.elapsedTime * 10) / 10 }, 'request');
  });
  const engine = await Engine.create({ config, log, registry, ...(options.actions ? { actions: options.actions } : {}) });
  readSuccesses = (remediation) => engine.successes(remediation);
  // After the engine: opening the state store migrated the schema the membership lives in.
  const replicas = await joinReplicas(config, log);
  const members = replicas?.members;
  if (members) scraper.collectOnly((collector, target) => members.settled() && ownerOf(targetKey(collector, target), members.ids()) === members.id);
  new Gauge({ name: 'upkeep_replica_targets', help: 'Targets this replica collects: all of them with the file store, its share with replicas on the PostgreSQL store.', registers: [registry],
    collect() { this.set(scraper.statuses().length); } });
  new Gauge({ name: 'upkeep_replica_members', help: 'Live replicas sharing the targets, as this replica last saw them (1 with the file store).', registers: [registry],
    collect() { this.set(members?.ids().length ?? 1); } });
  const schedule = startSchedule({ config, submitter: engine, registry, log });
  // Runs are stopped from the start of the close, not once the server has closed (onClose): a
  // request waiting on a run (?wait=true) holds the server open until the run ends, so waiting for
  // the server first held both until the process's deadline (exit 1, the run never journalled).
  // The grace counts from the start of the close, as the process's deadline does (cli.ts). A run
  // cut off at its end that does not notice (a step that ignores its abort) is given up on within
  // half the reserve, so its final line is still written.
  let runsStopped: Promise<void> = Promise.resolve();
  fastify.addHook('onClose', async () => {
    // Not in preClose: it takes the schedule's metric out of the registry, which a scrape still in
    // flight is rendering. A tick meanwhile is refused by the stopping engine (cancelled, journalled).
    await schedule.stop();
    await runsStopped;
    await replicas?.close();
    await scraper.close();
    await engine.close();
  });
  // On shutdown, a response still in flight tells its client to hang up, so a keep-alive
  // connection (every Prometheus scrape uses one) cannot hold the process open afterwards.
  let closing = false;
  fastify.addHook('preClose', async () => {
    closing = true;
    const { shutdownTimeoutSeconds } = config.server;
    runsStopped = engine.stopRuns(runsGraceMs(shutdownTimeoutSeconds), undefined, closingReserveMs(shutdownTimeoutSeconds) / 2);
  });
  fastify.addHook('onSend', async (_request, reply) => { if (closing) reply.header('connection', 'close'); });
  errorReplies(fastify);
  requestHygiene(fastify);

  metricsRoute(fastify, { scraper, registry, log, closing: () => closing });
  fastify.get('/healthz', async () => ({ status: 'ok' }));
  fastify.get('/readyz', async (_request, reply) => {
    const targets = scraper.statuses();
    // Ready means the config loaded and the app serves; a down target is reported, not fatal,
    // because Prometheus must still be able to scrape upkeep_*_up 0 for it.
    return reply.send({ status: 'ready', version: VERSION, targets });
  });
  // Every POST takes JSON; anything else is a 415, not a string handed to the JSON schema.
  fastify.removeContentTypeParser(['text/plain']);
  jsonBodies(fastify);
  await fastify.register(bearerAuth, { token: config.server.authToken });
  await fastify.register(alertmanagerRoutes, { engine, config });
  await fastify.register(remediationRoutes, { engine, config });
  await fastify.register(runRoutes, { engine, pageLimit: config.server.runsPageLimit });
  return { fastify, registry, scraper, engine };
}
