import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * The architecture, checked: no import cycle between files or between top-level folders under
 * src/, and src/collectors/ and src/actions/ never import each other (what both need lives in
 * src/systems/). `npm run check:imports` runs it; `npm test` runs it first.
 */
export interface ImportEdge {
  readonly from: string;
  readonly to: string;
  /** `import type` / `export type`: erased by the compiler, so it never runs. */
  readonly typeOnly: boolean;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files = await Promise.all(entries.map(async (entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  }));
  return files.flat();
}

function isTypeOnlyImport(node: ts.ImportDeclaration): boolean {
  const clause = node.importClause;
  if (!clause) return false; // `import './x.js'` runs the module
  if (clause.isTypeOnly) return true;
  if (clause.name) return false;
  const bindings = clause.namedBindings;
  return bindings !== undefined && ts.isNamedImports(bindings) && bindings.elements.length > 0 && bindings.elements.every((element) => element.isTypeOnly);
}

/** The relative specifiers a file imports: static imports and re-exports, and dynamic import(). */
export function importsOf(text: string, fileName: string): { specifier: string; typeOnly: boolean }[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  const found: { specifier: string; typeOnly: boolean }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push({ specifier: node.moduleSpecifier.text, typeOnly: isTypeOnlyImport(node) });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push({ specifier: node.moduleSpecifier.text, typeOnly: node.isTypeOnly });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [argument] = node.arguments;
      if (argument && ts.isStringLiteralLike(argument)) found.push({ specifier: argument.text, typeOnly: false });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push({ specifier: node.argument.literal.text, typeOnly: true });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found.filter(({ specifier }) => specifier.startsWith('.'));
}

/** Every import between files under `srcDir`, as paths relative to it. */
export async function importEdges(srcDir: string): Promise<ImportEdge[]> {
  const root = resolve(srcDir);
  const edges: ImportEdge[] = [];
  for (const file of await sourceFiles(root)) {
    const text = await readFile(file, 'utf8');
    for (const { specifier, typeOnly } of importsOf(text, file)) {
      const target = resolve(dirname(file), specifier.replace(/\.js$/, '.ts'));
      edges.push({ from: toKey(root, file), to: toKey(root, target), typeOnly });
    }
  }
  return edges;
}

function toKey(root: string, path: string): string {
  return relative(root, path).split(sep).join('/');
}

/** The top-level folder of a file under src/ ("engine", "actions"), or the file itself when it sits at the top ("log.ts"). */
export function topLevel(path: string): string {
  return path.split('/')[0] ?? path;
}

/** Every cycle in a directed graph, one per strongly connected component of more than one node (or a self-loop), as a path that closes. */
export function cycles(edges: readonly (readonly [string, string])[]): string[][] {
  const next = new Map<string, Set<string>>();
  for (const [from, to] of edges) {
    if (!next.has(from)) next.set(from, new Set());
    next.get(from)?.add(to);
    if (!next.has(to)) next.set(to, new Set());
  }
  // Tarjan's strongly connected components.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const connect = (node: string): void => {
    index.set(node, counter);
    low.set(node, counter);
    counter += 1;
    stack.push(node);
    onStack.add(node);
    for (const to of next.get(node) ?? []) {
      if (!index.has(to)) {
        connect(to);
        low.set(node, Math.min(low.get(node) ?? 0, low.get(to) ?? 0));
      } else if (onStack.has(to)) {
        low.set(node, Math.min(low.get(node) ?? 0, index.get(to) ?? 0));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string | undefined;
    do {
      member = stack.pop();
      if (member === undefined) break;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || next.get(node)?.has(node)) components.push(component);
  };
  for (const node of [...next.keys()].sort()) if (!index.has(node)) connect(node);
  return components.map((component) => closedPath(component, next));
}

/** A path through the component that returns to its start, for the error message. */
function closedPath(component: readonly string[], next: ReadonlyMap<string, ReadonlySet<string>>): string[] {
  const members = new Set(component);
  const start = [...component].sort()[0] ?? '';
  // Breadth-first back to the start, so the reported cycle is a shortest one.
  const cameFrom = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift() ?? '';
    for (const to of next.get(node) ?? []) {
      if (!members.has(to)) continue;
      if (to === start) {
        const path = [node];
        while (path[0] !== start) path.unshift(cameFrom.get(path[0] ?? '') ?? start);
        return [...path, start];
      }
      if (!cameFrom.has(to)) {
        cameFrom.set(to, node);
        queue.push(to);
      }
    }
  }
  return [start, start];
}

// Collectors and actions share systems/ code; importing each other would let one break the other.
const APART: readonly (readonly [string, string])[] = [['collectors', 'actions'], ['actions', 'collectors']];

export function importProblems(edges: readonly ImportEdge[]): string[] {
  const problems: string[] = [];
  // Type-only imports are left out of the file graph: they are erased at compile time, so they
  // cannot make modules load in a loop (two files naming each other's types is fine). They count
  // between folders, where the question is which room knows about which.
  const runtime = edges.filter((edge) => !edge.typeOnly).map((edge) => [edge.from, edge.to] as const);
  for (const cycle of cycles(runtime)) problems.push(`import cycle between files: ${cycle.join(' -> ')}`);
  const folders = edges.map((edge) => [topLevel(edge.from), topLevel(edge.to)] as const).filter(([from, to]) => from !== to);
  for (const cycle of cycles(folders)) problems.push(`import cycle between folders under src/: ${cycle.join(' -> ')}`);
  for (const edge of edges) {
    const pair = [topLevel(edge.from), topLevel(edge.to)];
    if (APART.some(([from, to]) => pair[0] === from && pair[1] === to)) problems.push(`${edge.from} imports ${edge.to}: src/collectors/ and src/actions/ must not import each other (share code through src/systems/)`);
  }
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const srcDir = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'src');
  const edges = await importEdges(srcDir);
  const problems = importProblems(edges);
  for (const problem of problems) process.stderr.write(`${problem}\n`);
  if (problems.length > 0) process.exit(1);
  process.stdout.write(`check:imports: ${edges.length} imports, no cycles between files or folders, collectors and actions apart\n`);
}
