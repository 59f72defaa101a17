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

// One identifier as SQL reads it: "quoted" (exact, "" for a quote) or unquoted (folded to lower case).
const SQL_IDENTIFIER = /"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)/y;

/**
 * "schema.table" read the way PostgreSQL reads it: `PUBLIC.Orders` is public.orders, `"Odd.Name"`
 * is one name. No schema means public; null when the text is not one or two SQL identifiers.
 */
export function sqlName(text: string): QualifiedName | null {
  const parts: string[] = [];
  for (let index = 0; ;) {
    SQL_IDENTIFIER.lastIndex = index;
    const match = SQL_IDENTIFIER.exec(text);
    if (!match) return null;
    parts.push(match[1] !== undefined ? match[1].replace(/""/g, '"') : (match[2] ?? '').toLowerCase());
    index = SQL_IDENTIFIER.lastIndex;
    if (index === text.length) break;
    if (text[index] !== '.' || parts.length === 2) return null;
    index += 1;
  }
  const [first = '', second] = parts;
  return second === undefined ? { schema: 'public', name: first } : { schema: first, name: second };
}

export interface NameReading extends QualifiedName {
  /** A literal split of the text (preferred), rather than its SQL reading. */
  readonly literal: boolean;
}

/** Every (schema, name) a text may mean: its literal splits, then its SQL reading when that differs. */
export function nameReadings(text: string): NameReading[] {
  const readings: NameReading[] = nameCandidates(text).map((name) => ({ ...name, literal: true }));
  const sql = sqlName(text);
  if (sql && !readings.some((reading) => reading.schema === sql.schema && reading.name === sql.name)) readings.push({ ...sql, literal: false });
  return readings;
}

/** Whether two texts can name the same table (`events` and `public.events`, `"Ev"` and `public.Ev`). */
export function sameTable(declared: string, asked: string): boolean {
  const key = (text: string) => nameReadings(text).map((name) => `${name.schema}\u0000${name.name}`);
  return key(declared).some((candidate) => key(asked).includes(candidate));
}

export function vacuumStatement(table: QualifiedName, options: { full: boolean; freeze?: boolean; analyze: boolean }): string {
  const flags = [options.full ? 'FULL' : null, options.freeze === true ? 'FREEZE' : null, options.analyze ? 'ANALYZE' : null].filter((flag) => flag !== null);
  return `VACUUM ${flags.length > 0 ? `(${flags.join(', ')}) ` : ''}${qualified(table)}`;
}

export function analyzeStatement(table: QualifiedName): string {
  return `ANALYZE ${qualified(table)}`;
}

export interface ReindexTarget { readonly kind: 'index' | 'table'; readonly name: QualifiedName }

// There is no REINDEX DATABASE: it cannot leave out the tables a target's filters exclude, and on
// PostgreSQL 15 and older it also rebuilds the system catalogs' indexes.
export function reindexStatement(target: ReindexTarget, concurrently: boolean): string {
  return `REINDEX ${target.kind.toUpperCase()}${concurrently ? ' CONCURRENTLY' : ''} ${qualified(target.name)}`;
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
