import type pg from 'pg';
import { postgresDriver } from '../lazy.js';
import { MessageSocket } from '../systems/postgres/message-socket.js';
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

/** Where a per-table query's rows go, one at a time, as they arrive; none is kept. */
export interface RowSink {
  /** A row as pg parsed it, an array of its column values (connections whose bytes pg reads itself: TLS). */
  row(values: unknown): void;
  /** A row as PostgreSQL sent it: the DataRow message bytes[start, end), read in place (DataRowFields). */
  message(bytes: Buffer, start: number, end: number): void;
}

/** Where the per-table queries run. */
export interface RowStream {
  each(query: ArrayQuery, sink: RowSink): Promise<void>;
}

/**
 * A pool's rows as they arrive: on a plain connection (a MessageSocket) the DataRow messages go
 * straight to the sink and pg parses none of them; otherwise a query with a `row` listener (and no
 * callback) makes pg keep no result rows. Either way a reading costs its columns, not the
 * driver's rows and a copy of them.
 */
export function poolRows(pool: pg.Pool): RowStream {
  return {
    async each(config, sink) {
      const client = await pool.connect();
      const socket = client.connection.stream;
      const messages = socket instanceof MessageSocket ? socket : null;
      // After a server or connection error the client may be broken: discard it rather than reuse it.
      let broken = false;
      try {
        await new Promise<void>((resolve, reject) => {
          const query = new (postgresDriver().Query)(config);
          // A sink's throw would escape into the driver's socket handler: keep the first error,
          // skip the remaining rows, and fail once the server is done with the query.
          let refused: { readonly err: unknown } | null = null;
          const take = (read: () => void): void => {
            if (refused) return;
            try {
              read();
            } catch (err) {
              refused = { err };
            }
          };
          if (messages) {
            // From when pg sends this query (the client may still be busy with one queued before
            // it, whose rows are not ours) until its end or error, before pg sends the next one.
            const submit = query.submit.bind(query);
            query.submit = (connection) => {
              messages.takeRows((bytes, start, end) => take(() => sink.message(bytes, start, end)));
              // pg's submit returns an error it did not send (a named statement's text changed),
              // and reports it through the query's error event; the typings say void.
              return submit(connection);
            };
          } else {
            query.on('row', (values: unknown) => take(() => sink.row(values)));
          }
          query.on('end', () => {
            messages?.takeRows(null);
            if (refused) reject(refused.err);
            else resolve();
          });
          query.on('error', (err) => {
            messages?.takeRows(null);
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
    // Counts a row of the page; whether the reading has room for it.
    const room = (): boolean => {
      page.rows += 1;
      return reading.length < filter.limit;
    };
    // Keeps the row just pushed if the patterns admit it and an earlier page did not have it.
    const added = (): void => {
      const row = reading.length - 1;
      const { schema, table } = reading.name(row);
      page.key = reading.value(row, keyColumn);
      page.schema = schema;
      page.table = table;
      let keep = admitted(schema, table);
      if (keep && known) {
        const id = `${schema}\u0000${table}`;
        keep = !known.has(id);
        known.add(id);
      }
      if (!keep) reading.pop();
    };
    await stream.each({ ...statement, values: [filter.limit, ...after, ...extra], rowMode: 'array' }, {
      row(values) {
        if (!room()) return;
        reading.push(values);
        added();
      },
      message(bytes, start, end) {
        if (!room()) return;
        reading.pushMessage(bytes, start, end);
        added();
      },
    });
    if (reading.length === filter.limit || page.rows < filter.limit) return;
    seen ??= new Set(reading.names.map((name) => `${name.schema}\u0000${name.table}`));
    after = [page.key, page.schema, page.table];
  }
}
