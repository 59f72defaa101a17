import t from 'tap';
import { acceptsGzip } from '../../src/http/accept-gzip.js';

t.test('gzip when the header takes it, the text as it is otherwise', async (t) => {
  const cases: [string | undefined, boolean][] = [
    [undefined, false],
    ['', false],
    ['identity', false],
    ['gzip', true],
    // Prometheus's header, curl --compressed's, a browser's.
    ['deflate, gzip, br, zstd', true],
    ['gzip, deflate, br', true],
    ['GZIP', true],
    ['x-gzip', true],
    [' gzip ; q=0.5 ', true],
    ['gzip;q=0', false],
    ['gzip;q=0.000', false],
    ['gzip;q=0.001', true],
    ['gzip;Q=1.0', true],
    ['br, deflate', false],
    ['*', true],
    ['*;q=0', false],
    ['gzip;q=0, *', false],
    ['*, gzip;q=0', false],
    ['*;q=0, gzip', true],
    ['gzip;q=0, x-gzip', true],
    // A weight that is not one: not taken as a yes.
    ['gzip;q=2', false],
    ['gzip;q=abc', false],
    ['gzip;q=', false],
    ['gzip;level=9', true],
    ['gzipped', false],
    [',,,', false],
  ];
  for (const [header, expected] of cases) t.equal(acceptsGzip(header), expected, JSON.stringify(header));
});
