import t from 'tap';
import { ACTIONS } from '../../src/actions/registry.js';
import { inScope, refusal, screenScope, type Scope } from '../../src/actions/postgres-scope.js';
import type { Trigger } from '../../src/actions/contract.js';
import { testConfig } from './context.js';

const config = testConfig({
  targets: {
    postgres: [
      { name: 'main', url: 'postgres://upkeep@127.0.0.1:1/app', databases: ['app'], tables: { include: ['^public\\.', '^audit\\.events$'], exclude: ['^public\\.secrets$'] } },
      { name: 'auto', url: 'postgres://upkeep@127.0.0.1:1/app' },
    ],
  },
});
const scope = (changes: Partial<Scope> = {}): Scope => ({ target: 'main', database: 'app', outsideFilters: false, allowSystemCatalogs: false, ...changes });
const screen = (table: string | undefined, changes: Partial<Scope> = {}, trigger: Trigger = 'alert', index?: string) => {
  try {
    screenScope(config, trigger, scope(changes), { table, index });
    return null;
  } catch (err) {
    return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  }
};

t.test('the config alone refuses system schemas, tables outside the filters and unlisted databases', async (t) => {
  t.equal(screen('public.orders'), null);
  t.equal(screen('orders'), null, 'no schema means public');
  t.equal(screen('PUBLIC.orders'), null, 'the SQL reading is public.orders');
  t.equal(screen('audit.events'), null);
  t.equal(screen(undefined), null, 'no table: every table in scope');
  t.equal(screen('pg_catalog.pg_class'), 'ValidationError: pg_catalog.pg_class is in the system schema pg_catalog; upkeep acts only on user tables (a manual or CLI run can go further with allowSystemCatalogs: true)');
  t.match(screen('information_schema.tables'), /^ValidationError: information_schema\.tables is in the system schema information_schema;/);
  t.match(screen('pg_toast.pg_toast_1259'), /system schema pg_toast/);
  t.match(screen('pg_temp_3.scratch'), /system schema pg_temp_3/);
  t.equal(screen('public.secrets'), 'ValidationError: public.secrets is outside targets.postgres "main" tables.include/exclude (a manual or CLI run can go further with outsideFilters: true)');
  t.match(screen('audit.logins'), /audit\.logins is outside/, 'a schema the include patterns leave out');
  t.match(screen('PUBLIC.secrets'), /outside/, 'both readings of PUBLIC.secrets are excluded');
  t.equal(screen('"secrets"'), null, 'a table literally named "secrets" could be in scope: the catalog decides, and resolve refuses public.secrets');
  t.equal(screen('orders', { database: 'other' }), 'ValidationError: database "other" is not in targets.postgres "main" databases (app)');
  t.equal(screen('orders', { target: 'nope' }), 'ValidationError: unknown postgres target "nope"');
  // "a.b.c" may be (a, b.c) or (a.b, c): only the catalog knows, so the screen refuses only when every reading is refused.
  t.equal(screen('public.x.y'), null, 'public."x.y" may be a table in scope');
  t.match(screen('pg_catalog.x.y'), /system schema pg_catalog/);
  t.match(screen(undefined, {}, 'alert', 'pg_toast.pg_toast_1259_index'), /pg_toast\.pg_toast_1259_index is in the system schema pg_toast/);
  t.equal(screen(undefined, {}, 'alert', 'secrets_pkey'), null, 'an index\'s table is checked once the catalog names it');
});

t.test('manual and CLI runs go further only when their params say so; automatic runs never', async (t) => {
  t.equal(screen('pg_catalog.pg_class', { allowSystemCatalogs: true }, 'manual'), null);
  t.match(screen('public.secrets', { allowSystemCatalogs: true }, 'manual'), /outside/, 'allowSystemCatalogs does not widen the filters');
  t.equal(screen('public.secrets', { outsideFilters: true }, 'cli'), null);
  t.equal(screen('orders', { database: 'other', outsideFilters: true }, 'manual'), null, 'outsideFilters also reaches databases the target does not list');
  t.match(screen('pg_catalog.pg_class', { outsideFilters: true }, 'manual'), /system schema/, 'outsideFilters does not reach system catalogs');
  t.match(screen('orders', { target: 'nope', outsideFilters: true }, 'manual'), /unknown postgres target "nope"/);
  for (const trigger of ['alert', 'schedule'] as const) {
    t.equal(screen('public.orders', { outsideFilters: true }, trigger),
      `ValidationError: outsideFilters and allowSystemCatalogs are for manual and CLI runs only; ${trigger === 'alert' ? 'an alert' : 'a schedule'} run acts only on what targets.postgres "main" watches`);
    t.match(screen('public.orders', { allowSystemCatalogs: true }, trigger), /for manual and CLI runs only/);
  }
  t.equal(screen('orders', { target: 'auto', database: 'anything' }), null, 'databases: auto is checked against discovery when the run resolves');
});

t.test('resolved relations and listings', async (t) => {
  t.equal(refusal(config, scope(), { schema: 'public', name: 'orders' }), null);
  t.match(refusal(config, scope(), { schema: 'public', name: 'secrets' }), /outside/);
  t.equal(refusal(config, scope({ allowSystemCatalogs: true }), { schema: 'pg_catalog', name: 'pg_class' }), null);
  const listed = [{ schema: 'public', name: 'orders' }, { schema: 'public', name: 'secrets' }, { schema: 'pg_temp_3', name: 'x' }, { schema: 'audit', name: 'events' }, { schema: 'other', name: 't' }];
  t.same(listed.filter(inScope(config, scope())).map((table) => `${table.schema}.${table.name}`), ['public.orders', 'audit.events']);
  t.same(listed.filter(inScope(config, scope({ outsideFilters: true, allowSystemCatalogs: true }))).map((table) => `${table.schema}.${table.name}`),
    ['public.orders', 'public.secrets', 'audit.events', 'other.t'], 'a listing never includes system catalogs: name one to act on it');
});

t.test('every Postgres table remediation screens its params; retention only declared policies', async (t) => {
  const action = (name: string) => {
    const found = ACTIONS.find((candidate) => candidate.name === name);
    if (!found) throw new Error(name);
    return found;
  };
  const screened = (name: string, params: Record<string, unknown>, trigger: Trigger = 'alert') => {
    const found = action(name);
    try {
      found.screen?.(found.params.parse(params), config, trigger);
      return null;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  };
  for (const name of ['postgres.vacuum', 'postgres.analyze', 'postgres.reindex']) {
    t.match(screened(name, { target: 'main', database: 'app', table: 'pg_catalog.pg_class' }), /system schema/, name);
    t.match(screened(name, { target: 'main', database: 'app', table: 'public.secrets' }), /outside/, name);
    t.match(screened(name, { target: 'main', database: 'postgres', table: 'orders' }), /not in targets\.postgres "main" databases/, name);
    t.match(screened(name, { target: 'main', database: 'app', table: 'orders', outsideFilters: 'true' }), /manual and CLI runs only/, `${name}: text flags count too`);
    t.equal(screened(name, { target: 'main', database: 'app', table: 'orders' }), null, name);
  }
  t.match(screened('postgres.reindex', { target: 'main', database: 'app', index: 'pg_catalog.pg_class_oid_index', allowSystemCatalogs: true }), /manual and CLI runs only/);
  t.match(screened('postgres.retention', { table: 'public.orders' }), /not declared in remediation\.retention/);
});
