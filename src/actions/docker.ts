import type Docker from 'dockerode';
import { z } from 'zod';
import { diskUsage, systemDfWhenFree } from '../systems/docker/df.js';
import { flag, identifier } from './params.js';
import { PartialWork, type Action, type PlanStep } from './contract.js';
import { ValidationError } from '../errors.js';
import { onFirstUse } from '../lazy-schema.js';

// "key", "key=value"; a leading "!" means "without this label" (label!=). No control or bidi
// characters in the value: no label holds them, and they would reach the daemon and the journal.
const LABEL = /^!?[A-Za-z0-9][A-Za-z0-9._/-]*(?:=[^\s,\u0000-\u001f\u007f\u200e\u200f\u202a-\u202e\u2066-\u2069]*)?$/;

const UNIT_SECONDS: Readonly<Record<string, number>> = { ns: 1e-9, us: 1e-6, 'µs': 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
// Go's durations end near 292 years; a longer one, or a date that is none, was a 500 from the
// daemon and a failed run (counted by the circuit breaker) instead of a refusal.
const MAX_UNTIL_SECONDS = 100 * 365 * 86_400;
const DURATION_PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
const DATE = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):(\d{2}))?)?$/;

/** Whether `docker ... prune --filter until=` takes it: a Go duration, a Unix time, or a real date. */
export function validUntil(text: string): boolean {
  if (/^\d{1,10}$/.test(text)) return true;
  const date = DATE.exec(text);
  if (date) {
    const [year, month, day, hour = 0, minute = 0, second = 0, zoneHour = 0, zoneMinute = 0] = date.slice(1).map((part) => Number(part ?? 0));
    const at = new Date(Date.UTC(year ?? 0, (month ?? 0) - 1, day ?? 0));
    return at.getUTCMonth() === (month ?? 0) - 1 && at.getUTCDate() === day && hour < 24 && minute < 60 && second < 60 && zoneHour < 24 && zoneMinute < 60;
  }
  DURATION_PART.lastIndex = 0;
  let seconds = 0;
  for (let part = DURATION_PART.exec(text); part; part = DURATION_PART.exec(text)) {
    seconds += Number(part[1]) * (UNIT_SECONDS[part[2] ?? ''] ?? 0);
    if (DURATION_PART.lastIndex === text.length) return seconds <= MAX_UNTIL_SECONDS;
  }
  return false;
}

const labelList = onFirstUse(() => z.union([z.string(), z.array(z.string())]).transform((value) =>
  (Array.isArray(value) ? value : value.split(',')).map((label) => label.trim()).filter((label) => label !== '')));

const pruneParams = onFirstUse(() => z.strictObject({
  target: identifier,
  containers: flag(true),
  images: flag(true),
  networks: flag(true),
  buildCache: flag(true),
  volumes: flag(false),
  until: z.string().max(64, 'is too long').refine(validUntil, 'must be a duration such as "24h" (at most 100 years), a Unix time, or a date such as "2026-12-01" or "2026-12-01T10:00:00Z"').optional(),
  /** Only objects with these labels ("k=v,k2", "!k" = without k): confines a prune to what one deployment owns. */
  // An empty filter (say, from an alert label that was blank) would prune everything: refused.
  label: labelList.pipe(z.array(z.string().regex(LABEL, 'must be key, key=value or !key')).min(1, 'must name at least one label; an empty filter would prune everything (leave label out to prune without one)')).optional(),
}));
export type PruneParams = z.infer<typeof pruneParams>;

export type PruneKind = 'containers' | 'images' | 'networks' | 'volumes' | 'buildCache';
const KINDS: readonly PruneKind[] = ['containers', 'images', 'networks', 'volumes', 'buildCache'];
const ENDPOINT: Record<PruneKind, string> = {
  containers: '/containers/prune', images: '/images/prune', networks: '/networks/prune', volumes: '/volumes/prune', buildCache: '/build/prune',
};

/** The filters each prune call gets. Images are always dangling-only: a tagged image is never pruned. */
export function pruneFilters(params: PruneParams, kind: PruneKind): Record<string, string[]> {
  const filters: Record<string, string[]> = {};
  if (kind === 'images') filters.dangling = ['true'];
  // The volumes endpoint has no until filter; build cache has no label filter (resolve refuses or skips those).
  if (params.until !== undefined && kind !== 'volumes') filters.until = [params.until];
  const labels = kind === 'buildCache' ? [] : params.label ?? [];
  const withLabel = labels.filter((label) => !label.startsWith('!'));
  const withoutLabel = labels.filter((label) => label.startsWith('!')).map((label) => label.slice(1));
  if (withLabel.length > 0) filters.label = withLabel;
  if (withoutLabel.length > 0) filters['label!'] = withoutLabel;
  return filters;
}

/** What this invocation prunes, and why anything asked for is left out. */
export function pruneScope(params: PruneParams): { kinds: PruneKind[]; skipped: string[] } {
  const kinds = KINDS.filter((kind) => params[kind]);
  if (params.buildCache && (params.label?.length ?? 0) > 0) {
    return { kinds: kinds.filter((kind) => kind !== 'buildCache'), skipped: ['build cache: it cannot be filtered by label, so a labelled prune leaves it alone'] };
  }
  return { kinds, skipped: [] };
}

function requireDockerTarget(params: PruneParams, config: { targets: { docker: readonly { name: string }[] } }): void {
  if (!config.targets.docker.some((entry) => entry.name === params.target)) {
    throw new ValidationError(`unknown docker target "${params.target}" (not in targets.docker)`);
  }
}

interface PruneResult { kind: PruneKind; deleted: string[]; reclaimedBytes: number }

const pruneReply = onFirstUse(() => z.object({
  SpaceReclaimed: z.number().nullish(),
  ContainersDeleted: z.array(z.string()).nullish(),
  VolumesDeleted: z.array(z.string()).nullish(),
  NetworksDeleted: z.array(z.string()).nullish(),
  CachesDeleted: z.array(z.string()).nullish(),
  ImagesDeleted: z.array(z.object({ Deleted: z.string().optional(), Untagged: z.string().optional() })).nullish(),
}));

function callPrune(docker: Docker, kind: PruneKind, options: { filters: string; abortSignal: AbortSignal }): Promise<unknown> {
  if (kind === 'containers') return docker.pruneContainers(options);
  if (kind === 'images') return docker.pruneImages(options);
  if (kind === 'networks') return docker.pruneNetworks(options);
  if (kind === 'volumes') return docker.pruneVolumes(options);
  return pruneBuildCache(docker, options);
}

const busyStatus = onFirstUse(() => z.object({ statusCode: z.literal(409) }));

/**
 * The daemon runs one prune of a kind at a time and answers 409 to a second one (another tool,
 * an operator's `docker system prune`). That is not a failure of ours: wait for it and go on,
 * until the run's deadline aborts the wait.
 */
export async function pruneWhenFree(call: () => Promise<unknown>, signal: AbortSignal, waitMs = 500): Promise<unknown> {
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (!busyStatus.safeParse(err).success || signal.aborted) throw err;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }
}

const imageList = onFirstUse(() => z.array(z.object({ Id: z.string() })));

async function prune(docker: Docker, kind: PruneKind, filters: Record<string, string[]>, signal: AbortSignal): Promise<PruneResult> {
  const options = { filters: JSON.stringify(filters), abortSignal: signal };
  // An image prune lists each image's layers among the ids it deleted: an image's count was its
  // layers' too (two for one image). Only the ids that were images before count as images.
  const images = kind === 'images' ? new Set(imageList.parse(await docker.listImages({ all: true, abortSignal: signal })).map((image) => image.Id)) : null;
  const reply = await pruneWhenFree(() => callPrune(docker, kind, options), signal);
  const parsed = pruneReply.parse(reply);
  const deleted = [
    ...(parsed.ContainersDeleted ?? []), ...(parsed.VolumesDeleted ?? []), ...(parsed.NetworksDeleted ?? []), ...(parsed.CachesDeleted ?? []),
    ...(parsed.ImagesDeleted ?? []).flatMap((entry) => (entry.Deleted && images?.has(entry.Deleted) ? [entry.Deleted] : [])),
  ];
  return { kind, deleted, reclaimedBytes: parsed.SpaceReclaimed ?? 0 };
}

// dockerode's pruneBuilder sends no filters, so the endpoint is called through its modem.
function pruneBuildCache(docker: Docker, options: { filters: string; abortSignal: AbortSignal }): Promise<unknown> {
  return new Promise((resolve, reject) => {
    docker.modem.dial({
      path: `${ENDPOINT.buildCache}?`, method: 'POST', options: { filters: options.filters }, abortSignal: options.abortSignal,
      statusCodes: { 200: true, 500: 'server error' },
    }, (err, data) => (err ? reject(err) : resolve(data)));
  });
}

const dfObjects = onFirstUse(() => z.object({
  Images: z.array(z.object({ Id: z.string() })).nullish(),
  Containers: z.array(z.object({ Id: z.string() })).nullish(),
  Volumes: z.array(z.object({ Name: z.string() })).nullish(),
}));

/** The ids and names `docker system df` lists, to confirm pruned objects are gone. */
function presentObjects(df: unknown): Set<string> {
  const parsed = dfObjects.parse(df);
  return new Set([
    ...(parsed.Images ?? []).map((image) => image.Id), ...(parsed.Containers ?? []).map((container) => container.Id),
    ...(parsed.Volumes ?? []).map((volume) => volume.Name),
  ]);
}

function totalBytes(usage: readonly { bytes: number }[]): number {
  return usage.reduce((sum, entry) => sum + entry.bytes, 0);
}

const LISTED = 100;

/** What run() prunes: each kind's endpoint with its filters, in order. */
export interface PrunePayload { readonly prunes: readonly { readonly kind: PruneKind; readonly filters: Record<string, string[]> }[] }

/** What run() reclaimed, journalled and read back by verify: per kind, the count and the first listed ids. */
export type PruneOutput = { reclaimedBytes: number; pruned: Record<string, { count: number; reclaimedBytes: number; deleted: string[] }> };

export const dockerPrune: Action<PruneParams, PrunePayload, PruneOutput> = {
  name: 'docker.prune',
  description: 'Prune stopped containers, dangling images, unused networks and the build cache (volumes only when asked), reporting the bytes reclaimed.',
  riskClass: 'safe; volumes: true is destructive (a volume is data, and "unused" only means no container mounts it right now)',
  params: pruneParams,
  risk: (params) => (params.volumes ? 'destructive' : 'safe'),
  screen: (params, config) => { requireDockerTarget(params, config); },
  async resolve(params, context) {
    requireDockerTarget(params, context.config);
    if (params.volumes && params.until !== undefined) {
      throw new ValidationError('volumes cannot be filtered by until (the Docker API has no such filter); prune volumes by label, or without until');
    }
    return params;
  },
  lock: (params) => ({ kind: 'local', key: `docker.prune:${params.target}` }),
  async check(params, context) {
    const usage = diskUsage(await systemDfWhenFree(context.connections.docker(params.target), context.signal));
    const reclaimable = usage.map((entry) => `${entry.type} ${entry.reclaimableBytes}`).join(', ');
    const prunable = usage.flatMap((entry) => (entry.prunableBytes === null ? [] : [`${entry.type} ${entry.prunableBytes}`])).join(', ');
    return { proceed: true, reason: `reclaimable bytes: ${reclaimable}; prunable (no volumes, no tagged images): ${prunable}`, observed: { usage } };
  },
  async plan(params) {
    const { kinds, skipped } = pruneScope(params);
    const prunes = kinds.map((kind) => ({ kind, filters: pruneFilters(params, kind) }));
    const steps: PlanStep[] = prunes.map(({ kind, filters }) => ({ kind: 'docker', detail: `POST ${ENDPOINT[kind]} filters=${JSON.stringify(filters)}` }));
    for (const reason of skipped) steps.push({ kind: 'docker', detail: `skip ${reason}` });
    return { steps, payload: { prunes } };
  },
  async run(params, payload, context) {
    const docker = context.connections.docker(params.target);
    const results: PruneResult[] = [];
    const done = () => ({
      reclaimedBytes: results.reduce((sum, result) => sum + result.reclaimedBytes, 0),
      pruned: Object.fromEntries(results.map((result) => [result.kind, { count: result.deleted.length, reclaimedBytes: result.reclaimedBytes, deleted: result.deleted.slice(0, LISTED) }])),
    });
    try {
      // One after another: the daemon refuses a second prune of a kind while one runs, and the order keeps images freed by removed containers.
      for (const { kind, filters } of payload.prunes) results.push(await prune(docker, kind, filters, context.signal));
    } catch (err) {
      // The kinds pruned before the failure stay pruned: the journal lists them.
      throw new PartialWork(err, done());
    }
    const detail = done();
    context.log.info({ target: params.target, reclaimedBytes: detail.reclaimedBytes }, 'docker prune finished');
    return { detail };
  },
  async verify(params, before, output, context) {
    const df = await systemDfWhenFree(context.connections.docker(params.target), context.signal);
    const present = presentObjects(df);
    const lingering = Object.values(output.detail.pruned).flatMap((result) => result.deleted).filter((id) => present.has(id));
    const usageBefore = z.array(z.object({ type: z.string(), bytes: z.number(), reclaimableBytes: z.number() })).parse(before.observed?.usage ?? []);
    const usageAfter = diskUsage(df);
    const dfDelta = totalBytes(usageBefore) - totalBytes(usageAfter);
    const detail = `reported ${output.detail.reclaimedBytes} bytes reclaimed; docker system df total fell by ${dfDelta} bytes`;
    if (lingering.length > 0) return { ok: false, detail: `${detail}; still listed after the prune: ${lingering.join(', ')}`, observed: { usage: usageAfter } };
    return { ok: true, detail, observed: { usage: usageAfter, dfDeltaBytes: dfDelta } };
  },
};
