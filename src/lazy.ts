import { createRequire } from 'node:module';
import type DockerClass from 'dockerode';
import type * as IoRedis from 'ioredis';
import type Pg from 'pg';

// ioredis and dockerode each cost about 25 MB of RSS just to load, and pg about 80 ms of start-up. They are loaded on first
// use, so a process without Redis, Docker or PostgreSQL targets never pays for them.
// Both are CommonJS, so a synchronous require keeps the callers' APIs synchronous.
const require = createRequire(import.meta.url);

export function ioredis(): typeof IoRedis {
  return require('ioredis') as typeof IoRedis;
}

export function dockerode(): typeof DockerClass {
  return require('dockerode') as typeof DockerClass;
}

export function postgresDriver(): typeof Pg {
  return require('pg') as typeof Pg;
}
