import type pg from 'pg';
import { z } from 'zod';
import type { Logger } from '../log.js';
import { ACTIVITY_FAMILIES, readActivity } from './postgres-activity.js';
import { HORIZON_FAMILIES, readHorizon } from './postgres-horizon.js';
import { PROGRESS_FAMILIES, readProgress } from './postgres-progress.js';
import { readReplication, REPLICATION_FAMILIES } from './postgres-replication.js';
import { Visibility } from './postgres-visibility.js';
import { readWraparound, WRAPAROUND_FAMILIES } from './postgres-wraparound.js';
import type { FamilySpec, Reading } from './framework/types.js';

/** The families read once per target (server-wide views), not once per database. */
export const SERVER_FAMILIES: readonly FamilySpec[] = [...WRAPAROUND_FAMILIES, ...HORIZON_FAMILIES, ...ACTIVITY_FAMILIES, ...REPLICATION_FAMILIES, ...PROGRESS_FAMILIES];

const READERS = [['wraparound', readWraparound], ['horizon', readHorizon], ['activity', readActivity], ['replication', readReplication], ['progress', readProgress]] as const;

/**
 * The server-wide readings of one target, over the connection to the database in its URL. Each
 * topic is read on its own: a failing one (a timeout, a view the role may not read) costs only its
 * series, and is logged when it starts failing, changes or recovers, never every scrape.
 */
export class ServerReadings {
  private readonly lastErrors = new Map<string, string | null>();
  private readonly visibility: Visibility;

  /** `statements`: whether the target reads pg_stat_statements (statements.enabled), for the log. */
  constructor(private readonly target: string, statements: boolean, private readonly log: Logger) {
    this.visibility = new Visibility(target, statements, log);
  }

  async read(pool: pg.Pool): Promise<Reading[]> {
    const readings: Reading[] = [];
    // Only for the log: each reading checks the privilege itself. A failure here is the
    // connection's or the timeout's, which the readings below meet and log.
    await this.visibility.check(pool).catch(() => undefined);
    for (const [name, reader] of READERS) {
      try {
        readings.push(...await reader(pool, this.target));
        this.note(name, null);
      } catch (err) {
        this.note(name, failure(err));
      }
    }
    return readings;
  }

  private note(reading: string, message: string | null): void {
    const last = this.lastErrors.get(reading) ?? null;
    this.lastErrors.set(reading, message);
    if (message === last) return;
    if (message !== null) this.log.warn({ target: this.target, reading, err: message }, 'postgres server reading failed; its series are skipped');
    else this.log.info({ target: this.target, reading }, 'postgres server reading recovered');
  }
}

/**
 * A failed reading's message, on one line: a row the schema refuses is named by its fields and what
 * was wrong with them, not by zod's pretty-printed list of issues (a dozen lines of JSON).
 */
function failure(err: unknown): string {
  if (err instanceof z.ZodError) return `unexpected rows: ${err.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`;
  return err instanceof Error ? err.message : String(err);
}
