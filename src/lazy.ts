import { createRequire } from 'node:module';
import type DockerClass from 'dockerode';
import type * as IoRedis from 'ioredis';

// ioredis and dockerode each cost about 25 MB of RSS just to load. They are loaded on first
// use, so a process without Redis or Docker targets (a PostgreSQL-only exporter) never pays.
// Both are CommonJS, so a synchronous require keeps the callers' APIs synchronous.
const require = createRequire(import.meta.url);

export function ioredis(): typeof IoRedis {
  return require('ioredis') as typeof IoRedis;
}

export function dockerode(): typeof DockerClass {
  return require('dockerode') as typeof DockerClass;
}
