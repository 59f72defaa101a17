import t from 'tap';
import type { RunRecord } from '../../src/engine/journal.js';
import { outcomeOf } from '../../src/engine/metrics.js';

t.test('outcomes counted in upkeep_remediation_runs_total', async (t) => {
  t.same(['success', 'dry_run', 'failure', 'interrupted', 'skipped', 'duplicate', 'cancelled', 'rejected', 'queued', 'running'].map((status) => outcomeOf(status as RunRecord['status'])),
    ['success', 'dry_run', 'failure', 'failure', 'skipped', 'skipped', 'skipped', 'rejected', null, null]);
});
