import type pg from 'pg';
import { chooseRelation, NO_STATS, statsOfMany, tablesNamed, type Relation, type RelationRow, type TableStats } from './catalog.js';
import { horizonHolders, type HorizonHolder } from './horizon.js';
import { onPooledSession } from './client.js';
import { ReadBatch } from './read-batch.js';

/**
 * A shared reading of the horizon's holders started at most this long before a dry run asked may
 * answer it. A dry run acts on nothing: a real run reads afresh on its own sessions. Under a flood
 * of alerts (a database in trouble), the dry runs then ask it a few times a second, not once per
 * read in flight (docs/performance.md, "Readings shared for 100 ms").
 */
export const SHARED_READING_MS = 100;

/**
 * The same for the tables' statistics and the tables an alert names, which change more slowly:
 * PostgreSQL's statistics are up to a second old when read (a backend reports its counts at most
 * once a second, PostgreSQL 15's PGSTAT_MIN_INTERVAL), so a reading younger than that says
 * nothing newer, and names change only by DDL. At 1,000 alerts a second on 20 tables, sharing
 * them for 100 ms still made 0.21 statements per dry run and cost the acknowledgements the CPU
 * that PostgreSQL and the executor thread spent on them; for a second, 0.02 (docs/performance.md,
 * "Statistics shared for a second").
 */
export const SHARED_STATISTICS_MS = 1000;

/**
 * The catalog reads of postgres.vacuum and postgres.analyze that dry runs on one database ask for
 * at about the same moment, made once for all of them on a session of their pool: the tables
 * their alerts name in one statement, their statistics in one, and the horizon's holders (the
 * same for every table of the database) once. At 1,000 alerts a second these were each of a dry
 * run's three statements. Each read starts after every run it answers asked, or at most
 * SHARED_STATISTICS_MS (the tables, their statistics) or SHARED_READING_MS (the holders) before
 * (see ReadBatch). Real runs read on their own sessions.
 */
export class CatalogReads {
  private readonly tables: ReadBatch<string, readonly RelationRow[]>;
  private readonly stats: ReadBatch<number, Readonly<TableStats>>;
  private readonly holders: ReadBatch<'holders', readonly HorizonHolder[]>;

  constructor(pool: pg.Pool) {
    this.tables = new ReadBatch<string, readonly RelationRow[]>((texts) => onPooledSession(pool, (client) => tablesNamed(client, texts)), () => [], SHARED_STATISTICS_MS);
    this.stats = new ReadBatch((oids) => onPooledSession(pool, (client) => statsOfMany(client, oids)), () => NO_STATS, SHARED_STATISTICS_MS);
    this.holders = new ReadBatch<'holders', readonly HorizonHolder[]>(async () => new Map([['holders', await onPooledSession(pool, horizonHolders)]]), () => [], SHARED_READING_MS);
  }

  /** The table `text` names, as findRelation() finds it; `where` names the database in a refusal. */
  async findTable(text: string, where: string): Promise<Relation> {
    return chooseRelation(text, 'table', where, await this.tables.get(text));
  }

  statsOf(oid: number): Promise<Readonly<TableStats>> {
    return this.stats.get(oid);
  }

  horizonHolders(): Promise<readonly HorizonHolder[]> {
    return this.holders.get('holders');
  }
}

const kept = new WeakMap<pg.Pool, CatalogReads>();

/** The reads shared by every dry run that borrows from `pool`. */
export function catalogReadsOf(pool: pg.Pool): CatalogReads {
  let reads = kept.get(pool);
  if (!reads) {
    reads = new CatalogReads(pool);
    kept.set(pool, reads);
  }
  return reads;
}
