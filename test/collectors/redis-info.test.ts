import { readFile } from 'node:fs/promises';
import t from 'tap';
import { infoReadings } from '../../src/collectors/redis-info.js';
import { parseInfo } from '../../src/systems/redis/info.js';

const fixture = (name: string) => readFile(new URL(`../fixtures/${name}`, import.meta.url), 'utf8');

function valuesOf(readings: ReturnType<typeof infoReadings>): Record<string, number> {
  return Object.fromEntries(readings.map((reading) => [
    reading.family + (reading.labels.db ? `{${reading.labels.db}}` : ''),
    reading.value,
  ]));
}

t.test('parses real Redis 7.0 INFO output (CRLF lines, sections, keyspace)', async (t) => {
  const info = parseInfo(await fixture('redis-info-7.0-ok.txt'));
  t.equal(info.fields.get('redis_version'), '7.0.15');
  t.equal(info.fields.get('rdb_last_bgsave_status'), 'ok');
  t.equal(info.fields.get('executable'), '/tmp/upk/redis-server', 'values keep their own colons and slashes');
  t.notOk(info.fields.has('# Server'));
  t.same(info.keyspace, [{ db: 'db0', keys: 2, expires: 1 }, { db: 'db3', keys: 2, expires: 1 }]);
});

t.test('turns INFO into the SPEC metrics, value for value', async (t) => {
  const readings = infoReadings(parseInfo(await fixture('redis-info-7.0-ok.txt')), 'cache');
  t.ok(readings.every((reading) => reading.labels.target === 'cache'));
  t.same(valuesOf(readings), {
    upkeep_redis_mem_fragmentation_ratio: 7.24,
    upkeep_redis_memory_used_bytes: 1041360,
    upkeep_redis_memory_max_bytes: 268435456,
    upkeep_redis_rdb_last_save_timestamp_seconds: 1795395838,
    upkeep_redis_rdb_changes_since_last_save: 0,
    upkeep_redis_keyspace_hits_total: 1,
    upkeep_redis_keyspace_misses_total: 1,
    upkeep_redis_rdb_last_bgsave_success: 1,
    'upkeep_redis_keys{db0}': 2,
    'upkeep_redis_expiring_keys{db0}': 1,
    'upkeep_redis_keys{db3}': 2,
    'upkeep_redis_expiring_keys{db3}': 1,
  });
});

t.test('a failed BGSAVE reads as 0', async (t) => {
  const values = valuesOf(infoReadings(parseInfo(await fixture('redis-info-7.0-bgsave-err.txt')), 'cache'));
  t.equal(values.upkeep_redis_rdb_last_bgsave_success, 0);
  t.equal(values.upkeep_redis_rdb_changes_since_last_save, 1);
  t.equal(values['upkeep_redis_keys{db0}'], 3);
});

t.test('missing or unreadable fields are skipped; an empty db0 still reports 0 keys', (t) => {
  const info = parseInfo('# Memory\r\nused_memory:abc\r\nmaxmemory:0\r\nnocolon\r\n# Keyspace\r\ndb2:keys=5,expires=x,avg_ttl=0\r\ndb6:keys=3\r\ndb4:keys=7,expires=2\r\n');
  t.same(info.keyspace, [{ db: 'db4', keys: 7, expires: 2 }], 'a keyspace line with a non-number or a missing count is dropped');
  t.same(valuesOf(infoReadings(info, 'x')), {
    upkeep_redis_memory_max_bytes: 0,
    'upkeep_redis_keys{db0}': 0,
    'upkeep_redis_expiring_keys{db0}': 0,
    'upkeep_redis_keys{db4}': 7,
    'upkeep_redis_expiring_keys{db4}': 2,
  });
  t.end();
});
