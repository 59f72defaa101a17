import { stat } from 'node:fs/promises';
import type Docker from 'dockerode';
import { z } from 'zod';
import { errorMessage } from '../log.js';
import { onFirstUse } from '../lazy-schema.js';

export const containerSummary = onFirstUse(() => z.object({ Id: z.string(), Names: z.array(z.string()), State: z.string() }));
export type ContainerSummary = z.infer<typeof containerSummary>;
const inspected = onFirstUse(() => z.object({ LogPath: z.string().nullish() }));
const notFound = onFirstUse(() => z.object({ statusCode: z.literal(404) }));

export interface LogSizes {
  /** Bytes by container name. */
  readonly bytes: ReadonlyMap<string, number>;
  /** Containers whose log file exists for Docker but could not be stat'ed from here. */
  readonly errors: number;
  readonly firstError: string | null;
}

/** A container's name as `docker ps` shows it (the API prefixes a slash). */
export function containerName(container: ContainerSummary): string {
  return (container.Names[0] ?? container.Id.slice(0, 12)).replace(/^\//, '');
}

/**
 * Sizes of the containers' json-file logs, by stat of each LogPath. LogPath needs an inspect per
 * container, so paths are remembered by container id and only new containers are inspected.
 */
export class ContainerLogs {
  private readonly paths = new Map<string, string>();

  constructor(private readonly docker: Docker) {}

  async measure(containers: readonly ContainerSummary[]): Promise<LogSizes> {
    await this.learnPaths(containers);
    const bytes = new Map<string, number>();
    let errors = 0;
    let firstError: string | null = null;
    for (const container of containers) {
      const path = this.paths.get(container.Id);
      // An empty LogPath means a logging driver without a local file (journald, syslog, none).
      if (!path) continue;
      try {
        bytes.set(containerName(container), (await stat(path)).size);
      } catch (err) {
        errors += 1;
        firstError ??= errorMessage(err);
      }
    }
    return { bytes, errors, firstError };
  }

  private async learnPaths(containers: readonly ContainerSummary[]): Promise<void> {
    const present = new Set(containers.map((container) => container.Id));
    for (const id of this.paths.keys()) if (!present.has(id)) this.paths.delete(id);
    const unknown = containers.filter((container) => !this.paths.has(container.Id));
    await Promise.all(unknown.map(async (container) => {
      try {
        const details = inspected.parse(await this.docker.getContainer(container.Id).inspect());
        this.paths.set(container.Id, details.LogPath ?? '');
      } catch (err) {
        // Removed between the list and the inspect: it has no log to measure any more.
        if (!notFound.safeParse(err).success) throw err;
      }
    }));
  }
}
