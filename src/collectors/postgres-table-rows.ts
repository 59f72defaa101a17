import { blockRow } from './framework/block.js';
import type { BlockRow } from './framework/types.js';
import { hashName, hashNameBytes, spells } from './name-hash.js';
import type { TableName } from './postgres-table-columns.js';

const TABLE = ['target', 'database', 'schema', 'table'];

/** An exported table: its names and its label row, kept. */
class KeptTable implements TableName {
  /** The next kept table in its bucket. */
  sameBucket: KeptTable | undefined;
  constructor(readonly owner: TableRows, readonly schema: string, readonly table: string, readonly hash: number, readonly row: BlockRow, public used: number) {}
}

// The buckets grow (doubled) past this many tables per bucket.
const LOAD = 0.75;
const MIN_BUCKETS = 64;

/**
 * The label rows of one database's tables (target, database, schema, table and their exposition
 * text), made the first time a table is exported and kept while it is: a collection of 10,000
 * tables then makes no label string or text of its own, and what it publishes (kept until the next
 * scrape, long enough to be promoted to the old generation) is a few typed arrays and references.
 * The kept names also stand for the names a reading returns (`find`), so a reading holds no
 * strings of its own between its queries' round trips.
 */
export class TableRows {
  // The kept tables by the hash of their names (name-hash.ts), chained in their bucket: a name read
  // as bytes is found without a string (findBytes), and the index costs a slot per bucket and a
  // field per table, where a Map per schema cost about 450 KB per 10,000 tables.
  private buckets: (KeptTable | undefined)[] = emptyBuckets(MIN_BUCKETS);
  private count = 0;
  private collection = 0;
  private usedNow = 0;

  constructor(private readonly target: string, private readonly database: string) {}

  /** The kept names of a table exported before (not marked as used), or undefined. */
  find(schema: string, table: string): TableName | undefined {
    return this.entry(schema, table, hashName(schema, table));
  }

  /**
   * find, for names given as UTF-8 bytes (a DataRow message's fields): a table exported before is
   * found without making a string of its names.
   */
  findBytes(bytes: Uint8Array, schemaStart: number, schemaEnd: number, tableStart: number, tableEnd: number): TableName | undefined {
    const hash = hashNameBytes(bytes, schemaStart, schemaEnd, tableStart, tableEnd);
    for (let entry = this.buckets[hash & (this.buckets.length - 1)]; entry; entry = entry.sameBucket) {
      if (entry.hash === hash && spells(bytes, schemaStart, schemaEnd, entry.schema) && spells(bytes, tableStart, tableEnd, entry.table)) return entry;
    }
    return undefined;
  }

  /**
   * The row of a table, marked as used by the current collection; from the kept names `find` gave
   * during this collection, without looking them up again.
   */
  rowOf(name: TableName): BlockRow {
    if (name instanceof KeptTable && name.owner === this) {
      this.use(name);
      return name.row;
    }
    return this.row(name.schema, name.table);
  }

  /** The row of a table, marked as used by the current collection. */
  row(schema: string, table: string): BlockRow {
    const hash = hashName(schema, table);
    let entry = this.entry(schema, table, hash);
    if (!entry) {
      entry = new KeptTable(this, schema, table, hash, blockRow(TABLE, [this.target, this.database, schema, table]), -1);
      this.count += 1;
      if (this.count > this.buckets.length * LOAD) this.rebuild([...this.entries(), entry]);
      else this.link(entry);
    }
    this.use(entry);
    return entry.row;
  }

  private entry(schema: string, table: string, hash: number): KeptTable | undefined {
    for (let entry = this.buckets[hash & (this.buckets.length - 1)]; entry; entry = entry.sameBucket) {
      if (entry.hash === hash && entry.schema === schema && entry.table === table) return entry;
    }
    return undefined;
  }

  private *entries(): Generator<KeptTable> {
    for (const first of this.buckets) for (let entry = first; entry; entry = entry.sameBucket) yield entry;
  }

  private link(entry: KeptTable): void {
    const bucket = entry.hash & (this.buckets.length - 1);
    entry.sameBucket = this.buckets[bucket];
    this.buckets[bucket] = entry;
  }

  /** Buckets for exactly these tables, as many as they need. */
  private rebuild(kept: readonly KeptTable[]): void {
    let size = MIN_BUCKETS;
    while (kept.length > size * LOAD) size *= 2;
    this.buckets = emptyBuckets(size);
    for (const entry of kept) this.link(entry);
  }

  private use(entry: KeptTable): void {
    if (entry.used === this.collection) return;
    entry.used = this.collection;
    this.usedNow += 1;
  }

  /**
   * Ends a collection: when most rows were not used by it (tables dropped, or out of the
   * tables.limit selection), those are forgotten, so the rows kept stay about as many as exported.
   */
  endCollection(): void {
    if (this.count > 2 * this.usedNow + 100) {
      this.rebuild([...this.entries()].filter((entry) => entry.used === this.collection));
      this.count = this.usedNow;
    }
    this.collection += 1;
    this.usedNow = 0;
  }

  /** How many rows are kept. */
  get size(): number {
    return this.count;
  }
}

function emptyBuckets(size: number): (KeptTable | undefined)[] {
  return new Array<KeptTable | undefined>(size).fill(undefined);
}
