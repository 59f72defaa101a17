import { createRequire } from 'node:module';
import type * as Crypto from 'node:crypto';
import type * as Zlib from 'node:zlib';
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

// Kept once loaded: some callers are on the webhook's path (a guard's key, a token check).
let cryptoModule: typeof Crypto | undefined;
let zlibModule: typeof Zlib | undefined;

/**
 * node's crypto (16 of its own modules) and zlib, for hashing, run ids, token checks and gzip. An
 * idle `serve` calls neither; imported at the top of the modules that use them, they were loaded
 * at start-up all the same (docs/performance.md, "Idle memory, 2026-12-03").
 */
export function nodeCrypto(): typeof Crypto {
  cryptoModule ??= require('node:crypto') as typeof Crypto;
  return cryptoModule;
}

/**
 * SHA-256 of a short text. crypto.hash (node 20.12 and later) makes no Hash object: it took a
 * third less time than createHash (1.4 against 2.0 µs) for the keys hashed on the webhook's path.
 */
export function sha256(text: string): Buffer {
  const crypto = nodeCrypto();
  return typeof crypto.hash === 'function' ? crypto.hash('sha256', text, 'buffer') : crypto.createHash('sha256').update(text).digest();
}

export function nodeZlib(): typeof Zlib {
  zlibModule ??= require('node:zlib') as typeof Zlib;
  return zlibModule;
}

let pg: typeof Pg | undefined;

export function postgresDriver(): typeof Pg {
  pg ??= withNavigator(() => require('pg') as typeof Pg);
  return pg;
}

/**
 * pg decides when it loads whether it runs in a Cloudflare Worker: with no global `navigator` (as
 * in Node 20) it makes a `Response`, and that loads undici, fetch's implementation, in a process
 * that never fetches: 2.2 MB of heap, about 5 MB of RSS and 20 ms. A `navigator` that says Node.js
 * is there while pg loads (synchronously, so no other code sees it) and gone after; Node 21 and
 * later have their own, and it is left alone.
 */
function withNavigator<T>(load: () => T): T {
  if ('navigator' in globalThis) return load();
  Object.defineProperty(globalThis, 'navigator', { value: { userAgent: `Node.js/${process.versions.node}` }, configurable: true });
  try {
    return load();
  } finally {
    Reflect.deleteProperty(globalThis, 'navigator');
  }
}
