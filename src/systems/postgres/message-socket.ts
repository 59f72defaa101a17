import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';

// A PostgreSQL message: a type byte, then a 32-bit length that counts itself and the body.
const HEADER = 5;
const DATA_ROW = 0x44;

// Every MessageSocket's reads land here, one at a time (MessageSocket's constructor).
const READS = Buffer.alloc(64 * 1024);

/** Takes a DataRow message, bytes[start, end), in place of pg; must not throw. Valid only during the call. */
export type RowSink = (bytes: Buffer, start: number, end: number) => void;

/**
 * A socket to PostgreSQL whose reads are handed on as whole protocol messages: a message split
 * between two reads is joined here, once, into a buffer of its own size (pg's parser would copy it
 * with the rest of the read into a buffer of twice the read's size, and nearly every 64 KB read of
 * rows ends inside a row). While a caller takes the rows (takeRows), the DataRow messages are read
 * in place and never reach pg; the other messages, and all of them otherwise, are copied out of the
 * shared read buffer for pg (docs/performance.md, "Rows read in place").
 *
 * Plain connections only: with TLS the encrypted bytes bypass this socket, and pg reads the
 * one-byte answer to its SSL request before any message.
 */
export class MessageSocket extends Socket {
  // The header of a message split before its length was known, and how much of it came.
  private readonly head = Buffer.alloc(HEADER);
  private headBytes = 0;
  // A split message whose length is known: the buffer it is gathered in, and how much came.
  private message: Buffer | null = null;
  private messageBytes = 0;
  // Bytes that are not a valid message (a length under 4) end the framing: pg reports the error.
  private passThrough = false;
  // While set, DataRow messages go here instead of to pg (takeRows).
  private rows: RowSink | null = null;

  constructor() {
    // Reads land in one buffer shared by every MessageSocket, not in a new 64 KB buffer per read:
    // those are freed only by a garbage collection, and once the rows stopped making garbage
    // (takeRows) collections came a third less often and the reads' buffers piled up (peak RSS at
    // 10,200 tables 2-4 MB higher). What is handed on to pg is copied out of it (pass).
    // net.Socket takes `onread` in its constructor too (its typings list it for connect() only).
    const options: SocketConstructorOpts & { readonly onread: OnReadOpts } = {
      onread: { buffer: READS, callback: (bytes) => this.onRead(READS.subarray(0, bytes)) },
    };
    super(options);
  }

  /**
   * Hands the DataRow messages that arrive from now on to `sink`, in order, instead of to pg, until
   * called with null; every other message still goes to pg, so its query still sees its row
   * description, its end and its errors. For a caller that holds the connection for one query and
   * reads the rows' bytes itself (DataRowFields): pg would make a string of every field first.
   */
  takeRows(sink: RowSink | null): void {
    this.rows = sink;
  }

  /** A chunk of bytes owned by the caller, framed as a read is (tests feed reads this way). */
  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (this.passThrough || !Buffer.isBuffer(chunk)) return super.push(chunk, encoding);
    return this.frame(chunk, false);
  }

  /**
   * A read, in the shared buffer: valid only until this returns. False when pg's side is full:
   * the socket stops reading until pg takes more (net.Socket's _read starts it again).
   */
  private onRead(data: Buffer): boolean {
    return this.passThrough ? this.pass(data, true) : this.frame(data, true);
  }

  /** Hands on the whole messages of `data`, gathers a split one; `borrowed`: see pass. */
  private frame(chunk: Buffer, borrowed: boolean): boolean {
    let ok = true;
    let data = chunk;
    if (this.headBytes > 0 || this.message) {
      data = this.gather(data);
      if (this.message && this.messageBytes === this.message.length) {
        ok = this.deliver(this.message, false);
        this.message = null;
        this.messageBytes = 0;
      }
      if (this.passThrough) return data.length > 0 ? this.pass(data, borrowed) && ok : ok;
    }
    let end = 0;
    while (end + HEADER <= data.length) {
      const length = data.readUInt32BE(end + 1);
      if (length < 4) {
        this.passThrough = true;
        break;
      }
      if (end + 1 + length > data.length) break;
      end += 1 + length;
    }
    if (end > 0) ok = this.deliver(data.subarray(0, end), borrowed) && ok;
    if (end === data.length) return ok;
    if (this.passThrough) return this.pass(data.subarray(end), borrowed) && ok;
    this.gather(data.subarray(end));
    return ok;
  }

  /** Passes whole messages on to pg, less the DataRow messages a sink takes. */
  private deliver(messages: Buffer, borrowed: boolean): boolean {
    const sink = this.rows;
    if (!sink) return this.pass(messages, borrowed);
    let ok = true;
    let from = 0;
    for (let at = 0; at < messages.length;) {
      const end = at + 1 + messages.readUInt32BE(at + 1);
      if (messages[at] === DATA_ROW) {
        if (at > from) ok = this.pass(messages.subarray(from, at), borrowed) && ok;
        sink(messages, at, end);
        from = end;
      }
      at = end;
    }
    return from < messages.length ? this.pass(messages.subarray(from), borrowed) && ok : ok;
  }

  /** Bytes for pg, copied when they lie in the shared read buffer: pg may take them later. */
  private pass(bytes: Buffer, borrowed: boolean): boolean {
    return super.push(borrowed ? Buffer.from(bytes) : bytes);
  }

  /** Takes the bytes of a split message from the start of `data`; returns what follows it. */
  private gather(data: Buffer): Buffer {
    let rest = data;
    if (!this.message) {
      const take = Math.min(HEADER - this.headBytes, rest.length);
      rest.copy(this.head, this.headBytes, 0, take);
      this.headBytes += take;
      rest = rest.subarray(take);
      if (this.headBytes < HEADER) return rest;
      const length = this.head.readUInt32BE(1);
      this.headBytes = 0;
      if (length < 4) {
        this.passThrough = true;
        this.pass(this.head, true);
        return rest;
      }
      this.message = Buffer.allocUnsafe(1 + length);
      this.head.copy(this.message);
      this.messageBytes = HEADER;
    }
    const take = Math.min(this.message.length - this.messageBytes, rest.length);
    rest.copy(this.message, this.messageBytes, 0, take);
    this.messageBytes += take;
    return rest.subarray(take);
  }
}
