import type Docker from 'dockerode';
import type { DockerTarget } from './target.js';
import { dockerode } from '../../lazy.js';

/**
 * The Docker API client for a target: TCP when it names a host, else the Unix socket. Scrapes bound
 * each call by `timeoutSeconds`; remediations (a prune may take minutes) leave it out and are bound
 * by their run's deadline instead.
 */
export function dockerClient(target: DockerTarget, timeoutSeconds?: number): Docker {
  const Docker = dockerode();
  const timeout = timeoutSeconds === undefined ? {} : { timeout: timeoutSeconds * 1000 };
  return target.host
    ? new Docker({ host: target.host, port: target.port ?? 2375, ...timeout })
    : new Docker({ socketPath: target.socketPath ?? '/var/run/docker.sock', ...timeout });
}
