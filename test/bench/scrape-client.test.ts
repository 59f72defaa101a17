import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { linesStartingWith, scrape } from '../../bench/scrape-client.js';

t.test('linesStartingWith counts the lines with a prefix, the first line included, a match inside a line not', async (t) => {
  t.equal(linesStartingWith('a{x} 1\nb{x} 2\na{y} 3\n# a{z}\nba{q} 4\n', 'a{'), 2);
  t.equal(linesStartingWith('b 1\nb 2', 'a{'), 0);
  t.equal(linesStartingWith('', 'a{'), 0);
  t.equal(linesStartingWith('a{\na{\na{', 'a{'), 3, 'back to back, and a last line without a newline');
});

t.test('scrape reads the whole body in chunks, asks for it uncompressed, and refuses a status other than 200', async (t) => {
  const line = 'upkeep_x{table="t"} 1\n';
  const encodings: (string | undefined)[] = [];
  const server = createServer((request, response) => {
    encodings.push(request.headers['accept-encoding']);
    if (request.url === '/missing') { response.writeHead(404).end('no'); return; }
    response.writeHead(200, { 'content-type': 'text/plain' });
    // Several writes, so the client sees several chunks.
    for (let i = 0; i < 5_000; i += 1) response.write(line);
    response.end('é\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const result = await scrape(`${base}/metrics`);
  t.equal(result.text, `${line.repeat(5_000)}é\n`, 'the body, decoded as UTF-8');
  t.equal(result.bytes, line.length * 5_000 + 3, 'bytes counted as sent (é is two)');
  t.ok(result.seconds > 0, 'timed');
  t.same(encodings, ['identity']);
  await t.rejects(scrape(`${base}/missing`), { message: `${base}/missing: HTTP 404` });
});

t.test('asked for gzip, scrape counts the bytes on the wire and unzips the text; a server that does not gzip is read as it is', async (t) => {
  const text = 'upkeep_x{table="t"} 1\n'.repeat(2_000);
  const server = createServer((request, response) => {
    if (request.url === '/plain') { response.writeHead(200).end(text); return; }
    const zipped = gzipSync(text);
    response.writeHead(200, { 'content-encoding': 'gzip', 'content-length': zipped.length }).end(zipped);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const zipped = await scrape(`${base}/metrics`, 'gzip');
  t.equal(zipped.text, text);
  t.equal(zipped.bytes, gzipSync(text).length);
  const plain = await scrape(`${base}/plain`, 'gzip');
  t.equal(plain.text, text);
  t.equal(plain.bytes, text.length);
});
