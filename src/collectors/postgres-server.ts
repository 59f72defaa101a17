import type pg from 'pg';
import type { Logger } from '../log.js';
import { ACTIVITY_FAMILIES, readActivity } from './postgres-activity.js';
import { HORIZON_FAMILIES, readHorizon } from './postgres-horizon.js';
import { PROGRESS_FAMILIES, readProgress } from './postgres-progress.js';
import { readReplication, REPLICATION_FAMILIES } from './postgres-replication.js';
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

  constructor(private readonly target: string, private readonly log: Logger) {}

  async read(pool: pg.Pool): Promise<Reading[]> {
    const readings: Reading[] = [];
    for (const [name, reader] of READERS) {
      try {
        readings.push(...await reader(pool, this.target));
        this.note(name, null);
      } catch (err) {
        this.note(name, err instanceof Error ? err.message : String(err));
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
