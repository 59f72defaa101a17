import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';

/** A file upkeep refuses to read, with the reason (never any of its content). */
export class FileRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FileRefused';
  }
}

const KINDS: readonly [(info: Stats) => boolean, string][] = [
  [(info) => info.isDirectory(), 'a directory'],
  [(info) => info.isFIFO(), 'a FIFO'],
  [(info) => info.isSocket(), 'a socket'],
  [(info) => info.isCharacterDevice(), 'a character device'],
];

function kind(info: Stats): string {
  return KINDS.find(([matches]) => matches(info))?.[1] ?? 'a block device';
}

function requireRegular(info: Stats): void {
  if (!info.isFile()) throw new FileRefused(`is ${kind(info)}, not a regular file`);
}

/**
 * Reads at most `maxBytes` of a regular file. The type is checked before opening (a FIFO would
 * block the open, /dev/zero never ends) and again on the opened descriptor, in case the path was
 * swapped in between; O_NONBLOCK keeps even that open from waiting for a FIFO's writer. The read
 * stops one byte past the limit, so a file that grows while it is read cannot exhaust memory.
 */
export function readRegularFile(path: string, maxBytes: number): Buffer {
  requireRegular(statSync(path));
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const opened = fstatSync(fd);
    requireRegular(opened);
    if (opened.size > maxBytes) throw new FileRefused(`is larger than ${maxBytes} bytes`);
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    while (length <= maxBytes) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
    }
    if (length > maxBytes) throw new FileRefused(`is larger than ${maxBytes} bytes`);
    return buffer.subarray(0, length);
  } finally {
    closeSync(fd);
  }
}

/** Why a read failed, in words that never include the file's content: ENOENT, EACCES, or our own reason. */
export function readFailure(err: unknown): string {
  if (err instanceof FileRefused) return err.message;
  if (err instanceof Error && 'code' in err && typeof err.code === 'string') return err.code;
  return 'unreadable';
}
