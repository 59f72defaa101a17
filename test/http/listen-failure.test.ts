import { once } from 'node:events';
import { createServer } from 'node:net';
import t from 'tap';
import { interfacesProblem, listenFailure, listenProblem } from '../../src/http/listen-failure.js';

t.test('why serve could not listen, in one line', async (t) => {
  const refused = (code: string, message = `listen ${code}`) => Object.assign(new Error(message), { code });
  t.equal(listenFailure('127.0.0.1', 9630, refused('EADDRINUSE')),
    'cannot listen on 127.0.0.1:9630: the port is in use (another upkeep?); stop what holds it, or choose another port with --port or server.port');
  t.equal(listenFailure('0.0.0.0', 80, refused('EACCES')),
    'cannot listen on 0.0.0.0:80: permission denied: a port below 1024 needs root or CAP_NET_BIND_SERVICE; choose a port above 1023');
  t.equal(listenFailure('::1', 9630, refused('EADDRNOTAVAIL')),
    'cannot listen on [::1]:9630: no interface of this machine has that address; give one it has with --host or server.host');
  t.equal(listenFailure('127.0.0.1', 9630, refused('EINVAL', 'listen EINVAL: invalid argument')), 'cannot listen on 127.0.0.1:9630: listen EINVAL: invalid argument', 'any other: its message');
  t.equal(listenFailure('127.0.0.1', 9630, 'odd'), 'cannot listen on 127.0.0.1:9630: odd');
});

t.test('listenProblem: null where a server could listen now, the line where one could not', async (t) => {
  const holder = createServer().listen(0, '127.0.0.1');
  await once(holder, 'listening');
  const address = holder.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  t.match(await listenProblem('127.0.0.1', address.port), /^cannot listen on 127\.0\.0\.1:\d+: the port is in use/);
  await new Promise((resolve) => holder.close(resolve));
  t.equal(await listenProblem('127.0.0.1', address.port), null, 'free once closed: the probe does not hold it');
  t.equal(await listenProblem('127.0.0.1', address.port), null, 'and again');
});

t.test('0.0.0.0 where the interfaces cannot be listed: one line before anything starts', async (t) => {
  const refusedNetlink = () => { throw new Error('A system error occurred: uv_interface_addresses returned Unknown system error 97'); };
  t.equal(interfacesProblem('0.0.0.0', 9630, refusedNetlink),
    "cannot listen on 0.0.0.0:9630: the machine's network interfaces cannot be listed (A system error occurred: uv_interface_addresses returned Unknown system error 97), and listening on 0.0.0.0 names each of their addresses; under systemd allow AF_NETLINK in RestrictAddressFamilies=, or listen on one address with --host or server.host");
  t.equal(interfacesProblem('127.0.0.1', 9630, refusedNetlink), null, 'one address: Fastify lists no interfaces');
  t.equal(interfacesProblem('::', 9630, refusedNetlink), null, 'nor for ::');
  t.equal(interfacesProblem('0.0.0.0', 9630, () => ({ lo: [] })), null, 'listed: no problem');
});
