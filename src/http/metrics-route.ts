import { pipeline } from 'node:stream/promises';
import type { FastifyInstance } from 'fastify';
import type { Scraper } from '../collectors/framework/scraper.js';
import { nodeZlib } from '../lazy.js';
import { errorMessage, type Logger } from '../log.js';
import type { Registry } from '../prom.js';
import { acceptsGzip } from './accept-gzip.js';
import { ClientGone, sendCopies, sendSlices } from './slices.js';

export interface MetricsRouteOptions {
  scraper: Scraper;
  registry: Registry;
  log: Logger;
  /** True once the server is closing: the response then tells its client to hang up. */
  closing(): boolean;
}

/**
 * GET /metrics. Gzipped when the scraper asks for it, as Prometheus does with every scrape: at
 * 10,200 tables the text is 9.9 MB, and gzip sends 312 KB of it (the exporters gzip when asked too).
 * Level 1, the fastest: it compressed 11 MB of table series in 26 ms against level 6's 71 ms, for
 * 10 % more bytes, and zlib does it on libuv's thread pool, not on the thread that answers the
 * webhook.
 */
export function metricsRoute(fastify: FastifyInstance, options: MetricsRouteOptions): void {
  const { scraper, registry, log } = options;
  fastify.get('/metrics', async (request, reply) => {
    const slices = await scraper.slices();
    // Written here rather than handed to Fastify as a stream: the text is rendered as the socket
    // (or gzip) takes it, into buffers reused once it has taken them, and only a write's callback
    // says when that is. So no onSend hook runs: the one that applies, closing the connection
    // during shutdown, is done here.
    reply.hijack();
    const response = reply.raw;
    const socket = response.socket;
    const gzip = acceptsGzip(request.headers['accept-encoding']);
    response.setHeader('content-type', registry.contentType);
    response.setHeader('vary', 'Accept-Encoding');
    if (gzip) response.setHeader('content-encoding', 'gzip');
    if (options.closing()) response.setHeader('connection', 'close');
    response.writeHead(200);
    const zlib = gzip ? nodeZlib() : undefined;
    const compressor = zlib?.createGzip({ level: zlib.constants.Z_BEST_SPEED });
    // The pipeline ends the response when gzip ends, and destroys gzip when the client goes away;
    // its own rejection then says no more than sendSlices does.
    const piped = compressor ? pipeline(compressor, response).catch(() => undefined) : undefined;
    try {
      if (compressor) {
        await sendCopies(compressor, slices);
        compressor.end();
        await piped;
      } else {
        await sendSlices(response, slices);
        response.end();
      }
      // A scrape under way when shutdown began kept its connection open (its headers went before),
      // and the server's close, which ends only idle connections, would wait for it until the
      // headers timeout (10 s): nothing else is sent on it, so it is ended once this is.
      if (options.closing()) socket?.end();
    } catch (err) {
      // The status line is sent: all that is left is to cut the response short, so Prometheus
      // records a failed scrape rather than a partial one.
      if (!(err instanceof ClientGone)) log.error({ err: errorMessage(err) }, 'the exposition failed mid-way');
      compressor?.destroy();
      response.destroy();
    }
  });
}
