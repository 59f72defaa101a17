/**
 * Pure SQL text building for the Postgres remediations. Every identifier placed in SQL comes from
 * the live catalog (never straight from a label) and is quoted here.
 */
export interface QualifiedName {
  readonly schema: string;
  readonly name: string;
}

/** Quotes an identifier the way PostgreSQL's quote_ident / format('%I') does, always. */
export function quoteIdent(identifier: string): string {
  if (identifier.includes('\u0000')) throw new Error('identifier contains a NUL byte');
  return `"${identifier.replace(/"/g, '""')}"`;
}

export function qualified(name: QualifiedName): string {
  return `${quoteIdent(name.schema)}.${quoteIdent(name.name)}`;
}

/** A timestamp literal we produced ourselves (an ISO string), for plans that must show the exact SQL. */
export function timestampLiteral(at: Date): string {
  return `'${at.toISOString()}'::timestamptz`;
}

/**
 * Every way "a.b.c" splits into (schema, name). Both may contain dots, so the catalog decides
 * which split exists; text without a dot means the public schema.
 */
export function nameCandidates(text: string): QualifiedName[] {
  const candidates: QualifiedName[] = [];
  for (let index = text.indexOf('.'); index > 0; index = text.indexOf('.', index + 1)) {
    if (index < text.length - 1) candidates.push({ schema: text.slice(0, index), name: text.slice(index + 1) });
  }
  if (candidates.length === 0) candidates.push({ schema: 'public', name: text });
  return candidates;
}

export function vacuumStatement(table: QualifiedName, options: { full: boolean; analyze: boolean }): string {
  const flags = [options.full ? 'FULL' : null, options.analyze ? 'ANALYZE' : null].filter((flag) => flag !== null);
  return `VACUUM ${flags.length > 0 ? `(${flags.join(', ')}) ` : ''}${qualified(table)}`;
}

export function analyzeStatement(table: QualifiedName): string {
  return `ANALYZE ${qualified(table)}`;
}

export type ReindexScope = { kind: 'index' | 'table'; name: QualifiedName } | { kind: 'database'; database: string };

export function reindexStatement(scope: ReindexScope, concurrently: boolean): string {
  const how = concurrently ? ' CONCURRENTLY' : '';
  if (scope.kind === 'database') return `REINDEX DATABASE${how} ${quoteIdent(scope.database)}`;
  return `REINDEX ${scope.kind.toUpperCase()}${how} ${qualified(scope.name)}`;
}

export interface RetentionSql {
  /** Delete mode: one statement per batch. */
  readonly deleteBatch: string;
  /** Archive mode: these run in one transaction per batch, with $1 the ctids selected by `selectBatch`. */
  readonly selectBatch: string;
  readonly insertArchive: string;
  readonly deleteSelected: string;
  /** Rows still older than the cutoff (0 after a complete run). */
  readonly countOlder: string;
}

export function retentionSql(options: {
  table: QualifiedName; archive: QualifiedName | null; columns: readonly string[]; timestampColumn: string;
  cutoff: Date; batchSize: number; where?: string | undefined;
}): RetentionSql {
  const table = qualified(options.table);
  // `where` is operator-written SQL from the config file (e.g. "deleted_at IS NOT NULL"), never from a label.
  const older = `${quoteIdent(options.timestampColumn)} < ${timestampLiteral(options.cutoff)}${options.where ? ` AND (${options.where})` : ''}`;
  const columns = options.columns.map(quoteIdent).join(', ');
  return {
    deleteBatch: `DELETE FROM ${table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${table} WHERE ${older} LIMIT ${options.batchSize}))`,
    selectBatch: `SELECT ctid::text AS tid FROM ${table} WHERE ${older} LIMIT ${options.batchSize} FOR UPDATE`,
    insertArchive: options.archive
      ? `INSERT INTO ${qualified(options.archive)} (${columns}) SELECT ${columns} FROM ${table} WHERE ctid = ANY ($1::tid[])`
      : '',
    deleteSelected: `DELETE FROM ${table} WHERE ctid = ANY ($1::tid[])`,
    countOlder: `SELECT count(*)::bigint AS rows FROM ${table} WHERE ${older}`,
  };
}
