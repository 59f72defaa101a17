import { errorMessage } from '../redact.js';
import { DataRowFields } from '../systems/postgres/data-row.js';
import { tableFilter, type TablePatterns } from '../systems/postgres/watched.js';
import { FRESH, type ArraySource } from './framework/array-pool.js';
import type { BlockColumn, Labels } from './framework/types.js';

/** A table, by schema and name. */
export interface TableName { readonly schema: string; readonly table: string }

/** A number column of a per-table query, after its schema and table columns. */
export interface StatColumn { readonly name: string; readonly nullable: boolean }

/**
 * One database's per-table rows of one query, as columns: a name per row and its numbers in one
 * Float64Array (NaN for NULL). Rows are pushed as the driver parses them, so a reading of 10,000
 * tables keeps no row array, no parsed object and, for tables exported before (`known`), no string
 * of its own across the round trips of the collection's other queries: what lives that long is
 * promoted to the old generation, and was most of a scrape's garbage.
 */
export class TableColumns {
  private count = 0;
  private readonly refs: TableName[] = [];
  private data: Float64Array;
  private readonly known: KnownNames;
  private readonly arrays: ArraySource;
  private fields: DataRowFields | undefined;

  constructor(readonly database: string, readonly columns: readonly StatColumn[], options: ReadingOptions = {}) {
    this.known = options.known ?? NONE_KNOWN;
    this.arrays = options.arrays ?? FRESH;
    // Sized for the rows the last reading had (and a few more), so the columns are allocated once:
    // grown by doubling from a small start, a reading of 3,400 tables left as much again in
    // discarded arrays, outside the heap, promoted with the reading and freed only by a full
    // collection (docs/performance.md, "Idle and peak memory").
    this.data = this.arrays.take(columns.length * Math.max(64, Math.ceil((options.expectedRows ?? 0) * 1.05) + 16));
  }

  get length(): number {
    return this.count;
  }

  /** The names of the rows, in the order read. */
  get names(): readonly TableName[] {
    return this.refs;
  }

  /** The index of a column by its name. */
  index(name: string): number {
    const index = this.columns.findIndex((column) => column.name === name);
    if (index === -1) throw new Error(`no column ${name}`);
    return index;
  }

  name(row: number): TableName {
    return this.refs[row]!;
  }

  value(row: number, column: number): number {
    return this.data[row * this.columns.length + column]!;
  }

  /**
   * Adds one array-mode row ([schema, table, ...numbers]), checked column by column first, and the
   * kept name of its table when there is one (a new name object only for a table not seen before).
   */
  push(row: unknown): void {
    const width = this.columns.length;
    if (!Array.isArray(row) || row.length !== width + 2) throw this.wrongWidth();
    const values: readonly unknown[] = row;
    const [schema, table] = values;
    if (typeof schema !== 'string') throw new Error(`column schema: expected text, got ${typeof schema}`);
    if (typeof table !== 'string') throw new Error(`column table: expected text, got ${typeof table}`);
    for (let c = 0; c < width; c += 1) {
      const value = values[c + 2];
      if (typeof value === 'number' || (value === null && this.columns[c]!.nullable)) continue;
      throw new Error(`column ${this.columns[c]!.name}: expected a number, got ${value === null ? 'null' : typeof value}`);
    }
    const at = this.room();
    for (let c = 0; c < width; c += 1) this.data[at + c] = (values[c + 2] as number | null) ?? Number.NaN;
    this.add(this.known.find(schema, table) ?? { schema, table });
  }

  /**
   * Adds one row from its DataRow message (text format, the same columns as push), read in place:
   * no string is made for its numbers. Checked as push checks; a refused row leaves nothing.
   */
  pushMessage(bytes: Buffer, start: number, end: number): void {
    const width = this.columns.length;
    const fields = this.fields ??= new DataRowFields();
    if (fields.open(bytes, start, end) !== width + 2) throw this.wrongWidth();
    const schemaStart = fields.field();
    const schemaEnd = fields.end;
    if (schemaStart < 0) throw new Error('column schema: expected text, got null');
    const tableStart = fields.field();
    const tableEnd = fields.end;
    if (tableStart < 0) throw new Error('column table: expected text, got null');
    // Written past the last row until the row is whole, so a refused row leaves nothing behind.
    const at = this.room();
    for (let c = 0; c < width; c += 1) {
      const column = this.columns[c]!;
      let value: number;
      try {
        value = fields.number();
      } catch (err) {
        throw new Error(`column ${column.name}: ${errorMessage(err)}`);
      }
      if (fields.wasNull && !column.nullable) throw new Error(`column ${column.name}: expected a number, got null`);
      this.data[at + c] = value;
    }
    // A table exported before is found by its names' bytes: no string is made for it.
    this.add(this.known.findBytes(bytes, schemaStart, schemaEnd, tableStart, tableEnd)
      ?? { schema: bytes.toString('utf8', schemaStart, schemaEnd), table: bytes.toString('utf8', tableStart, tableEnd) });
  }

  private wrongWidth(): Error {
    return new Error(`expected rows of ${this.columns.length + 2} columns (${['schema', 'table', ...this.columns.map((column) => column.name)].join(', ')})`);
  }

  /** Where the next row's numbers go, the columns grown to hold it. */
  private room(): number {
    const width = this.columns.length;
    if ((this.count + 1) * width > this.data.length) {
      const grown = this.arrays.take(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    return this.count * width;
  }

  /** Ends a row, with its table's names. */
  private add(name: TableName): void {
    this.refs.push(name);
    this.count += 1;
  }

  /** Removes the last row (one the reader pushed, then refused). */
  pop(): void {
    this.refs.pop();
    this.count -= 1;
  }
}

/** The kept names of tables exported before (TableRows): a reading makes no name objects for them. */
export interface KnownNames {
  find(schema: string, table: string): TableName | undefined;
  /** The same, for names given as UTF-8 bytes. */
  findBytes(bytes: Uint8Array, schemaStart: number, schemaEnd: number, tableStart: number, tableEnd: number): TableName | undefined;
}

const NONE_KNOWN: KnownNames = { find: () => undefined, findBytes: () => undefined };

/** How a reading is made: see TableColumns. */
export interface ReadingOptions {
  readonly known?: KnownNames;
  /** The rows the last reading of this database had: the columns are sized for them once. */
  readonly expectedRows?: number;
  /** Where the columns' numbers are kept; the reading is read only until these are given back. */
  readonly arrays?: ArraySource;
}

/** Which rows a selection keeps: the include/exclude patterns, a minimum of the key, a limit. */
export interface TopFilter extends TablePatterns {
  readonly limit: number;
  readonly minimum?: number;
}

/** The rows of several databases' readings that a selection kept, in order. */
export class Selection {
  constructor(private readonly readings: readonly TableColumns[], private readonly readingOf: Float64Array, private readonly rowOf: Float64Array, readonly length: number,
    private readonly published: ArraySource = FRESH) {}

  database(i: number): string {
    return this.readings[this.readingOf[i]!]!.database;
  }

  name(i: number): TableName {
    return this.readings[this.readingOf[i]!]!.name(this.rowOf[i]!);
  }

  /** A column of the selected rows (NaN: no series), by the column's name or from `value`. */
  column(family: string, value: string | ((i: number) => number | undefined), labels?: Labels): BlockColumn {
    const values = this.published.take(this.length);
    if (typeof value === 'string') {
      const indexes = this.readings.map((reading) => reading.index(value));
      for (let i = 0; i < this.length; i += 1) values[i] = this.readings[this.readingOf[i]!]!.value(this.rowOf[i]!, indexes[this.readingOf[i]!]!);
    } else {
      for (let i = 0; i < this.length; i += 1) values[i] = value(i) ?? Number.NaN;
    }
    return labels ? { family, labels, values } : { family, values };
  }
}

/**
 * Where a selection keeps its numbers (FRESH arrays when not given): its row indexes in `scratch`,
 * read only while the selection is, and its columns in `published`, read as long as they are.
 * Indexes are kept as doubles too, so that one pool of Float64Arrays serves them all.
 */
export interface SelectionArrays {
  readonly scratch: ArraySource;
  readonly published: ArraySource;
}

/**
 * Selects across databases' readings: rows the patterns admit, with at least `minimum` in the key
 * column, the top `limit` by key, ties by database, schema and table name (code-point order), so
 * the series set is stable between scrapes.
 */
export function selectTop(readings: readonly TableColumns[], key: string, filter: TopFilter, arrays: SelectionArrays = { scratch: FRESH, published: FRESH }): Selection {
  const admitted = tableFilter(filter);
  const minimum = filter.minimum ?? Number.NEGATIVE_INFINITY;
  const total = readings.reduce((sum, reading) => sum + reading.length, 0);
  const readingOf = arrays.scratch.take(total);
  const rowOf = arrays.scratch.take(total);
  const keys = arrays.scratch.take(total);
  let count = 0;
  readings.forEach((reading, r) => {
    const column = reading.index(key);
    for (let row = 0; row < reading.length; row += 1) {
      const value = reading.value(row, column);
      const name = reading.name(row);
      if (!(value >= minimum) || !admitted(name.schema, name.table)) continue;
      readingOf[count] = r;
      rowOf[count] = row;
      keys[count] = value;
      count += 1;
    }
  });
  const order: number[] = [];
  for (let i = 0; i < count; i += 1) order.push(i);
  // Highest key first; -1/0/1 rather than a difference, which would be a heap number per comparison.
  order.sort((a, b) => compareKeys(keys[b]!, keys[a]!)
    || compare(readings[readingOf[a]!]!.database, readings[readingOf[b]!]!.database)
    || compareNames(readings[readingOf[a]!]!.name(rowOf[a]!), readings[readingOf[b]!]!.name(rowOf[b]!)));
  const kept = Math.min(count, filter.limit);
  const keptReading = arrays.scratch.take(kept);
  const keptRow = arrays.scratch.take(kept);
  for (let i = 0; i < kept; i += 1) {
    keptReading[i] = readingOf[order[i]!]!;
    keptRow[i] = rowOf[order[i]!]!;
  }
  return new Selection(readings, keptReading, keptRow, kept, arrays.published);
}

function compareKeys(a: number, b: number): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

function compareNames(a: TableName, b: TableName): number {
  return compare(a.schema, b.schema) || compare(a.table, b.table);
}

function compare(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}
