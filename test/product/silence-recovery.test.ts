import t from 'tap';
import { z } from 'zod';
import { ordersAndAlertmanager, silenceIn } from '../fixtures/alertmanager.js';
import { waitFor } from '../fixtures/ports.js';
import { webhookPayload } from '../fixtures/webhook-payload.js';
import { holdTable } from '../actions/postgres-fixture.js';
import { VACUUM_RULE } from '../http/helpers.js';
import { serveInstalled, writeConfig } from './installed.js';
import { postAlerts } from './runs.js';

/**
 * kill -9 of the installed serve while an alert's VACUUM holds a silence on that alert: the next
 * start journals the run interrupted and expires the silence. It stayed active for up to an hour
 * (the run's deadline), and while it held Alertmanager sent no re-delivery that could run again.
 */
t.test('the installed serve, killed with -9 mid-run: the next start expires the silence the run held', async (t) => {
  const { server, alertmanager } = await ordersAndAlertmanager(t);
  const { file } = await writeConfig(t, {
    alertmanager: { url: alertmanager.url },
    targets: { postgres: [{ name: 'main', url: server.url('app') }] },
    remediation: { rules: [VACUUM_RULE], lockTimeoutSeconds: 600 },
  });
  await holdTable(t, server, 'app', 'orders');

  const first = await serveInstalled(t, file);
  t.equal((await postAlerts(first.base, await webhookPayload())).status, 202);
  const silenceId = await silenceIn(alertmanager, 'active');
  // Killed once the journal names the silence: a crash between its creation and that line leaves
  // a silence no start can know of (it then ends by itself after the run's deadline).
  await waitFor('the journal to name the silence', async () => {
    const { runs } = z.object({ runs: z.array(z.object({ silenceId: z.string().optional() })) }).parse(await (await fetch(`${first.base}/runs`)).json());
    if (!runs.some((run) => run.silenceId === silenceId)) throw new Error('not journalled yet');
  });
  first.child.kill('SIGKILL');
  await waitFor('the first serve to die', async () => { if (first.alive()) throw new Error('alive'); });

  const second = await serveInstalled(t, file);
  await silenceIn(alertmanager, 'expired', silenceId);
  const [interrupted] = await second.logged('the run journalled interrupted', (line) => line.msg === 'run was left unfinished by a previous upkeep; journalled as interrupted');
  t.match(interrupted, { level: 40, remediation: 'postgres.vacuum' });
  t.equal(await second.stop(), 0);
});
