import { FileStore } from '../../../src/engine/state/file-store.js';
import { PostgresStore } from '../../../src/engine/state/postgres-store.js';
import type { StateStore } from '../../../src/engine/state/store.js';
import type { BufferLogger } from '../../fixtures/log.js';
import type { PostgresServer } from '../../fixtures/postgres.js';
import { tempDir } from '../../http/helpers.js';

export type Store = StateStore & { maintain(): Promise<void> };

export interface StoreSettings {
  readonly now: () => number;
  readonly log: BufferLogger['log'];
  readonly retentionMs?: number;
  readonly cooldownMs?: number;
  readonly failureWindowMs?: number;
}

type Teardown = { teardown(fn: () => unknown): void };

/** One kind of state store, as the conformance suite opens it. */
export interface StoreKind {
  readonly name: string;
  /**
   * `count` replicas sharing one state. The PostgreSQL store opens one instance per replica, all
   * at once; the file store serves one replica by design, so its "replicas" are one instance.
   */
  replicas(t: Teardown, count: number, settings: StoreSettings): Promise<Store[]>;
}

const HOUR = 3_600_000;

function storeOptions(settings: StoreSettings) {
  return {
    retentionMs: settings.retentionMs ?? 90 * 24 * HOUR,
    cooldownMs: settings.cooldownMs ?? HOUR,
    failureWindowMs: settings.failureWindowMs ?? HOUR,
    log: settings.log,
    now: settings.now,
  };
}

export const fileKind: StoreKind = {
  name: 'file store',
  async replicas(t, count, settings) {
    const store = await FileStore.open({ ...storeOptions(settings), dir: await tempDir(t) });
    t.teardown(() => store.close());
    return Array.from({ length: count }, () => store);
  },
};

let schemas = 0;

/** Each call gets a schema of its own in `server`'s database "postgres". */
export function postgresKind(server: PostgresServer): StoreKind {
  return {
    name: 'PostgreSQL store',
    async replicas(t, count, settings) {
      schemas += 1;
      const schema = `conformance_${process.pid}_${schemas}`;
      const stores = await Promise.all(Array.from({ length: count }, () => PostgresStore.open({ ...storeOptions(settings), url: server.url(), schema, timeoutMs: 10_000 })));
      t.teardown(() => Promise.all(stores.map((store) => store.close())));
      return stores;
    },
  };
}
