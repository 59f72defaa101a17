import { errorCode } from '../../errors.js';
import { errorMessage } from '../../log.js';

/**
 * A state store that cannot be opened or used: names the store (`state.postgres`, `state.dir`) and
 * what it was doing, never a URL or its password. The CLI prints its message and exits 1.
 */
export class StateStoreError extends Error {
  /** The server's SQLSTATE or the socket's or file system's error code, when there is one. */
  readonly code?: string;

  constructor(readonly operation: string, cause: unknown, store: 'state.postgres' | 'state.dir' = 'state.postgres') {
    super(`${store}: ${operation}: ${errorMessage(cause)}`);
    this.name = 'StateStoreError';
    const code = errorCode(cause);
    if (code !== undefined) this.code = code;
  }
}
