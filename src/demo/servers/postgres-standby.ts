import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { freePort, waitFor } from './ports.js';
import { clusterRoot, queryOnce, runPg, type PostgresServer } from './postgres.js';

const HOT_STANDBY_LIMITS = ['max_connections', 'max_prepared_transactions', 'max_locks_per_transaction', 'max_wal_senders', 'max_worker_processes'];

export interface StandbyServer {
  port: number;
  url(database?: string): string;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]>;
  destroy(): Promise<void>;
}

/**
 * A real streaming standby of `primary`: pg_basebackup -R (standby.signal and primary_conninfo)
 * over the replication slot `slot`, then started on its own port with hot_standby_feedback, so
 * it reports its xmin to the primary. Its cluster_name is what pg_stat_replication calls it.
 */
export async function startStandby(primary: PostgresServer, options: { slot: string; name: string }): Promise<StandbyServer> {
  const root = await clusterRoot('upkeep-pg-standby-');
  const dataDir = join(root, 'data');
  await runPg('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', dataDir, '-X', 'stream', '-R', '-S', options.slot, '--no-sync', '--checkpoint', 'fast']);
  const port = await freePort();
  // A hot standby refuses to start with less of these than its primary has.
  const [limits] = await primary.query<Record<string, string>>(`SELECT ${HOT_STANDBY_LIMITS.map((name) => `current_setting('${name}') AS ${name}`).join(', ')}`);
  const settings = [...HOT_STANDBY_LIMITS.map((name) => `${name}=${limits?.[name] ?? ''}`), `port=${port}`, "listen_addresses='127.0.0.1'", `unix_socket_directories='${root}'`, 'hot_standby_feedback=on', `cluster_name=${options.name}`, 'wal_receiver_status_interval=1s'];
  await runPg('pg_ctl', ['-D', dataDir, '-l', join(root, 'server.log'), '-o', settings.map((setting) => `-c ${setting}`).join(' '), '-w', '-t', '60', 'start'])
    .catch(async (err: unknown) => {
      await rm(root, { recursive: true, force: true });
      throw err;
    });
  const standby: StandbyServer = {
    port,
    url: (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`,
    query: <R extends pg.QueryResultRow>(sql: string, params?: unknown[]) => queryOnce<R>(standby.url(), sql, params),
    async destroy() {
      await runPg('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    },
  };
  await waitFor('standby', () => standby.query('select 1'));
  return standby;
}
