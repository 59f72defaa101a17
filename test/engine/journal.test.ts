import t from 'tap';
import { isFinished, RUN_STATUSES, runRecordSchema } from '../../src/engine/journal.js';

const queued = { id: 'r1', remediation: 'redis.bgsave', trigger: 'manual', status: 'queued', params: { target: 'cache' }, queuedAt: '2026-01-01T00:00:00.000Z' };

t.test('a journal line parses into a RunRecord; a malformed one names its problem', async (t) => {
  t.same(runRecordSchema.parse(queued), queued);
  const finished = {
    ...queued, status: 'success', plan: [{ kind: 'redis', detail: 'BGSAVE' }], payload: { target: 'cache' },
    check: { proceed: true, reason: 'LASTSAVE is 1', observed: { lastSave: 1 } }, output: { start: 'started' },
    verification: { ok: true, detail: 'LASTSAVE advanced from 1 to 2' }, risk: 'safe', lockKey: 'redis.bgsave redis:cache:redis.bgsave',
    alert: { fingerprint: 'f', startsAt: 's', alertname: 'A', labels: { target: 'cache' } }, finishedAt: '2026-01-01T00:00:01.000Z',
  };
  t.same(runRecordSchema.parse(finished), finished, 'the plan, its payload and the outcome come back as written');
  const bad = runRecordSchema.safeParse({ ...queued, status: 'done', plan: [{ kind: 'shell', detail: 'rm' }] });
  t.equal(bad.success, false);
  t.same(bad.error?.issues.map((issue) => issue.path.join('.')), ['status', 'plan.0.kind']);
});

t.test('queued and running are the only unfinished states', async (t) => {
  t.same(RUN_STATUSES.filter((status) => !isFinished(status)), ['queued', 'running']);
});
