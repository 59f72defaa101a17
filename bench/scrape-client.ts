import { get } from 'node:http';
import { gunzipSync } from 'node:zlib';

/** `bytes` as they came over the wire (compressed, if the server gzipped them); `text` unzipped. */
export interface Scrape { readonly seconds: number; readonly bytes: number; readonly text: string }

/**
 * One scrape, timed from the request to its last byte, read with node:http as it arrives (chunks
 * kept, nothing parsed). The body is decoded to text only after the clock stops: decoding 10 MB on
 * the client cost 35-50 ms of upkeep's 10,200-table scrape (and about twice that of
 * postgres_exporter's 23 MB), work of the client, not of the server measured. fetch() is not used:
 * its arrayBuffer() grew faster than the body (docs/performance.md, "The growth bench's client and
 * its warm-up"): at 50,000 tables (49 MB) it took 802-1,029 ms where this took 428-486.
 */
export async function scrape(url: string, encoding: 'identity' | 'gzip' = 'identity'): Promise<Scrape> {
  const started = performance.now();
  const { status, chunks, gzipped } = await new Promise<{ status: number; chunks: Buffer[]; gzipped: boolean }>((resolve, reject) => {
    // Uncompressed unless asked: the goals compare the servers' work without gzip's (Prometheus
    // asks for gzip; the scrape bench also measures that, beside them).
    get(url, { headers: { 'accept-encoding': encoding } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => { chunks.push(chunk); });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, chunks, gzipped: response.headers['content-encoding'] === 'gzip' }));
      response.on('error', reject);
    }).on('error', reject);
  });
  const seconds = (performance.now() - started) / 1000;
  if (status !== 200) throw new Error(`${url}: HTTP ${status}`);
  const body = Buffer.concat(chunks);
  return { seconds, bytes: body.length, text: (gzipped ? gunzipSync(body) : body).toString('utf8') };
}

/** How many lines of `text` start with `prefix` (without splitting a 49 MB exposition into lines). */
export function linesStartingWith(text: string, prefix: string): number {
  let count = text.startsWith(prefix) ? 1 : 0;
  for (let at = text.indexOf(`\n${prefix}`); at >= 0; at = text.indexOf(`\n${prefix}`, at + 1)) count += 1;
  return count;
}
