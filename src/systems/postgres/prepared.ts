import type pg from 'pg';

/**
 * A catalog read that runs as a named prepared statement, so PostgreSQL plans it once per session
 * instead of at every call: sessions live on in the pools (dry runs, collectors), and planning
 * was most of what these reads cost the server. The horizon holders' query planned for 3.4 ms and
 * ran for 1.5 ms; under pgbench it went from 386 to 19,720 a second prepared (docs/performance.md,
 * "Webhook benchmark"). A one-off session pays what an unnamed statement does: the Parse is sent
 * with the Bind either way. pg allows one text per name in a session, so each name keeps its text.
 */
export function prepared(name: string, text: string): (values?: unknown[]) => pg.QueryConfig {
  const statement = named(name, text);
  return (values) => ({ ...statement, ...(values ? { values } : {}) });
}

/** A statement's name and text, for a caller that builds its own query config (the collectors' row streams). */
export interface NamedStatement {
  readonly name: string;
  readonly text: string;
}

export function named(name: string, text: string): NamedStatement {
  return { name: `upkeep_${name}`, text };
}
