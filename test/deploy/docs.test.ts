import { execFile } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { DOC, docBlocks } from './doc-steps.js';
import { ROOT } from './docker.js';

/**
 * docs/deploy.md beyond the steps image.test.ts and systemd.test.ts run: it is linked from the
 * README, covers the three ways with their privileges, secrets and upgrades, and every file, link
 * and kustomize directory it names exists.
 */
const run = promisify(execFile);
const exists = (path: string) => access(path).then(() => true, () => false);

t.test('the README links docs/deploy.md', async (t) => {
  t.match(await readFile(join(ROOT, 'README.md'), 'utf8'), '[docs/deploy.md](docs/deploy.md)');
});

t.test('three ways, each with its upgrade; privileges and secrets', async (t) => {
  const doc = await readFile(DOC, 'utf8');
  const sections = doc.split(/^## /m).slice(1);
  t.same(sections.map((section) => section.split('\n')[0]), ['What upkeep needs, whichever way', 'Container', 'systemd', 'Kubernetes']);
  for (const section of sections.slice(1)) t.match(section, '**Upgrade.**', `${section.split('\n')[0]} says how to upgrade`);
  for (const topic of ['PostgreSQL', 'Redis', 'Docker', '**Secrets**', '${file:', 'pg_read_all_data', 'pg_monitor']) t.match(sections[0], topic);
  t.same([(await docBlocks('container')).length, (await docBlocks('systemd')).length], [7, 5], 'the blocks the tests run');
});

t.test('every relative link and every repo path the doc names exists', async (t) => {
  const doc = await readFile(DOC, 'utf8');
  const links = [...doc.matchAll(/\]\(([^)#]+)(#[^)]*)?\)/g)].map((match) => match[1] ?? '').filter((link) => !/^[a-z]+:/.test(link));
  t.ok(links.includes('security.md'), 'privileges in detail are in docs/security.md');
  for (const link of new Set(links)) {
    t.ok(await exists(join(dirname(DOC.pathname), link)), `${link} exists`);
  }
  const paths = [...doc.matchAll(/`((?:deploy|alerts|grafana|examples)\/[^`*\s]*|Dockerfile)`/g)].map((match) => match[1] ?? '');
  t.ok(paths.length > 5);
  for (const path of new Set(paths)) t.ok(await exists(join(ROOT, path)), `${path} exists`);
  const anchor = /\(configuration\.md#secrets-from-files\)/.test(doc);
  t.ok(anchor && (await readFile(join(ROOT, 'docs', 'configuration.md'), 'utf8')).includes('\n## Secrets from files\n'), 'the anchor into configuration.md exists');
});

t.test('every kubectl apply -k in the doc names a directory kubectl kustomize renders', async (t) => {
  const doc = await readFile(DOC, 'utf8');
  const dirs = [...doc.matchAll(/kubectl apply -k (\S+)/g)].map((match) => match[1] ?? '');
  t.same(dirs, ['deploy/kubernetes', 'deploy/kubernetes/overlays/replicas']);
  for (const dir of dirs) {
    const { stdout } = await run('kubectl', ['kustomize', join(ROOT, dir)], { maxBuffer: 16 * 1024 * 1024 });
    t.match(stdout, /^kind: Deployment$/m, `${dir} renders`);
  }
});
