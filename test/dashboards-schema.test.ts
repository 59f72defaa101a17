import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import ts from 'typescript';

/**
 * Both dashboards type-check against Grafana's published dashboard schema (@grafana/schema's
 * `Dashboard`), with the TypeScript compiler: each JSON file becomes an object literal assigned
 * to that type, so a wrong type, a missing required field or an unknown key (excess property
 * checks apply to literals) is a compile error naming its place.
 *
 * One gap in that schema: its `AnnotationQuery` has no field for a Prometheus annotation's query
 * (its `target` is typed for Grafana's own annotations, "TODO.. this should just be a normal
 * query target"). The dashboards' annotations are Prometheus ones, so they are typed as
 * `AnnotationQuery` plus exactly the fields Grafana's Prometheus datasource reads from an
 * annotation, and nothing more: every other key is still checked, and a misspelt one still fails.
 */
const root = new URL('..', import.meta.url).pathname;
const dashboardsDir = join(root, 'grafana/dashboards');

// Grafana's schema types enums (ThresholdsMode, MappingType...) as TypeScript enums, which JSON
// cannot spell: a JSON "absolute" is the enum's value, not the enum. `${E}` turns a string enum
// into the union of its values; numeric enums already accept their literal values.
//
// PrometheusAnnotation's fields are those of Grafana's Prometheus datasource,
// packages/grafana-prometheus/src/annotations.ts in grafana/grafana: prepareAnnotation moves
// `expr` and `step` into the query it runs (as its expr and interval), and processEvents reads
// `titleFormat`, `textFormat`, `tagKeys` (comma-separated label names) and `useValueForTime`.
const PRELUDE = `import type { AnnotationQuery, Dashboard } from '@grafana/schema';
type Json<T> = T extends string ? \`\${T}\`
  : T extends readonly (infer U)[] ? Json<U>[]
  : T extends object ? { [K in keyof T]: Json<T[K]> }
  : T;
interface PrometheusAnnotation {
  expr: string;
  step?: string;
  titleFormat?: string;
  textFormat?: string;
  tagKeys?: string;
  useValueForTime?: boolean;
}
type UpkeepDashboard = Omit<Dashboard, 'annotations'> & { annotations?: { list?: (AnnotationQuery & PrometheusAnnotation)[] } };
`;

/** The compiler's diagnostics for `const NAME: Json<UpkeepDashboard> = <json>` per dashboard, as "file:line: message". */
function typeCheck(dashboards: Readonly<Record<string, string>>): string[] {
  // A virtual file beside the tests, so '@grafana/schema' resolves from this package's node_modules.
  const virtual = join(root, 'test', '__dashboards_schema_check__.ts');
  const source = PRELUDE + Object.entries(dashboards)
    .map(([file, json], index) => `// ${file}\nexport const dashboard${index}: Json<UpkeepDashboard> = ${json.trim()};\n`).join('');
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true, noEmit: true, skipLibCheck: true, types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) => (name === virtual ? ts.createSourceFile(name, source, language) : getSourceFile(name, language, ...rest));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === virtual || fileExists(name);
  const program = ts.createProgram([virtual], options, host);
  const sourceFile = program.getSourceFile(virtual);
  const starts = Object.keys(dashboards).map((file) => ({ file, line: source.split('\n').indexOf(`// ${file}`) }));
  return ts.getPreEmitDiagnostics(program, sourceFile).map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    if (diagnostic.file === undefined || diagnostic.start === undefined) return message;
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    const at = starts.filter((start) => start.line <= line).pop();
    return at ? `${at.file}:${line - at.line}: ${message}` : `prelude:${line + 1}: ${message}`;
  });
}

const files = (await readdir(dashboardsDir)).filter((file) => file.endsWith('.json')).sort();
const texts: Record<string, string> = {};
for (const file of files) texts[file] = await readFile(join(dashboardsDir, file), 'utf8');

t.test('both dashboards type-check against @grafana/schema', async (t) => {
  t.same(files, ['upkeep-overview.json', 'upkeep-remediation.json']);
  t.same(typeCheck(texts), []);
});

t.test('the check fails on a bad dashboard', async (t) => {
  const overview = texts['upkeep-overview.json'] ?? '';
  type Editable = Record<string, unknown> & { panels: Record<string, unknown>[]; annotations: { list: Record<string, unknown>[] } };
  const mutate = (edit: (dashboard: Editable) => void): string => {
    const dashboard = JSON.parse(overview) as Editable;
    edit(dashboard);
    return JSON.stringify(dashboard, null, 2);
  };
  const cases: [string, string, RegExp][] = [
    ['a string where a number belongs', mutate((d) => { d.panels[1] = { ...d.panels[1], gridPos: { h: '8', w: 12, x: 0, y: 0 } }; }), /Type 'string' is not assignable to type 'number'/],
    ['a misspelt key', mutate((d) => { d.refesh = '1m'; }), /'"refesh"' does not exist in type/],
    ['a required field left out', mutate((d) => { delete d.schemaVersion; }), /Property 'schemaVersion' is missing/],
    ['a misspelt annotation key', mutate((d) => { d.annotations.list[0] = { ...d.annotations.list[0], titelFormat: '{{remediation}}' }; }), /'"titelFormat"' does not exist in type/],
    ['an annotation without its query', mutate((d) => { delete d.annotations.list[1]?.expr; }), /Property 'expr' is missing/],
    ['a value outside an enum', mutate((d) => { d.panels[1] = { ...d.panels[1], fieldConfig: { defaults: { thresholds: { mode: 'relative', steps: [] } }, overrides: [] } }; }), /"relative"' is not assignable to type '"absolute" \| "percentage"'/],
  ];
  // One program for all of them; each error names the dashboard it is in.
  const errors = typeCheck(Object.fromEntries(cases.map(([what, text]) => [what, text])));
  for (const [what, , expected] of cases) {
    const own = errors.filter((error) => error.startsWith(`${what}:`));
    t.equal(own.length, 1, `${what}: one error`);
    t.match(own.join('\n'), expected, what);
  }
  t.equal(errors.length, cases.length, 'and no other');
});
