import type { Config, PostgresTarget } from '../config/schema.js';
import { discoverDatabases, isSystemSchema, tableFilter, urlDatabase } from '../systems/postgres/watched.js';
import { flag } from './params.js';
import { findRelation, type Relation } from '../systems/postgres/catalog.js';
import { where, withClient } from './postgres-session.js';
import type pg from 'pg';
import { nameReadings, qualified, type QualifiedName } from '../systems/postgres/sql.js';
import { once, type ActionContext, type Trigger } from './contract.js';
import { ValidationError } from '../errors.js';

/**
 * What a Postgres remediation may touch. By default: the databases its target watches and, in
 * them, user tables inside the target's tables.include/exclude, exactly what the collector
 * measures. A manual or CLI run may go further only when its params say so.
 */
export const scopeParams = {
  /** Tables outside tables.include/exclude, and databases the target does not watch. */
  outsideFilters: flag(false),
  /** pg_catalog, information_schema, pg_toast and the temporary schemas. */
  allowSystemCatalogs: flag(false),
};

export interface Scope {
  readonly target: string;
  readonly database: string;
  readonly outsideFilters: boolean;
  readonly allowSystemCatalogs: boolean;
}

const FURTHER = 'a manual or CLI run can go further with';

export function postgresTarget(config: Readonly<Config>, target: string): PostgresTarget {
  const entry = config.targets.postgres.find((candidate) => candidate.name === target);
  if (!entry) throw new ValidationError(`unknown postgres target ${JSON.stringify(target)}`);
  return entry;
}

/** A configured target, and a database it lists (any database, when it lists none). */
export function checkTarget(config: Readonly<Config>, target: string, database: string): void {
  const entry = postgresTarget(config, target);
  if (entry.databases !== 'auto' && !entry.databases.includes(database)) {
    throw new ValidationError(`database ${JSON.stringify(database)} is not in targets.postgres "${target}" databases (${entry.databases.join(', ')})`);
  }
}

/** Whether a table (or an index's table) is inside the scope; the refusal's reason when it is not. */
export function refusal(config: Readonly<Config>, scope: Scope, table: QualifiedName): string | null {
  const name = `${table.schema}.${table.name}`;
  if (isSystemSchema(table.schema)) {
    return scope.allowSystemCatalogs ? null : `${name} is in the system schema ${table.schema}; upkeep acts only on user tables (${FURTHER} allowSystemCatalogs: true)`;
  }
  if (scope.outsideFilters || tableFilter(postgresTarget(config, scope.target).tables)(table.schema, table.name)) return null;
  return `${name} is outside targets.postgres "${scope.target}" tables.include/exclude (${FURTHER} outsideFilters: true)`;
}

/**
 * What the config alone refuses, before anything connects: the widening flags on an automatic
 * run, a database the target does not list, and a table (or index) every reading of which is
 * refused. An index's table is only known to the catalog, so for an index only its schema counts.
 */
export function screenScope(config: Readonly<Config>, trigger: Trigger, scope: Scope, names: { table?: string | undefined; index?: string | undefined } = {}): void {
  if ((trigger === 'alert' || trigger === 'schedule') && (scope.outsideFilters || scope.allowSystemCatalogs)) {
    throw new ValidationError(`outsideFilters and allowSystemCatalogs are for manual and CLI runs only; ${trigger === 'alert' ? 'an alert' : 'a schedule'} run acts only on what targets.postgres "${scope.target}" watches`);
  }
  if (scope.outsideFilters) postgresTarget(config, scope.target);
  else checkTarget(config, scope.target, scope.database);
  const refusals = [
    ...(names.table === undefined ? [] : [nameReadings(names.table).map((reading) => refusal(config, scope, reading))]),
    ...(names.index === undefined ? [] : [nameReadings(names.index).map((reading) => refusal(config, { ...scope, outsideFilters: true }, reading))]),
  ];
  for (const reasons of refusals) {
    const [first] = reasons;
    if (first && reasons.every((reason) => reason !== null)) throw new ValidationError(first);
  }
}

/** Throws when the resolved relation is outside the scope. */
export function requireInScope(config: Readonly<Config>, scope: Scope, table: QualifiedName): void {
  const reason = refusal(config, scope, table);
  if (reason !== null) throw new ValidationError(reason);
}

/**
 * With `databases: auto`, the databases discovery finds (connectable, not templates), asked on the
 * target's own database, so a label naming template0 or a database upkeep may not enter is
 * refused before anything connects to it.
 */
export async function requireWatchedDatabase(context: ActionContext, scope: Scope): Promise<void> {
  const entry = postgresTarget(context.config, scope.target);
  if (entry.databases !== 'auto' || scope.outsideFilters) return;
  const found = await watchedDatabases(context, scope.target, entry, scope.database);
  if (!found.includes(scope.database)) {
    throw new ValidationError(`database ${JSON.stringify(scope.database)} is not watched by targets.postgres "${scope.target}" (databases: auto watches the databases that exist, accept connections, are not templates and grant upkeep CONNECT; ${FURTHER} outsideFilters: true)`);
  }
}

// What `databases: auto` found lately, per target and URL, for dry runs (see watchedDatabases).
const discovered = new Map<string, { readonly at: number; readonly databases: Promise<string[]> }>();

/**
 * The databases a target watches now. A dry run (which changes nothing) may accept a database on
 * a discovery at most discoverRefreshSeconds old, the collector's own freshness, instead of asking
 * the server each time: at 1,000 alerts a second that query was a fifth of a dry run's
 * statements. A database missing from it is asked about afresh before it is refused, so a
 * database created since is not refused; one dropped since fails when the run connects to it.
 */
async function watchedDatabases(context: ActionContext, target: string, entry: PostgresTarget, wanted: string): Promise<string[]> {
  const ask = async () => {
    const client = await context.connections.postgres(target, urlDatabase(entry.url));
    try {
      return await discoverDatabases(client);
    } finally {
      await client.end();
    }
  };
  if (!context.dryRun) return ask();
  const key = `${target}\u0000${entry.url}`;
  const kept = discovered.get(key);
  if (kept && context.now() - kept.at < entry.discoverRefreshSeconds * 1000) {
    const databases = await kept.databases.catch((): string[] => []);
    if (databases.includes(wanted)) return databases;
  }
  const databases = ask();
  discovered.set(key, { at: context.now(), databases });
  databases.catch(() => { if (discovered.get(key)?.databases === databases) discovered.delete(key); });
  return databases;
}

/** The filter for listing tables (vacuum of every table, reindex of a database): user tables inside the scope. */
export function inScope(config: Readonly<Config>, scope: Scope): (table: QualifiedName) => boolean {
  const admitted = tableFilter(postgresTarget(config, scope.target).tables);
  return (table) => !isSystemSchema(table.schema) && (scope.outsideFilters || admitted(table.schema, table.name));
}

/** The run's target and database, checked again here so an action is safe even when called without the engine's screen. */
export async function resolveScope(scope: Scope, context: ActionContext): Promise<void> {
  screenScope(context.config, context.trigger, scope);
  await requireWatchedDatabase(context, scope);
}

/**
 * The table `text` names in the run's database. A dry run, resolved, checked and planned in one
 * go, looks it up once per name: check and plan find it under the name resolve gave back. Only
 * which table it is is kept; its statistics are read by each step. A real run looks again at
 * each step, because while it waits for its lock the table may be renamed or replaced.
 */
export function findTable(client: pg.Client, scope: Scope, text: string, context: ActionContext): Promise<Relation> {
  if (!context.dryRun) return findRelation(client, text, 'table', where(scope));
  // Looked up with the dry runs asking at the same moment, where they share their reads.
  const shared = context.connections.catalogReads(scope.target, scope.database);
  return once(context, tableKey(scope, text), () => (shared ? shared.findTable(text, where(scope)) : findRelation(client, text, 'table', where(scope))));
}

function tableKey(scope: Scope, text: string): string {
  return `table:${scope.target}/${scope.database}/${text}`;
}

/** A table named by untrusted text, found in the catalog and inside the run's scope. */
export async function resolveTable(scope: Scope, text: string, context: ActionContext): Promise<Relation> {
  await resolveScope(scope, context);
  const relation = await withClient(context, scope.target, scope.database, (client) => findTable(client, scope, text, context));
  requireInScope(context.config, scope, relation);
  // Resolve hands the later steps the catalog's own spelling: that name is this table too.
  if (context.dryRun) void once(context, tableKey(scope, qualified(relation)), () => Promise.resolve(relation));
  return relation;
}
