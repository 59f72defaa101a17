import type pg from 'pg';
import { postgresDriver } from '../lazy.js';
import type { NamedStatement } from '../systems/postgres/prepared.js';
import { tableFilter } from '../systems/postgres/watched.js';
import type { TableColumns, TopFilter } from './postgres-table-columns.js';

/** A query whose rows come back as arrays of column values, in the SELECT's order. */
export interface ArrayQuery {
  /** A named statement is planned once per session (the collectors' sessions outlive their scrapes). */
  readonly name?: string;
  readonly text: string;
  readonly values: unknown[];
  readonly rowMode: 'array';
}

/** Where the per-table queries run: each row is handed to `row` as the driver parses it, and none is kept. */
export interface RowStream {
  each(query: ArrayQuery, row: (values: unknown) => void): Promise<void>;
}

/**
 * A pool's rows as they arrive: a query with a `row` listener (and no callback) makes pg keep no
 * result rows, so a reading costs its columns, not the driver's rows and a copy of them.
 */
export function poolRows(pool: pg.Pool): RowStream {
  return {
    async each(config, row) {
      const client = await pool.connect();
      // After a server or connection error the client may be broken: discard it rather than reuse it.
      let broken = false;
      try {
        await new Promise<void>((resolve, reject) => {
          const query = new (postgresDriver().Query)(config);
          // A listener's throw would escape into the driver's socket handler: keep the first
          // error, skip the remaining rows, and fail once the server is done with the query.
          let refused: { readonly err: unknown } | null = null;
          query.on('row', (values: unknown) => {
            if (refused) return;
            try {
              row(values);
            } catch (err) {
              refused = { err };
            }
          });
          query.on('end', () => (refused ? reject(refused.err) : resolve()));
          query.on('error', (err) => {
            broken = true;
            reject(err);
          });
          client.query(query);
        });
      } finally {
        client.release(broken);
      }
    },
  };
}

/**
 * Where a top-N query resumes: rows after ($2 key, $3 schema, $4 table) in the order
 * "key DESC, schema, table" (names in the "C" collation, the code-point order the JavaScript
 * selection uses to break ties). $2 is NULL on the first page.
 */
export function afterCursor(key: string): string {
  return `($2::float8 IS NULL OR ${key} < $2::float8 OR (${key} = $2::float8 AND (schema, "table") > ($3::text, $4::text)))`;
}

/**
 * Reads the top `limit` rows of one database that the include/exclude patterns admit into
 * `reading`, in pages of `limit` rows ranked by the query itself (ORDER BY key DESC, schema, table
 * LIMIT $1), so a catalog past the limit costs no more rows than the limit when the patterns admit
 * most tables. The patterns are JavaScript regexes, so they are applied here, not in SQL: a page
 * they thin out is followed by the next one. `statement` takes $1 = page size, $2..$4 = the cursor (see
 * afterCursor), then `extra`; it returns schema, table and the reading's columns, `key` among them.
 */
export async function readTop(stream: RowStream, statement: NamedStatement, reading: TableColumns, key: string, filter: TopFilter, extra: readonly unknown[] = []): Promise<void> {
  const admitted = tableFilter(filter);
  const keyColumn = reading.index(key);
  // Pages are separate statements, so a table whose key moved between two of them could come
  // twice; one statement returns a table once, so the names are only kept from the second page on.
  let seen: Set<string> | null = null;
  // The last row of the page (admitted or not) is where the next page starts.
  const page = { rows: 0, key: 0, schema: '', table: '' };
  let after: unknown[] = [null, null, null];
  for (;;) {
    page.rows = 0;
    const known = seen;
    await stream.each({ ...statement, values: [filter.limit, ...after, ...extra], rowMode: 'array' }, (values) => {
      page.rows += 1;
      if (reading.length === filter.limit) return;
      const added = reading.length;
      reading.push(values);
      const { schema, table } = reading.name(added);
      page.key = reading.value(added, keyColumn);
      page.schema = schema;
      page.table = table;
      let keep = admitted(schema, table);
      if (keep && known) {
        const id = `${schema}\u0000${table}`;
        keep = !known.has(id);
        known.add(id);
      }
      if (!keep) reading.pop();
    });
    if (reading.length === filter.limit || page.rows < filter.limit) return;
    seen ??= new Set(reading.names.map((name) => `${name.schema}\u0000${name.table}`));
    after = [page.key, page.schema, page.table];
  }
}
