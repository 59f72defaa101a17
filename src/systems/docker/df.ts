import { z } from 'zod';
import { onFirstUse } from '../../lazy-schema.js';

// The parts of GET /system/df that disk usage needs. Docker sends null for empty lists.
const list = <T extends z.ZodType>(item: T) => z.array(item).nullish().transform((items) => items ?? []);
const systemDf = onFirstUse(() => z.object({
  LayersSize: z.number().nullish(),
  Images: list(z.object({ Containers: z.number(), Size: z.number(), SharedSize: z.number(), RepoTags: z.array(z.string()).nullish() })),
  Containers: list(z.object({ State: z.string(), SizeRw: z.number().nullish() })),
  Volumes: list(z.object({ UsageData: z.object({ Size: z.number(), RefCount: z.number() }).nullish() })),
  BuildCache: list(z.object({ Size: z.number(), InUse: z.boolean(), Shared: z.boolean() })),
}));

export type DiskType = 'images' | 'containers' | 'volumes' | 'build_cache';
/**
 * `reclaimableBytes` is Docker's own figure (RECLAIMABLE in `docker system df`), which counts every
 * image no container uses, tagged or not. `prunableBytes` is what docker.prune's safe defaults
 * free: a tagged image is never pruned, so an alert on the reclaimable figure could fire for old
 * releases, run a prune that frees nothing, and never clear. Null for volumes: never pruned unasked.
 */
export interface DiskUsage { readonly type: DiskType; readonly bytes: number; readonly reclaimableBytes: number; readonly prunableBytes: number | null }

// A container in one of these states keeps its writable layer: `docker container prune` spares it.
const ACTIVE_STATES = new Set(['running', 'paused', 'restarting']);

/**
 * Size and reclaimable bytes per type, computed the way `docker system df` computes them:
 * images: all layers, minus the unshared part of images some container uses;
 * containers: writable layers, reclaimable when the container is not active;
 * volumes: reclaimable when no container references them; build cache: unshared, not in use.
 * Prunable: the same for containers and build cache; for images, the unshared bytes of the
 * untagged images no container uses (a lower bound where two such images share layers).
 */
export function diskUsage(response: unknown): DiskUsage[] {
  const df = systemDf.parse(response);
  const layers = df.LayersSize ?? 0;
  const usedByContainers = df.Images
    .filter((image) => image.Containers > 0 && image.Size >= 0 && image.SharedSize >= 0)
    .reduce((sum, image) => sum + image.Size - image.SharedSize, 0);
  const containerBytes = (states: 'all' | 'inactive') => df.Containers
    .filter((container) => states === 'all' || !ACTIVE_STATES.has(container.State))
    .reduce((sum, container) => sum + (container.SizeRw ?? 0), 0);
  // Docker 20.10 lists an untagged image as "<none>:<none>"; later versions as no tags at all.
  const prunableImages = df.Images
    .filter((image) => image.Containers === 0 && image.Size >= 0 && (image.RepoTags ?? []).every((tag) => tag === '<none>:<none>'))
    .reduce((sum, image) => sum + image.Size - Math.max(image.SharedSize, 0), 0);
  const volumes = df.Volumes.flatMap((volume) => (volume.UsageData && volume.UsageData.Size >= 0 ? [volume.UsageData] : []));
  const cache = df.BuildCache.filter((entry) => !entry.Shared);
  const unusedCache = sum(cache.filter((entry) => !entry.InUse).map((entry) => entry.Size));
  return [
    { type: 'images', bytes: layers, reclaimableBytes: layers - usedByContainers, prunableBytes: prunableImages },
    { type: 'containers', bytes: containerBytes('all'), reclaimableBytes: containerBytes('inactive'), prunableBytes: containerBytes('inactive') },
    { type: 'volumes', bytes: sum(volumes.map((usage) => usage.Size)), reclaimableBytes: sum(volumes.filter((usage) => usage.RefCount === 0).map((usage) => usage.Size)), prunableBytes: null },
    { type: 'build_cache', bytes: sum(cache.map((entry) => entry.Size)), reclaimableBytes: unusedCache, prunableBytes: unusedCache },
  ];
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

// Docker before 23.0 runs one disk-usage computation at a time and refuses a second with a 500:
// a `docker system df` by hand, upkeep's own collector and a prune's check or verify collide.
const DF_BUSY = /a disk usage operation is already running/;
const DF_RETRY_MS = 250;

/**
 * GET /system/df, waiting out another disk-usage computation until `signal` aborts. Refused at
 * once, a prune's check failed the run, and its verify made a prune that had pruned a `failure`,
 * opening the circuit breaker; the collector's first reading reported the daemon down.
 */
export async function systemDfWhenFree(docker: { df(options: { abortSignal: AbortSignal }): Promise<unknown> }, signal: AbortSignal): Promise<unknown> {
  for (;;) {
    try {
      return await docker.df({ abortSignal: signal });
    } catch (err) {
      if (!(err instanceof Error && DF_BUSY.test(err.message)) || signal.aborted) throw err;
      await new Promise((resolve) => setTimeout(resolve, DF_RETRY_MS));
    }
  }
}
