import t from 'tap';
import { PartialWork } from '../src/actions/contract.js';
import { plainMessage, withPrivilegeNeeded } from '../src/errors.js';
import { errorMessage } from '../src/redact.js';

t.test('ioredis\'s "max retries" error says what happened, in the journal\'s error and a partial run\'s', (t) => {
  // As ioredis makes it when a command's retries run out while the connection is down.
  const retries = Object.assign(new Error('Reached the max retries per request limit (which is 2). Refer to "maxRetriesPerRequest" option for details.'), { name: 'MaxRetriesPerRequestError' });
  const said = 'lost the connection to Redis and it did not come back while the command was retried 2 times (was the server restarted or stopped?)';
  t.equal(plainMessage(retries), said);
  t.equal(errorMessage(retries), said);
  t.equal(new PartialWork(retries, { unlinked: 39_533 }).message, said, 'the message a failed redis.expire_keys journals beside what it had done');
  t.equal(plainMessage(new Error('Connection is closed.')), 'Connection is closed.', 'any other message as it is');
  t.equal(errorMessage(new Error('connect ECONNREFUSED postgres://u:pw@127.0.0.1:5432/app')), 'connect ECONNREFUSED postgres://u:***@127.0.0.1:5432/app', 'and still masked');
  t.end();
});

t.test('withPrivilegeNeeded adds what a refused step needs to PostgreSQL\'s "permission denied", and only to it', async (t) => {
  const denied = Object.assign(new Error('permission denied for table events'), { code: '42501' });
  const added = withPrivilegeNeeded(denied, 'it needs UPDATE');
  t.match(added, { message: 'permission denied for table events: it needs UPDATE', cause: denied });
  const other = Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' });
  t.equal(withPrivilegeNeeded(other, 'it needs UPDATE'), other, 'another error is left as it is');
  t.equal(withPrivilegeNeeded('42501', 'it needs UPDATE'), '42501', 'and so is what is no error');
});
