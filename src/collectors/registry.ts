import type { Registry } from 'prom-client';
import { backups } from './backups.js';
import { disks } from './disks.js';
import { docker } from './docker.js';
import { http } from './http.js';
import { logs } from './logs.js';
import { postgres } from './postgres.js';
import { redis } from './redis.js';
import { Scraper } from './framework/scraper.js';
import type { CollectorContext, CollectorInstance, CollectorModule } from './framework/types.js';

/** Every collector upkeep knows. Adding one is one file and one line here. */
export const COLLECTORS: readonly CollectorModule[] = [
  disks,
  backups,
  logs,
  http,
  postgres,
  redis,
  docker,
];

export function buildScraper(context: CollectorContext, registry: Registry, modules: readonly CollectorModule[] = COLLECTORS): Scraper {
  const disabled = new Set(context.config.collectors.disabled);
  const enabled = modules.filter((module) => !disabled.has(module.name));
  const instances = new Map<CollectorModule, CollectorInstance[]>();
  for (const module of enabled) instances.set(module, module.build(context));
  return new Scraper(registry, enabled, instances, context.config.collectors.timeoutSeconds, context.log);
}
