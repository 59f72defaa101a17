import { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Calls `then` once the connection owes no more replies to requests that fully arrived.
 *
 * Node's parser reads pipelined requests from one chunk: a whole POST followed by bytes that are
 * no HTTP raises 'clientError' while the POST is already being handled. Refusing at once (a 400
 * written, the socket destroyed) ran the POST but lost its 202 and its `request` log line, so the
 * client was told only "malformed" about a run that happened. HTTP/1.1 answers in order: each
 * reply owed goes out first, then the refusal.
 *
 * A request that had not fully arrived (the error is inside its chunked body) is owed nothing: its
 * body never ends, so its handler never runs, and node aborts it when the refusal closes the
 * connection.
 */
export function afterRepliesOwed(socket: Socket, then: () => void): void {
  const owed = replyOwed(socket);
  if (owed === null) {
    then();
    return;
  }
  // What the client sends meanwhile could only be thrown away (a failed parser reads no more
  // requests): it is left unread, not parsed into an error a chunk at a time.
  socket.pause();
  // 'close' follows 'finish', by which time node has moved the socket on to the next reply in
  // line; it also comes when the connection is lost first.
  owed.once('close', () => afterRepliesOwed(socket, then));
}

function replyOwed(socket: Socket): ServerResponse | null {
  // The reply the socket is writing now, or is to write next: node's own default 'clientError'
  // handler looks here for the same reason. It is not in node's types, so it is checked, not cast.
  const reply: unknown = Reflect.get(socket, '_httpMessage');
  return !socket.destroyed && reply instanceof ServerResponse && reply.req.complete ? reply : null;
}
