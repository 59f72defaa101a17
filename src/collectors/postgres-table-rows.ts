import { blockRow } from './framework/block.js';
import type { BlockRow } from './framework/types.js';
import type { TableName } from './postgres-table-columns.js';

const TABLE = ['target', 'database', 'schema', 'table'];

/** An exported table: its names and its label row, kept. */
class KeptTable implements TableName {
  constructor(readonly owner: TableRows, readonly schema: string, readonly table: string, readonly row: BlockRow, public used: number) {}
}

/**
 * The label rows of one database's tables (target, database, schema, table and their exposition
 * text), made the first time a table is exported and kept while it is: a collection of 10,000
 * tables then makes no label string or text of its own, and what it publishes (kept until the next
 * scrape, long enough to be promoted to the old generation) is a few typed arrays and references.
 * The kept names also stand for the names a reading returns (`find`), so a reading holds no
 * strings of its own between its queries' round trips.
 */
export class TableRows {
  private rows = new Map<string, Map<string, KeptTable>>();
  private count = 0;
  private collection = 0;
  private usedNow = 0;

  constructor(private readonly target: string, private readonly database: string) {}

  /** The kept names of a table exported before (not marked as used), or undefined. */
  find(schema: string, table: string): TableName | undefined {
    return this.rows.get(schema)?.get(table);
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
    let tables = this.rows.get(schema);
    if (!tables) {
      tables = new Map();
      this.rows.set(schema, tables);
    }
    let entry = tables.get(table);
    if (!entry) {
      entry = new KeptTable(this, schema, table, blockRow(TABLE, [this.target, this.database, schema, table]), -1);
      tables.set(table, entry);
      this.count += 1;
    }
    this.use(entry);
    return entry.row;
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
      for (const [schema, tables] of this.rows) {
        for (const [table, entry] of tables) if (entry.used !== this.collection) tables.delete(table);
        if (tables.size === 0) this.rows.delete(schema);
      }
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
