import t from 'tap';
import { bytes, bytesExpr, count, duration, number, percent, promDuration, secondsExpr } from '../../src/alerts/format.js';

t.test('numbers as PromQL and people read them', async (t) => {
  t.equal(number(0.8), '0.8');
  t.equal(number(0.1 + 0.2), '0.3');
  t.equal(number(2147483648), '2147483648');
  t.equal(percent(0.8), '80%');
  t.equal(percent(1.1), '110%');
  t.equal(percent(0.125), '12.5%');
  t.equal(count(10000), '10k');
  t.equal(count(10_000_000), '10M');
  t.equal(count(1500), '1500');
  t.equal(count(999), '999');
});

t.test('durations in expressions, sentences and for:', async (t) => {
  t.same([26 * 3600, 35 * 86400, 86400, 3600, 600, 90].map(secondsExpr), ['26 * 3600', '35 * 86400', '86400', '3600', '600', '90']);
  t.same([26 * 3600, 35 * 86400, 86400, 3600, 600, 90, 1.5].map(duration), ['26h', '35 days', '1 day', '1h', '10m', '90s', '1.5s']);
  t.same([600, 3600, 86400, 90, 0, 0.25, 8 * 86400].map(promDuration), ['10m', '1h', '1d', '90s', '0s', '250ms', '8d']);
});

t.test('sizes in expressions and sentences', async (t) => {
  t.equal(bytesExpr(1024 ** 3), '1024 * 1024 * 1024');
  t.equal(bytesExpr(10 * 1024 ** 3), '10 * 1024 * 1024 * 1024');
  t.equal(bytesExpr(100 * 1024 ** 2), '100 * 1024 * 1024');
  t.equal(bytesExpr(2048), '2 * 1024');
  t.equal(bytesExpr(1e10), '10000000000', 'a decimal size stays a plain number');
  t.equal(bytesExpr(1500), '1500');
  t.equal(bytes(1024 ** 3), '1 GiB');
  t.equal(bytes(2 * 1024 ** 4), '2 TiB');
  t.equal(bytes(1e10), '10 GB');
  t.equal(bytes(1500), '1500 bytes');
});
