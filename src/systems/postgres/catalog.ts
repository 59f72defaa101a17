import type pg from 'pg';
import { z } from 'zod';
import { ValidationError } from '../../errors.js';
import { prepared } from './prepared.js';
import { nameReadings, type NameReading, type QualifiedName } from './sql.js';
import { onFirstUse } from '../../lazy-schema.js';

const pgError = onFirstUse(() => z.object({ code: z.string(), message: z.string() }));

export function pgErrorCode(err: unknown): string | undefined {
  const parsed = pgError.safeParse(err);
  return parsed.success ? parsed.data.code : undefined;
}

// Built once: zod compiles an object schema's parser on its first use, so one made per call compiles every time.
const relationRow = onFirstUse(() => z.object({ oid: z.number(), schema: z.string(), name: z.string(), literal: z.boolean() }));
// Each array holds its row's schema itself (unwrap builds it), so no row is parsed through a z.lazy.
const relationRows = onFirstUse(() => z.array(relationRow.unwrap()));
const plainRelation = onFirstUse(() => z.object({ oid: z.number(), schema: z.string(), name: z.string() }));
const plainRelations = onFirstUse(() => z.array(plainRelation.unwrap()));
const columnRows = onFirstUse(() => z.array(z.object({ attname: z.string() })));
const ageRow = onFirstUse(() => z.tuple([z.object({ age: z.number() })]));
export type Relation = QualifiedName & { readonly oid: number };

// relkinds: r table, p partitioned table, m materialized view, t TOAST table; i index, I partitioned index.
const RELKINDS = { table: ['r', 'p', 'm', 't'], index: ['i', 'I'] } as const;

const FIND_RELATION = prepared('find_relation', `
select distinct c.oid::int as oid, n.nspname as schema, c.relname as name, wanted.literal
  from unnest($1::text[], $2::text[], $3::boolean[]) as wanted(schema, name, literal)
  join pg_namespace n on n.nspname = wanted.schema
  join pg_class c on c.relnamespace = n.oid and c.relname = wanted.name
 where c.relkind = any($4::"char"[])`);

export type RelationRow = z.infer<typeof relationRow>;

/** The catalog's relations of `kind` that any of `readings` names, each with the reading's `literal`. */
async function relationsNamed(client: pg.Client, readings: readonly NameReading[], kind: 'table' | 'index'): Promise<RelationRow[]> {
  const result = await client.query(FIND_RELATION(
    [readings.map((reading) => reading.schema), readings.map((reading) => reading.name), readings.map((reading) => reading.literal), [...RELKINDS[kind]]],
  ));
  return relationRows.parse(result.rows);
}

/**
 * The one relation `text` names among the rows found for its readings: a literal reading wins
 * over the SQL one; none, or more than one, is refused.
 */
export function chooseRelation(text: string, kind: 'table' | 'index', where: string, found: readonly RelationRow[]): Relation {
  const literal = found.filter((row) => row.literal);
  const rows = literal.length > 0 ? literal : found;
  const [only] = rows;
  if (!only) throw new ValidationError(`${kind} ${JSON.stringify(text)} does not exist in ${where}`);
  if (rows.length > 1) throw new ValidationError(`${kind} ${JSON.stringify(text)} is ambiguous in ${where}: ${rows.map((row) => `${row.schema}.${row.name}`).join(', ')}`);
  return { oid: only.oid, schema: only.schema, name: only.name };
}

/**
 * Finds a table or index named by untrusted text in the live catalog. The text is only ever a
 * bind parameter here; what comes back are the catalog's own names, which the caller quotes.
 * A literal split of the text ("public.Orders") wins; its SQL reading (`PUBLIC."Orders"`) is
 * the fallback, so every spelling of one relation resolves to it.
 */
export async function findRelation(client: pg.Client, text: string, kind: 'table' | 'index', where: string): Promise<Relation> {
  return chooseRelation(text, kind, where, await relationsNamed(client, nameReadings(text), kind));
}

/**
 * findRelation() for several tables' texts in one statement: the rows found for each text's own
 * readings, for chooseRelation() to decide on.
 */
export async function tablesNamed(client: pg.Client, texts: readonly string[]): Promise<Map<string, RelationRow[]>> {
  const readings = new Map(texts.map((text) => [text, nameReadings(text)]));
  const rows = await relationsNamed(client, [...readings.values()].flat(), 'table');
  const same = (row: RelationRow, reading: NameReading) => row.schema === reading.schema && row.name === reading.name && row.literal === reading.literal;
  return new Map([...readings].map(([text, own]) => [text, rows.filter((row) => own.some((reading) => same(row, reading)))]));
}

const TABLE_OF_INDEX = prepared('table_of_index', `
select c.oid::int as oid, n.nspname as schema, c.relname as name
  from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
 where i.indexrelid = $1`);

/** The table an index belongs to. */
export async function tableOfIndex(client: pg.Client, index: Relation): Promise<Relation> {
  const result = await client.query(TABLE_OF_INDEX([index.oid]));
  // Every index has a table; a missing row would mean the index was dropped meanwhile, and fails the run.
  return plainRelation.parse(result.rows[0]);
}

const COLUMNS_OF = prepared('columns_of', 'select attname from pg_attribute where attrelid = $1 and attnum > 0 and not attisdropped order by attnum');

/** Column names of a relation, in order. */
export async function columnsOf(client: pg.Client, oid: number): Promise<string[]> {
  const result = await client.query(COLUMNS_OF([oid]));
  return columnRows.parse(result.rows).map((row) => row.attname);
}

const tableStats = onFirstUse(() => z.object({
  deadTuples: z.coerce.number(), vacuumCount: z.coerce.number(), analyzeCount: z.coerce.number(), filenode: z.coerce.number().nullable(),
  xidAge: z.number(),
  /** The relfrozenxid xidAge is the age of (the table's or its TOAST table's), as text: verify compares ages at one moment. */
  frozenXid: z.string().nullable(),
  /** The latest VACUUM or autovacuum of the table, epoch seconds. */
  lastVacuum: z.number().nullable(),
}));
export type TableStats = z.infer<typeof tableStats>;

// A table's VACUUM freezes its TOAST table too, so the older of the two is the table's age
// (as upkeep_postgres_table_xid_age reports it). Partitioned parents have no relfrozenxid: 0.
const XID_AGE = "case when c.relfrozenxid = '0'::xid then 0 else greatest(age(c.relfrozenxid), age(t.relfrozenxid)) end";

const OLDEST_TABLES = prepared('oldest_tables', `
select oid, schema, name from (
  select c.oid::int as oid, n.nspname as schema, c.relname as name, ${XID_AGE} as age
    from pg_class c join pg_namespace n on n.oid = c.relnamespace left join pg_class t on t.oid = c.reltoastrelid
   where c.relkind in ('r', 'm')) aged
 where age > $1 order by age desc, oid`);

/**
 * Plain tables and materialized views whose age(relfrozenxid) is over `minAge`, oldest first
 * (ties by oid, so a dry run and the run that follows list them in one order).
 */
export async function oldestTables(client: pg.Client, minAge: number): Promise<Relation[]> {
  const result = await client.query(OLDEST_TABLES([minAge]));
  return plainRelations.parse(result.rows);
}

const AGE_OF = prepared('age_of', 'select age($1::xid)::float8 as age');

/** age() of a transaction ID read earlier (statsOf's frozenXid), now. */
export async function ageOf(client: pg.Client, xid: string): Promise<number> {
  const result = await client.query(AGE_OF([xid]));
  return ageRow.parse(result.rows)[0].age;
}

const SNAPSHOT_AGE = prepared('snapshot_age', 'select coalesce(age(backend_xmin), 0)::float8 as age from pg_stat_activity where pid = pg_backend_pid()');

/**
 * The age of this session's own snapshot xmin: no VACUUM can freeze past it, so a table no older
 * than this is frozen as far as it can be.
 */
export async function snapshotAge(client: pg.Client): Promise<number> {
  const result = await client.query(SNAPSHOT_AGE());
  return ageRow.parse(result.rows)[0].age;
}

// A table's statistics and xid age, as statsOf() and statsOfMany() read them.
const STATS_COLUMNS = `
       n_dead_tup as "deadTuples", vacuum_count as "vacuumCount", analyze_count as "analyzeCount", pg_relation_filenode(relid) as filenode,
       extract(epoch from greatest(last_vacuum, last_autovacuum))::float8 as "lastVacuum",
       (select ${XID_AGE} from pg_class c left join pg_class t on t.oid = c.reltoastrelid where c.oid = relid)::float8 as "xidAge",
       (select case when c.relfrozenxid = '0'::xid then null when age(t.relfrozenxid) > age(c.relfrozenxid) then t.relfrozenxid else c.relfrozenxid end
          from pg_class c left join pg_class t on t.oid = c.reltoastrelid where c.oid = relid)::text as "frozenXid"`;

const STATS_OF = prepared('stats_of', `select ${STATS_COLUMNS} from pg_stat_all_tables where relid = $1`);
const STATS_OF_MANY = prepared('stats_of_many', `select relid::int as oid, ${STATS_COLUMNS} from pg_stat_all_tables where relid = any($1::oid[])`);

/** What statsOf() says of a table the statistics do not know (dropped since it was found). */
export const NO_STATS: Readonly<TableStats> = Object.freeze({ deadTuples: 0, vacuumCount: 0, analyzeCount: 0, filenode: null, xidAge: 0, frozenXid: null, lastVacuum: null });

export async function statsOf(client: pg.Client, oid: number): Promise<TableStats> {
  const result = await client.query(STATS_OF([oid]));
  const row = result.rows[0];
  return row === undefined ? NO_STATS : tableStats.parse(row);
}

const statsRows = onFirstUse(() => z.array(tableStats.unwrap().extend({ oid: z.number() })));

/** statsOf() for several tables in one statement, by oid; a table the statistics do not know is left out. */
export async function statsOfMany(client: pg.Client, oids: readonly number[]): Promise<Map<number, TableStats>> {
  const result = await client.query(STATS_OF_MANY([oids]));
  return new Map(statsRows.parse(result.rows).map(({ oid, ...stats }) => [oid, stats]));
}
