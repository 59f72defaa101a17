import { createServer } from 'node:net';

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Thrown by a waitFor probe when what it waits for can no longer happen: waitFor rethrows it at once. */
export class NoLongerPossible extends Error {}

export async function waitFor<T>(what: string, probe: () => Promise<T>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      return await probe();
    } catch (err) {
      if (err instanceof NoLongerPossible) throw err;
      lastError = err;
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  }
  throw new Error(`timed out waiting for ${what}: ${String(lastError)}`);
}
