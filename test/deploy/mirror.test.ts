import t from 'tap';
import { mirrorFromSources } from './base-image.js';

// The local base image is made from the Debian mirror this machine's apt already uses.
t.test('the mirror comes from the deb822 stanza that serves the suite', async (t) => {
  const sources = [
    'Types: deb',
    'URIs: http://security.example/debian-security',
    'Suites: bookworm-security',
    'Components: main',
    '',
    'Types: deb',
    '# a comment line',
    'URIs: http://mirror.example/debian http://second.example/debian',
    'Suites: bookworm bookworm-updates',
    'Components: main',
  ].join('\n');
  t.equal(mirrorFromSources(sources), 'http://mirror.example/debian', 'the first URI of the stanza listing bookworm itself');
  t.equal(mirrorFromSources(sources, 'bookworm-security'), 'http://security.example/debian-security');
  t.throws(() => mirrorFromSources(sources, 'trixie'), /no apt source for suite trixie/);
});
