import { spawn } from 'node:child_process';
import { once } from 'node:events';
import t from 'tap';
import { watchFixes } from '../../src/demo/index.js';
import { PROBLEMS, renderTable, sampleValue } from '../../src/demo/report.js';

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

t.test('an alert fixed and resolved between two looks at Prometheus is still reported, from its run', async (t) => {
  const now = Date.now() / 1000;
  // Every problem healthy, every remediation done, and Prometheus showing no alert at all.
  const metrics = PROBLEMS.map((problem) => `${problem.series} ${[0, 1, now].find((raw) => problem.fixed(problem.view(raw, now)))}`).join('\n');
  const startsAt = new Date(Date.now() - 5000).toISOString();
  const runs = PROBLEMS.map((problem, i) => ({
    id: `run-${i}`, remediation: problem.remediation, status: 'success',
    ...(problem.alert.startsWith('(') ? { trigger: 'schedule' } : { trigger: 'alert', alert: { fingerprint: `f${i}`, alertname: problem.alert, startsAt } }),
  }));
  const seen: string[] = [];
  const result = await watchFixes({ metrics: async () => metrics, runs: async () => runs, prometheus: { alerts: async () => [] } }, (name) => seen.push(name), 5000);
  t.same(seen.sort(), ['BackupTooOld', 'PostgresDeadTuplesHigh', 'RedisBgsaveFailed', 'RedisKeyPatternBacklog']);
  t.same(result.fixed, PROBLEMS.map(() => true));
  PROBLEMS.forEach((problem, i) => {
    if (problem.alert.startsWith('(')) t.equal(result.secondsToFix[i], undefined, 'a scheduled fix has no alert to time from');
    else t.ok((result.secondsToFix[i] ?? 0) >= 4.9, `${problem.alert}: timed from the alert's startsAt (${result.secondsToFix[i]} s)`);
  });
});

t.test('watchFixes stops when its signal is aborted', async (t) => {
  const stop = new AbortController();
  let looks = 0;
  const scenario = { metrics: async () => '', runs: async () => [], prometheus: { alerts: async () => { looks += 1; if (looks === 2) stop.abort(); return []; } } };
  await t.rejects(watchFixes(scenario, () => undefined, 60_000, stop.signal), { name: 'AbortError' });
  t.equal(looks, 2, 'after the look that was under way, none more');
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
