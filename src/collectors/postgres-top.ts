import { tableFilter, type TablePatterns } from '../systems/postgres/watched.js';

/** A query whose rows come back as arrays of column values, in the SELECT's order. */
export interface ArrayQuery {
  readonly text: string;
  readonly values: unknown[];
  readonly rowMode: 'array';
}

/** What the top-N readers need of a pool (pg.Pool fits; a test can wrap one to count rows). */
export interface Queryable {
  query(query: ArrayQuery): Promise<{ rows: unknown[] }>;
}

/**
 * One row of an array-mode result, checked column by column: thousands of rows a scrape are read
 * this way instead of through a row object and a validated copy of it (most of the collection's
 * garbage, and its time).
 */
export class ArrayRow {
  private constructor(private readonly values: readonly unknown[], private readonly columns: readonly string[]) {}

  /** The rows of a result, each checked to have the columns named. */
  static all(rows: readonly unknown[], columns: readonly string[]): ArrayRow[] {
    return rows.map((row) => {
      if (!Array.isArray(row) || row.length !== columns.length) throw new Error(`expected rows of ${columns.length} columns (${columns.join(', ')})`);
      return new ArrayRow(row, columns);
    });
  }

  text(i: number): string {
    const value = this.values[i];
    if (typeof value !== 'string') throw new Error(`column ${this.columns[i]}: expected text, got ${typeof value}`);
    return value;
  }

  number(i: number): number {
    const value = this.values[i];
    if (typeof value !== 'number') throw new Error(`column ${this.columns[i]}: expected a number, got ${value === null ? 'null' : typeof value}`);
    return value;
  }

  numberOrNull(i: number): number | null {
    return this.values[i] === null ? null : this.number(i);
  }
}

/** A per-table row ranked by one number, highest first. */
export interface RankedRow {
  readonly schema: string;
  readonly table: string;
}

/**
 * Where a top-N query resumes: rows after ($2 key, $3 schema, $4 table) in the order
 * "key DESC, schema, table" (names in the "C" collation, the code-point order the JavaScript
 * selectors use to break ties). $2 is NULL on the first page.
 */
export function afterCursor(key: string): string {
  return `($2::float8 IS NULL OR ${key} < $2::float8 OR (${key} = $2::float8 AND (schema, "table") > ($3::text, $4::text)))`;
}

/**
 * Reads the top `limit` rows of one database that the include/exclude patterns admit, in pages of
 * `limit` rows ranked by the query itself (ORDER BY key DESC, schema, table LIMIT $1), so a catalog
 * past the limit costs no more rows than the limit when the patterns admit most tables. The patterns
 * are JavaScript regexes, so they are applied here, not in SQL: a page they thin out is followed by
 * the next one. `sql` takes $1 = page size, $2..$4 = the cursor (see afterCursor), then `extra`.
 */
export async function readTop<T extends RankedRow>(
  pool: Queryable,
  sql: string,
  parse: (rows: unknown[]) => T[],
  key: (row: T) => number,
  filter: TablePatterns & { readonly limit: number },
  extra: readonly unknown[] = [],
): Promise<T[]> {
  const admitted = tableFilter(filter);
  const kept: T[] = [];
  // Pages are separate statements, so a table whose key moved between two of them could come twice.
  const seen = new Set<string>();
  let after: T | undefined;
  for (;;) {
    const cursor = after ? [key(after), after.schema, after.table] : [null, null, null];
    const page = parse((await pool.query({ text: sql, values: [filter.limit, ...cursor, ...extra], rowMode: 'array' })).rows);
    for (const row of page) {
      const name = `${row.schema}\u0000${row.table}`;
      if (seen.has(name) || !admitted(row.schema, row.table)) continue;
      seen.add(name);
      kept.push(row);
      if (kept.length === filter.limit) return kept;
    }
    after = page.at(-1);
    if (page.length < filter.limit || !after) return kept;
  }
}
