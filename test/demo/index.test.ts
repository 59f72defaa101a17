import { spawn } from 'node:child_process';
import { once } from 'node:events';
import t from 'tap';
import { renderTable, sampleValue } from '../../src/demo/report.js';

t.test('the table renderer pads columns to the widest cell', async (t) => {
  t.equal(renderTable(['a', 'long header'], [['wide cell', 'x'], ['y', '']]), [
    'a          long header',
    '---------  -----------',
    'wide cell  x',
    'y',
  ].join('\n'));
  t.equal(sampleValue('m{a="1"} 3\nm{a="10"} 4\n', 'm{a="1"}'), 3);
  t.equal(sampleValue('m{a="1"} 3\n', 'm{a="2"}'), undefined);
});

t.test('upkeep demo --once fixes every injected problem and exits 0', async (t) => {
  const child = spawn(process.execPath, ['bin/upkeep.js', 'demo', '--once'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const [code] = await once(child, 'exit');
  t.equal(code, 0, `${stdout}\n${stderr}`);
  for (const alert of ['PostgresDeadTuplesHigh', 'BackupTooOld', 'RedisKeyPatternBacklog', 'RedisBgsaveFailed']) {
    t.match(stdout, `alert firing: ${alert}`);
  }
  const rows = stdout.split('\n').filter((line) => / (fixed|NOT FIXED) /.test(line));
  t.equal(rows.length, 5, 'one row per problem');
  for (const row of rows) t.match(row, /\(\w+, success\)\s+fixed /, row);
  t.match(stdout, /dead tuples in refnet\.public\.job_logs\s+40,000\s+0\s/);
});
