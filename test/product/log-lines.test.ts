import t from 'tap';
import { waitFor } from '../fixtures/ports.js';
import { serveInstalled, writeConfig } from './installed.js';

/**
 * `serve`'s log on stdout, as a reader of it sees it (docs/performance.md, "The log in batches":
 * batching was tried and not kept). Checked on the installed package: a lone line is out while
 * the server runs, and a burst of lines is out whole, each line whole, once SIGTERM has stopped
 * the server.
 */
t.test('the installed serve writes a lone log line while it runs, and every line of a burst by its exit', async (t) => {
  const { file } = await writeConfig(t, {});
  const served = await serveInstalled(t, file);
  const requestLines = () => served.logLines().filter((line) => line.msg === 'request' && line.path === '/runs');
  t.equal((await fetch(`${served.base}/runs`)).status, 200);
  // A wait for a loaded machine: a line held back for a fuller write or for the exit would not come at all.
  await waitFor('the lone request line', async () => {
    if (requestLines().length !== 1) throw new Error(`${requestLines().length} lines`);
  }, 10_000, 20);
  for (let round = 0; round < 10; round++) {
    const statuses = await Promise.all(Array.from({ length: 50 }, async () => (await fetch(`${served.base}/runs`)).status));
    t.ok(statuses.every((status) => status === 200), `round ${round + 1}: 50 replies 200`);
  }
  t.equal(await served.stop(), 0, 'the server stops cleanly');
  t.equal(requestLines().length, 501, 'every request line is out, the last ones written at the exit at the latest');
  t.same(served.logLines().filter((line) => 'notJson' in line), [], 'every line is whole JSON');
});
