import t from 'tap';
import { backupFileName } from '../../src/actions/backup.js';
import { writtenNames } from '../../src/config/backup-overlap.js';
import { parseConfig } from '../../src/config/load.js';

const source = '{ target: main, database: app }';

/** The errors of a config holding these targets.backups entries (YAML flow maps), as `path: message`. */
function errors(...entries: string[]): string[] {
  const text = [
    'targets:',
    '  postgres: [{ name: main, url: "postgres://127.0.0.1/app", databases: [app] }]',
    '  backups:',
    ...entries.map((entry) => `    - ${entry}`),
    '',
  ].join('\n');
  const parsed = parseConfig(text, {});
  return parsed.ok ? [] : parsed.errors.map((error) => `${error.path}: ${error.message}`);
}

const app = (dir = '/srv/backups', pattern = 'app_*.sql.gz') => `{ name: app, dir: "${dir}", pattern: "${pattern}", keepDays: 7, source: ${source} }`;
const archive = (dir = '/srv/backups', pattern = 'app_archive_*.sql.gz') => `{ name: app_archive, dir: "${dir}", pattern: "${pattern}", keepDays: 30, source: ${source} }`;

t.test('the names checked are the names backup.pg_dump writes, plain and directory format', async (t) => {
  const at = new Date(Date.UTC(2026, 0, 1));
  t.same(writtenNames('app_archive'), [backupFileName('app_archive', at), backupFileName('app_archive', at, true)]);
});

t.test('a pattern that takes another entry\'s dumps in the same dir is refused, at the later entry, either way round', async (t) => {
  t.same(errors(app(), archive()), [
    'targets.backups[1].dir: is also the dir of targets.backups[0], whose pattern matches the files backup.pg_dump writes for this entry, so targets.backups[0]\'s metrics would count them and its backup.pg_dump delete them once past its keepDays; narrow targets.backups[0].pattern to its own files, e.g. "app_2*.sql.gz"',
  ], 'the tester\'s config: app_* also took app_archive\'s dumps');
  t.same(errors(archive(), app()), [
    'targets.backups[1].pattern: also matches the files backup.pg_dump writes for targets.backups[0] in the same dir, so this entry\'s metrics would count them and its backup.pg_dump delete them once past its keepDays; narrow it to this entry\'s own files, e.g. "app_2*.sql.gz"',
  ]);
  t.same(errors(app('/srv/backups/'), archive('/srv//backups/.')), [
    'targets.backups[1].dir: is also the dir of targets.backups[0], whose pattern matches the files backup.pg_dump writes for this entry, so targets.backups[0]\'s metrics would count them and its backup.pg_dump delete them once past its keepDays; narrow targets.backups[0].pattern to its own files, e.g. "app_2*.sql.gz"',
  ], 'one directory however it is written');
  t.same(errors(app('/srv/backups', 'app_*.dir'), archive('/srv/backups', 'app_archive_*')), [
    'targets.backups[1].dir: is also the dir of targets.backups[0], whose pattern matches the files backup.pg_dump writes for this entry, so targets.backups[0]\'s metrics would count them and its backup.pg_dump delete them once past its keepDays; narrow targets.backups[0].pattern to its own files, e.g. "app_2*.dir"',
  ], 'directory-format dumps (jobs) too, and the suggestion keeps the format the pattern took');
});

t.test('the same dir and pattern is refused, with a source or without', async (t) => {
  t.same(errors(app('/srv/backups', '*.sql.gz'), archive('/srv/backups', '*.sql.gz')), [
    'targets.backups[1].pattern: is also the pattern of targets.backups[0] in the same dir, so both would count the same files (and a backup.pg_dump of one delete the other\'s once past its keepDays); give each entry a pattern of its own files, e.g. "app_archive_2*.sql.gz"',
  ]);
  t.same(errors('{ name: a, dir: /srv/backups, pattern: "*.sql.gz" }', '{ name: b, dir: /srv/backups, pattern: "*.sql.gz" }'), [
    'targets.backups[1].pattern: is also the pattern of targets.backups[0] in the same dir, so both would count the same files; give each entry a pattern of its own files',
  ]);
});

t.test('an entry without a source writes nothing, but its pattern over another\'s dumps would count them', async (t) => {
  t.same(errors('{ name: external, dir: /srv/backups, pattern: "*" }', app()), [
    'targets.backups[1].dir: is also the dir of targets.backups[0], whose pattern matches the files backup.pg_dump writes for this entry, so targets.backups[0]\'s metrics would count them; narrow targets.backups[0].pattern to its own files',
  ]);
  t.same(errors(app(), '{ name: external, dir: /srv/backups, pattern: "app_*" }'), [
    'targets.backups[1].pattern: also matches the files backup.pg_dump writes for targets.backups[0] in the same dir, so this entry\'s metrics would count them; narrow it to this entry\'s own files',
  ]);
  t.same(errors('{ name: a, dir: /srv/backups, pattern: "*.sql.gz" }', '{ name: b, dir: /srv/backups, pattern: "b_*.sql.gz" }'), [],
    'two entries without a source: nobody knows their files\' names, so only the very same pattern is refused');
});

t.test('the suggestion does not take the other entry\'s dumps either', async (t) => {
  t.same(errors(app('/srv/backups', 'app_*'), `{ name: app_2024, dir: /srv/backups, pattern: "app_2024_*", source: ${source} }`), [
    'targets.backups[1].dir: is also the dir of targets.backups[0], whose pattern matches the files backup.pg_dump writes for this entry, so targets.backups[0]\'s metrics would count them and its backup.pg_dump delete them once past its keepDays; narrow targets.backups[0].pattern to its own files, e.g. "app_????????_??????{.sql.gz,.dir}"',
  ], 'app_2* would take app_2024\'s dumps, so the whole timestamp\'s shape');
  t.same(errors(app('/srv/backups', 'app_????????_??????{.sql.gz,.dir}'), `{ name: app_2024, dir: /srv/backups, pattern: "app_2024_*", source: ${source} }`), [], 'and it is accepted');
});

t.test('entries that keep to their own dumps, or to their own dirs, are accepted', async (t) => {
  t.same(errors(app('/srv/backups', 'app_2*.sql.gz'), archive()), [], 'the narrowed pattern');
  t.same(errors(app('/srv/backups', 'app_*.sql.gz'), archive('/srv/archive')), [], 'another dir');
  t.same(errors(
    `{ name: authdb, dir: /var/backups/ai, pattern: "authdb_*.sql.gz", source: ${source} }`,
    `{ name: apidb, dir: /var/backups/ai, pattern: "apidb_*.sql.gz", source: ${source} }`,
    `{ name: admindb, dir: /var/backups/ai, pattern: "admindb_*.sql.gz", source: ${source} }`,
  ), [], 'examples/ai-micro-service.yml\'s three');
});

t.test('a conflicting entry is reported once, for its first conflict; a repeated name is only distinct()\'s', async (t) => {
  t.same(errors(
    `{ name: app, dir: /srv/backups, pattern: "*", source: ${source} }`,
    `{ name: b, dir: /srv/backups, pattern: "*", source: ${source} }`,
    `{ name: c, dir: /srv/backups, pattern: "c_*", source: ${source} }`,
  ).map((error) => error.split(': ')[0]), ['targets.backups[1].pattern', 'targets.backups[2].dir']);
  t.same(errors(app(), app()), ['targets.backups[1].name: is also the name of targets.backups[0]; give each entry its own']);
});

t.test('a pattern too long to be a glob is refused at its own path, and the overlap check does not throw on it', async (t) => {
  const huge = 'x'.repeat(100_000);
  t.same(errors(app(), archive('/srv/backups', huge)), ['targets.backups[1].pattern: must be at most 1024 characters (a glob of file names)']);
  const logs = parseConfig(`targets:\n  logs: [{ name: app, dir: /var/log/app, pattern: "${huge}" }]\n  files: [{ name: tmp, dir: /tmp/x, pattern: "${huge}" }]\n`, {});
  t.same(logs.ok ? [] : logs.errors.map((error) => `${error.path}: ${error.message}`), [
    'targets.logs[0].pattern: must be at most 1024 characters (a glob of file names)',
    'targets.files[0].pattern: must be at most 1024 characters (a glob of file names)',
  ]);
});
