import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { afterRepliesOwed } from './replies-owed.js';

/**
 * Slow clients. A client may hold a connection only so long:
 * - headersTimeoutSeconds: the request's headers must arrive within it (408);
 * - requestTimeoutSeconds: the whole request, body included, must arrive within it (408), so a
 *   body trickled a byte at a time is cut off;
 * - idleTimeoutSeconds: a connection on which nothing arrives for this long while upkeep waits for
 *   a request is closed (a stalled body, a connection that never sends anything);
 * - keepAliveTimeoutSeconds: an idle keep-alive connection between two requests is closed.
 * Once a request has fully arrived the idle timeout no longer applies: upkeep's own deadlines
 * (collectors.timeoutSeconds, a run's timeoutSeconds for ?wait=true) bound the reply.
 */
export function timeoutOptions(server: Readonly<Config['server']>) {
  const headersTimeout = milliseconds(server.headersTimeoutSeconds);
  const requestTimeout = milliseconds(server.requestTimeoutSeconds);
  return {
    requestTimeout,
    connectionTimeout: milliseconds(server.idleTimeoutSeconds),
    keepAliveTimeout: milliseconds(server.keepAliveTimeoutSeconds),
    // Node looks for expired requests every connectionsCheckingInterval (30 s by default), which
    // would stretch a short timeout; once a second keeps the cut close to the configured value.
    // requireHostHeader: node's own refusal of an HTTP/1.1 request without Host had an empty body and
    // no log line; request-hygiene.ts refuses it in upkeep's shape.
    http: { headersTimeout, requestTimeout, connectionsCheckingInterval: Math.min(1000, headersTimeout), maxHeaderSize: server.maxHeaderBytes, requireHostHeader: false },
  };
}

function milliseconds(seconds: number): number {
  return Math.max(1, Math.round(seconds * 1000));
}

/**
 * What a client that did not finish its request in time gets: a 408 naming the limits, then the
 * connection closes. Other malformed requests (bad HTTP, oversized headers) get a 400 or 431.
 * Requests that arrived whole before the error on the same connection get their replies first
 * (replies-owed.ts).
 */
export function clientErrorHandler(server: Readonly<Config['server']>, log: Logger) {
  const timeout = `the request did not arrive in time: headers within ${server.headersTimeoutSeconds}s (server.headersTimeoutSeconds), the whole request within ${server.requestTimeoutSeconds}s (server.requestTimeoutSeconds)`;
  // A failed parser fails again on every chunk that follows, and a timeout may follow too, while
  // the refusal waits for the replies owed: the first error is the one answered.
  const refusing = new WeakSet<Socket>();
  return (err: Error & { code?: string }, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed || refusing.has(socket)) return;
    refusing.add(socket);
    const [status, text, error] = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'Request Timeout', timeout]
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', `the request headers are over ${server.maxHeaderBytes} bytes (server.maxHeaderBytes)`]
        : [400, 'Bad Request', 'malformed HTTP request'];
    afterRepliesOwed(socket, () => {
      log.info({ status, reason: error, remoteAddress: socket.remoteAddress ?? null }, 'connection refused');
      const body = JSON.stringify({ error });
      if (socket.writable) {
        socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      }
      socket.destroy();
    });
  };
}

/**
 * Connection hygiene on every request: a reply sent before the request's body has fully arrived
 * (401, 413, 415...) closes the connection, so the rest of a slow or huge body is never waited
 * for; once the request has arrived, the idle timeout stops applying to it.
 */
export function connectionHooks(fastify: FastifyInstance): void {
  fastify.addHook('preHandler', async (request) => {
    // Injected requests (tests) have a stand-in socket without timers.
    const socket: Partial<Socket> = request.raw.socket;
    if (typeof socket.setTimeout === 'function') socket.setTimeout(0);
  });
  fastify.addHook('onSend', async (request, reply) => {
    // `complete` is false on a real request whose body is still arriving (undefined when injected).
    if (request.raw.complete === false) reply.header('connection', 'close');
  });
}
