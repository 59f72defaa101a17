import t from 'tap';
import { ensureDocker, ensureTestImage, runContainer } from './fixtures/docker.js';
import { startPostgres } from './fixtures/postgres.js';
import { startRedis } from './fixtures/redis.js';

t.test('throwaway postgres answers, survives a restart, and is removed', async (t) => {
  const server = await startPostgres();
  t.teardown(() => server.destroy());
  const [row] = await server.query<{ server_version: string }>('show server_version');
  t.match(row?.server_version, /^15\./);
  await server.stop();
  await t.rejects(server.query('select 1'));
  await server.start();
  t.same(await server.query('select 1 as one'), [{ one: 1 }]);
});

t.test('throwaway redis answers and can be restarted', async (t) => {
  const server = await startRedis();
  t.teardown(() => server.destroy());
  const client = server.client();
  t.teardown(() => client.disconnect());
  t.equal(await client.set('k', 'v'), 'OK');
  t.equal(await client.get('k'), 'v');
});

t.test('dockerd answers and runs a container built with docker import', async (t) => {
  const docker = await ensureDocker();
  const image = await ensureTestImage(docker);
  const container = await runContainer(docker, { name: `upkeep-fixture-${process.pid}`, cmd: ['sh', '-c', 'echo hello; sleep 30'] });
  t.teardown(() => container.remove({ force: true }));
  const info = await container.inspect();
  t.equal(info.State.Running, true);
  t.equal(info.Config.Image, image);
  t.equal(info.HostConfig.NetworkMode, 'none');
});
