/**
 * The webhook bench's sender: keep-alive HTTP/1.1 requests written to plain sockets, each
 * request's bytes made before the clock starts. Node's own http client took about half a
 * millisecond of CPU a request: at 1,000 requests a second, a quarter of this 2-CPU machine taken
 * from the server being measured. Handles only what upkeep answers: a status line, headers with a
 * content-length, and that many bytes of body.
 */
import { connect, type Socket } from 'node:net';

export interface Reply {
  readonly status: number;
  readonly body: string;
}

const HEAD_END = Buffer.from('\r\n\r\n');

/** The bytes of one POST. */
export function postBytes(path: string, headers: Readonly<Record<string, string>>, body: string): Buffer {
  const lines = [`POST ${path} HTTP/1.1`, 'host: 127.0.0.1', `content-length: ${Buffer.byteLength(body)}`, ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)];
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

/** One keep-alive connection: one request at a time. */
class Connection {
  private received: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (reply: Reply) => void; reject: (err: Error) => void } | null = null;

  constructor(private readonly socket: Socket, private readonly done: (connection: Connection, usable: boolean) => void) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('the server closed the connection')));
  }

  send(request: Buffer): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(request);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    this.received = this.received.length === 0 ? chunk : Buffer.concat([this.received, chunk]);
    const headEnd = this.received.indexOf(HEAD_END);
    if (headEnd < 0) return;
    const head = this.received.toString('latin1', 0, headEnd);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1]);
    if (!Number.isInteger(length)) {
      this.fail(new Error(`a reply without content-length: ${head.split('\r\n')[0] ?? ''}`));
      return;
    }
    const end = headEnd + HEAD_END.length + length;
    if (this.received.length < end) return;
    const reply = { status: Number(head.slice(9, 12)), body: this.received.toString('utf8', headEnd + HEAD_END.length, end) };
    this.received = this.received.subarray(end);
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.resolve(reply);
    this.done(this, true);
  }

  private fail(err: Error): void {
    const waiting = this.waiting;
    this.waiting = null;
    this.socket.destroy();
    waiting?.reject(err);
    this.done(this, false);
  }
}

/** Sends each request at once on an idle connection, opening one (up to `maxConnections`) when none is idle. */
export class Sender {
  private readonly idle: Connection[] = [];
  private readonly all = new Set<Connection>();
  private readonly queued: { request: Buffer; resolve: (reply: Reply) => void; reject: (err: Error) => void }[] = [];

  constructor(private readonly port: number, private readonly maxConnections = 64) {}

  post(request: Buffer): Promise<Reply> {
    const connection = this.idle.pop() ?? this.open();
    if (connection) return connection.send(request);
    return new Promise((resolve, reject) => { this.queued.push({ request, resolve, reject }); });
  }

  close(): void {
    for (const connection of this.all) connection.close();
  }

  private open(): Connection | undefined {
    if (this.all.size >= this.maxConnections) return undefined;
    const connection: Connection = new Connection(connect({ host: '127.0.0.1', port: this.port }), (finished, usable) => {
      let carrier: Connection | undefined = finished;
      if (!usable) {
        this.all.delete(finished);
        const at = this.idle.indexOf(finished);
        if (at >= 0) this.idle.splice(at, 1);
        carrier = this.queued.length > 0 ? this.open() : undefined;
      }
      const next = carrier && this.queued.shift();
      if (next) carrier?.send(next.request).then(next.resolve, next.reject);
      else if (usable) this.idle.push(finished);
    });
    this.all.add(connection);
    return connection;
  }
}
