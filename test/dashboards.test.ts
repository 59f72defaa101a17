import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseConfig } from '../src/config/load.js';
import { bufferLogger } from './fixtures/log.js';
import { waitFor } from '../src/demo/servers/ports.js';
import { startPrometheus } from '../src/demo/servers/prometheus.js';
import { buildApp } from '../src/server.js';
import { serveExposition } from './fixtures/prometheus-exposition.js';

const root = new URL('..', import.meta.url).pathname;
const dashboardsDir = join(root, 'grafana/dashboards');
const DATASOURCE = '${datasource}';

const datasourceRef = z.object({ type: z.string(), uid: z.string() });
const target = z.object({ expr: z.string(), legendFormat: z.string().default(''), refId: z.string(), datasource: datasourceRef });
const panelSchema = z.object({
  id: z.number(),
  type: z.string(),
  title: z.string(),
  datasource: datasourceRef.optional(),
  gridPos: z.object({ h: z.number(), w: z.number(), x: z.number(), y: z.number() }),
  fieldConfig: z.object({ defaults: z.object({ unit: z.string().optional() }).passthrough() }).optional(),
  targets: z.array(target).optional(),
  panels: z.array(z.unknown()).optional(),
});
const variableSchema = z.object({
  type: z.string(),
  name: z.string(),
  query: z.union([z.string(), z.object({ query: z.string() })]).optional(),
  datasource: datasourceRef.optional(),
  allValue: z.string().optional(),
});
// A Prometheus annotation: Grafana runs `expr` over the dashboard's time range and marks every
// point above 0, titled and tagged from the series' labels (see dashboards-schema.test.ts).
const annotationSchema = z.object({
  name: z.string(),
  datasource: datasourceRef,
  enable: z.boolean(),
  iconColor: z.string(),
  expr: z.string(),
  titleFormat: z.string(),
  textFormat: z.string(),
  tagKeys: z.string(),
});
const dashboardSchema = z.object({
  uid: z.string(),
  title: z.string(),
  annotations: z.object({ list: z.array(annotationSchema) }),
  templating: z.object({ list: z.array(variableSchema) }),
  panels: z.array(panelSchema),
});
type Dashboard = z.infer<typeof dashboardSchema>;

const files = (await readdir(dashboardsDir)).filter((file) => file.endsWith('.json')).sort();
const dashboards: { file: string; dashboard: Dashboard }[] = [];
for (const file of files) {
  dashboards.push({ file, dashboard: dashboardSchema.parse(JSON.parse(await readFile(join(dashboardsDir, file), 'utf8'))) });
}
type Panel = z.infer<typeof panelSchema>;
/** Every panel, those inside collapsed rows included. */
const allPanels = (dashboard: Dashboard): Panel[] => dashboard.panels.flatMap((panel) => [panel, ...z.array(panelSchema).parse(panel.panels ?? [])]);
const dataPanels = (dashboard: Dashboard) => allPanels(dashboard).filter((panel) => panel.type !== 'row');
/** Every expression of a dashboard: its panels' queries and its annotations. */
const expressions = (dashboard: Dashboard): string[] => [
  ...dataPanels(dashboard).flatMap((panel) => (panel.targets ?? []).map((query) => query.expr)),
  ...dashboard.annotations.list.map((annotation) => annotation.expr),
];
/** The label names a Grafana format ("{{remediation}}: {{outcome}}") or a tagKeys list uses. */
const formatLabels = (format: string): string[] => [...format.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((match) => match[1] ?? '');

/** The argument text of every call to one of `functions` in a PromQL expression (matching parentheses). */
function callArguments(expr: string, functions: readonly string[]): string[] {
  const found: string[] = [];
  const call = new RegExp(`\\b(${functions.join('|')})\\(`, 'g');
  for (let match = call.exec(expr); match; match = call.exec(expr)) {
    let depth = 1;
    let index = match.index + match[0].length;
    const start = index;
    while (index < expr.length && depth > 0) {
      if (expr[index] === '(') depth += 1;
      if (expr[index] === ')') depth -= 1;
      index += 1;
    }
    found.push(expr.slice(start, index - 1));
  }
  return found;
}

/** Range selectors of rate-like calls that are not [$__rate_interval]. */
function literalRateRanges(expr: string): string[] {
  return callArguments(expr, ['rate', 'irate', 'increase'])
    .flatMap((argument) => [...argument.matchAll(/\[([^\]]+)\]/g)].map((range) => range[1] ?? ''))
    .filter((range) => range !== '$__rate_interval');
}

/** Metric selectors that do not filter on both $job and $instance. */
function unfilteredSelectors(expr: string): string[] {
  return [...expr.matchAll(/\b(upkeep_[a-z0-9_]+)(\{[^}]*\})?/g)]
    .filter((match) => !(match[2]?.includes('job=~"$job"') && match[2].includes('instance=~"$instance"')))
    .map((match) => match[0]);
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

t.test('the checkers catch what they are meant to', async (t) => {
  t.same(literalRateRanges('sum(rate(x{a="b"}[5m])) / increase(y[$__rate_interval])'), ['5m']);
  t.same(literalRateRanges('predict_linear(x[1h], 60) + rate(y[$__rate_interval])'), []);
  t.same(unfilteredSelectors('upkeep_a{job=~"$job", instance=~"$instance"} / upkeep_b{job=~"$job"} + upkeep_c'), ['upkeep_b{job=~"$job"}', 'upkeep_c']);
});

t.test('both dashboards exist with stable uids', async (t) => {
  t.same(files, ['upkeep-overview.json', 'upkeep-remediation.json']);
  for (const { file, dashboard } of dashboards) t.equal(dashboard.uid, file.replace(/\.json$/, ''), `${file}: uid`);
});

t.test('datasource, job and instance variables', async (t) => {
  for (const { file, dashboard } of dashboards) {
    const byName = new Map(dashboard.templating.list.map((variable) => [variable.name, variable]));
    const datasource = byName.get('datasource');
    t.equal(datasource?.type, 'datasource', `${file}: datasource variable`);
    t.equal(datasource?.query, 'prometheus', `${file}: datasource variable lists Prometheus sources`);
    const queryOf = (name: string) => {
      const query = byName.get(name)?.query;
      return typeof query === 'string' ? query : query?.query;
    };
    t.equal(queryOf('job'), 'label_values(upkeep_build_info, job)', `${file}: job variable`);
    t.equal(queryOf('instance'), 'label_values(upkeep_build_info{job=~"$job"}, instance)', `${file}: instance variable`);
    for (const name of ['job', 'instance']) {
      t.equal(byName.get(name)?.datasource?.uid, DATASOURCE, `${file}: ${name} variable queries the chosen datasource`);
      t.equal(byName.get(name)?.allValue, '.+', `${file}: ${name} "All" is a regex`);
    }
  }
});

t.test('every panel: the datasource variable, a unit, filtered selectors, $__rate_interval', async (t) => {
  for (const { file, dashboard } of dashboards) {
    const ids = allPanels(dashboard).map((panel) => panel.id);
    t.equal(new Set(ids).size, ids.length, `${file}: panel ids are unique`);
    const rows = dashboard.panels.filter((panel) => panel.type === 'row');
    if (file === 'upkeep-overview.json') {
      // It opens with the summary; each system is a collapsed row holding its own panels.
      t.equal(dashboard.panels[0]?.title, 'Summary', `${file}: opens with the summary row`);
      t.same(rows.slice(1).filter((row) => (row.panels?.length ?? 0) === 0).map((row) => row.title), [], `${file}: every system row holds its panels`);
      const firstSystem = dashboard.panels.findIndex((panel, index) => index > 0 && panel.type === 'row');
      t.ok(firstSystem > 0, `${file}: system rows follow the summary`);
      t.same(dashboard.panels.slice(firstSystem).filter((panel) => panel.type !== 'row').map((panel) => panel.title), [], `${file}: no system panel outside its row`);
    } else {
      t.same(rows.filter((panel) => (panel.panels?.length ?? 0) > 0).map((p) => p.title), [], `${file}: no panels hidden in collapsed rows`);
    }
    for (const panel of dataPanels(dashboard)) {
      const where = `${file} "${panel.title}"`;
      t.equal(panel.datasource?.uid, DATASOURCE, `${where}: datasource`);
      t.match(panel.fieldConfig?.defaults.unit, /^\w+$/, `${where}: unit`);
      t.ok((panel.targets?.length ?? 0) > 0, `${where}: has a query`);
      for (const query of panel.targets ?? []) {
        t.equal(query.datasource.uid, DATASOURCE, `${where} ${query.refId}: datasource`);
        t.same(unfilteredSelectors(query.expr), [], `${where} ${query.refId}: every selector uses $job and $instance`);
        t.same(literalRateRanges(query.expr), [], `${where} ${query.refId}: rate/increase use $__rate_interval`);
      }
    }
  }
});

t.test('remediation runs are annotations on both dashboards, failures in red', async (t) => {
  for (const { file, dashboard } of dashboards) {
    const annotations = dashboard.annotations.list;
    t.same(annotations.map((annotation) => [annotation.name, annotation.iconColor, annotation.enable]),
      [['Remediation runs', 'green', true], ['Remediation failures', 'red', true]], `${file}: runs and failures`);
    t.match(annotations[0]?.expr, /outcome=~"success\|dry_run"/, `${file}: runs are the successes and dry runs`);
    t.match(annotations[1]?.expr, /outcome=~"failure"/, `${file}: failures are the failed runs`);
    for (const annotation of annotations) {
      const where = `${file} annotation "${annotation.name}"`;
      t.equal(annotation.datasource.uid, DATASOURCE, `${where}: datasource`);
      t.match(annotation.expr, /^increase\(upkeep_remediation_runs_total\{[^}]*\}\[\$__rate_interval\]\) > 0$/, `${where}: marks where the runs counter grew`);
      t.same(unfilteredSelectors(annotation.expr), [], `${where}: the selector uses $job and $instance`);
      t.same(formatLabels(annotation.titleFormat), ['remediation', 'outcome'], `${where}: the title names the remediation and outcome`);
      t.same(formatLabels(annotation.textFormat), ['remediation', 'outcome', 'instance', 'job'], `${where}: the text names them and the upkeep that ran it`);
      t.equal(annotation.tagKeys, 'remediation,outcome', `${where}: tagged by remediation and outcome`);
    }
  }
});

t.test('every metric the dashboards use is one upkeep exports', async (t) => {
  const state = await mkdtemp(join(tmpdir(), 'upkeep-dashboards-'));
  t.teardown(() => rm(state, { recursive: true, force: true }));
  const parsed = parseConfig(`state: { dir: ${JSON.stringify(state)} }\n`, {});
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const logged = bufferLogger();
  const app = await buildApp({ config: parsed.config, log: logged.log });
  t.teardown(() => app.fastify.close());
  t.same(logged.lines().filter((line) => Number(line.level) >= 40), [], 'building the app logs no warning or error');
  const exported = new Set(app.registry.getMetricsAsArray().map((metric) => metric.name));
  // SPEC's schedule family is emitted by the scheduler, which is not part of an app without a schedule.
  exported.add('upkeep_schedule_next_run_timestamp_seconds');
  const used = new Set(dashboards.flatMap(({ dashboard }) => expressions(dashboard)
    .flatMap((expr) => [...expr.matchAll(/\bupkeep_[a-z0-9_]+/g)].map((m) => m[0]))));
  const unknown = [...used].map((name) => name.replace(/_(bucket|sum|count)$/, '')).filter((name) => !exported.has(name));
  t.same(unknown, [], 'no dashboard metric is missing from a real upkeep registry');
  t.ok(used.size > 50, `the dashboards use ${used.size} metric names`);
});

t.test('a real Prometheus answers every panel expression with data', async (t) => {
  const exposition = await serveExposition();
  t.teardown(() => exposition.close());
  const prometheus = await startPrometheus({ scrapeTarget: exposition.host, intervalSeconds: 1 });
  t.teardown(() => prometheus.destroy());
  await waitFor('three scrapes', async () => {
    const [count] = await prometheus.query('count_over_time(upkeep_build_info[1m])');
    if (!count || Number(count.value[1]) < 3) throw new Error('not yet');
  }, 60_000, 250);

  const labelValues = z.object({ status: z.literal('success'), data: z.array(z.string()) });
  const values = async (label: string, match: string) => {
    const response = await fetch(`${prometheus.url}/api/v1/label/${label}/values?${new URLSearchParams({ 'match[]': match })}`);
    return labelValues.parse(await response.json()).data;
  };
  t.same(await values('job', 'upkeep_build_info'), ['upkeep'], 'the job variable finds upkeep');
  t.same(await values('instance', 'upkeep_build_info{job=~"upkeep"}'), [exposition.host], 'the instance variable finds it');

  const substitute = (expr: string) => expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$job', 'upkeep')
    // Grafana regex-escapes the value; PromQL's string literal then needs each backslash doubled.
    .replaceAll('$instance', escapeRegex(exposition.host).replaceAll('\\', '\\\\'));
  await t.rejects(prometheus.query('rate(upkeep_redis_keyspace_hits_total[$__rate_interval])'), /parse error/, 'unsubstituted variables do not parse');

  for (const { file, dashboard } of dashboards) {
    for (const panel of dataPanels(dashboard)) {
      for (const query of panel.targets ?? []) {
        const where = `${file} "${panel.title}" ${query.refId}`;
        const expr = substitute(query.expr);
        t.notMatch(expr, /\$/, `${where}: no variable left`);
        const result = await prometheus.query(expr);
        t.ok(result.length > 0, `${where}: returns data`);
        for (const label of formatLabels(query.legendFormat)) {
          t.ok(result.some((series) => label in series.metric), `${where}: legend label ${label} exists`);
        }
      }
    }
    for (const annotation of dashboard.annotations.list) {
      const where = `${file} annotation "${annotation.name}"`;
      const expr = substitute(annotation.expr);
      t.notMatch(expr, /\$/, `${where}: no variable left`);
      const result = await prometheus.query(expr);
      t.ok(result.length > 0, `${where}: returns data`);
      const labels = [...formatLabels(annotation.titleFormat), ...formatLabels(annotation.textFormat), ...annotation.tagKeys.split(',')];
      for (const label of labels) t.ok(result.every((series) => label in series.metric), `${where}: every series has ${label}`);
    }
  }
});

t.test('provisioning loads the dashboards and a Prometheus datasource', async (t) => {
  const provider = z.object({
    apiVersion: z.literal(1),
    providers: z.array(z.object({ name: z.string(), type: z.literal('file'), folder: z.string(), options: z.object({ path: z.string() }) })).length(1),
  }).parse(parseYaml(await readFile(join(root, 'grafana/provisioning/dashboards/upkeep.yml'), 'utf8')));
  t.match(provider.providers[0]?.options.path, /^\/.+\/upkeep$/);
  const sources = z.object({
    apiVersion: z.literal(1),
    datasources: z.array(z.object({ name: z.string(), type: z.literal('prometheus'), url: z.string(), access: z.literal('proxy') })).min(1),
  }).parse(parseYaml(await readFile(join(root, 'grafana/provisioning/datasources/prometheus.yml'), 'utf8')));
  t.equal(sources.datasources[0]?.url, 'http://127.0.0.1:9090');
});
