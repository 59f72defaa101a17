import { join } from 'node:path';
import t from 'tap';
import { Engine } from '../../../src/engine/engine.js';
import { RedisConnection, tlsProblem } from '../../../src/systems/redis/client.js';
import { bufferLogger } from '../../fixtures/log.js';
import { freePort } from '../../fixtures/ports.js';
import { startRedis } from '../../fixtures/redis.js';
import { tlsFiles } from '../../fixtures/tls.js';
import { tempDir, testConfig } from '../../http/helpers.js';

t.test('a remediation against rediss:// with a private CA goes through the one client factory, caFile included', async (t) => {
  const { dir, files: { ca, cert, key } } = await tlsFiles(t);
  const tlsPort = await freePort();
  const server = await startRedis({ args: ['--tls-port', String(tlsPort), '--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', ca, '--tls-auth-clients', 'no'] });
  t.teardown(() => server.destroy());
  const url = `rediss://127.0.0.1:${tlsPort}`;

  const bgsave = async (target: Record<string, string>) => {
    const logger = bufferLogger();
    const config = testConfig({ state: { dir: await tempDir(t) }, targets: { redis: [{ name: 'cache', url, ...target }] } });
    const engine = await Engine.create({ config, log: logger.log });
    try {
      return await engine.submit({ remediation: 'redis.bgsave', params: { target: 'cache' }, trigger: 'manual' }).done;
    } finally {
      await engine.close();
    }
  };

  const trusted = await bgsave({ caFile: ca });
  t.equal(trusted.status, 'success', trusted.error ?? trusted.reason ?? 'succeeded');
  t.match(trusted.verification?.detail, /^LASTSAVE advanced from \d+ to \d+, rdb_last_bgsave_status:ok, same run_id$/);

  const untrusted = await bgsave({});
  t.equal(untrusted.status, 'failure', 'TLS is really on: without the CA file the certificate is refused');
  // Retrying cannot fix a certificate: the run fails at once, naming the TLS problem and the fix.
  t.equal(untrusted.error, "TLS: self-signed certificate in certificate chain (SELF_SIGNED_CERT_IN_CHAIN); for a server signed by a private CA, set the target's caFile to that CA's certificate");

  // Scrapes use the same factory through RedisConnection, which reports the handshake's own error.
  const scrape = new RedisConnection({ url, caFile: ca, timeoutSeconds: 5, connectionName: 'upkeep-test' });
  t.teardown(() => scrape.close());
  t.equal(await (await scrape.ready()).ping(), 'PONG');
  t.equal(await (await scrape.ready()).ping(), 'PONG', 'the ready client is reused');
  const refused = new RedisConnection({ url, timeoutSeconds: 5, connectionName: 'upkeep-test' });
  t.teardown(() => refused.close());
  await t.rejects(refused.ready(), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
  const unreadable = new RedisConnection({ url, caFile: join(dir, 'missing.pem'), timeoutSeconds: 5, connectionName: 'upkeep-test' });
  await t.rejects(unreadable.ready(), { code: 'ENOENT' }, 'a CA file that cannot be read fails the scrape');
  await unreadable.close();
});

t.test('tlsProblem names certificate and handshake failures, and nothing else', async (t) => {
  const failure = (message: string, code: string) => Object.assign(new Error(message), { code });
  t.equal(tlsProblem(failure('certificate has expired', 'CERT_HAS_EXPIRED')), "TLS: certificate has expired (CERT_HAS_EXPIRED); for a server signed by a private CA, set the target's caFile to that CA's certificate");
  t.match(tlsProblem(failure("Hostname/IP does not match certificate's altnames", 'ERR_TLS_CERT_ALTNAME_INVALID')), /^TLS: Hostname/);
  t.equal(tlsProblem(failure('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED')), null);
  t.equal(tlsProblem(new Error('Connection is closed.')), null);
});
