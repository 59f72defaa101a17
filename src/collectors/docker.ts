import type Docker from 'dockerode';
import { z } from 'zod';
import type { DockerTarget } from '../config/schema.js';
import { dockerClient } from '../systems/docker/client.js';
import type { Logger } from '../log.js';
import { CachedReading } from './framework/cache.js';
import { diskUsage, systemDfWhenFree, type DiskUsage } from '../systems/docker/df.js';
import { ContainerLogs, containerName, containerSummary, type ContainerSummary, type LogSizes } from './docker-logs.js';
import type { CacheAge, CollectorInstance, CollectorModule, FamilySpec, Reading } from './framework/types.js';

const TARGET = ['target'];
const FAMILIES: readonly FamilySpec[] = [
  { name: 'upkeep_docker_container_running', help: 'Whether the container is running (1) or not (0).', type: 'gauge', labelNames: ['target', 'container'] },
  { name: 'upkeep_docker_stopped_containers', help: 'Containers that are exited, created or dead: what `docker container prune` would remove.', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_docker_dangling_images', help: 'Untagged images no other image refers to; `docker image prune` removes those no container uses.', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_docker_disk_bytes', help: 'Disk used by type, as `docker system df` reports it; refreshed every diskRefreshSeconds.', type: 'gauge', labelNames: ['target', 'type'] },
  { name: 'upkeep_docker_reclaimable_bytes', help: 'Disk a prune could reclaim by type, as `docker system df` reports it; refreshed every diskRefreshSeconds.', type: 'gauge', labelNames: ['target', 'type'] },
  { name: 'upkeep_docker_prunable_bytes', help: 'Disk docker.prune\'s safe defaults would free by type: stopped containers, untagged images no container uses, unused build cache (tagged images and volumes are never pruned); refreshed every diskRefreshSeconds.', type: 'gauge', labelNames: ['target', 'type'] },
  { name: 'upkeep_docker_container_log_bytes', help: 'Size of the container\'s json-file log (stat of its LogPath); refreshed every logRefreshSeconds.', type: 'gauge', labelNames: ['target', 'container'] },
  { name: 'upkeep_docker_log_read_errors', help: 'Containers whose log file could not be read in the last log refresh (is /var/lib/docker/containers mounted and readable?).', type: 'gauge', labelNames: TARGET },
];

// What `docker container prune` removes; paused and restarting containers are neither running nor stopped.
const STOPPED_STATES = new Set(['exited', 'created', 'dead']);

class DockerCollector implements CollectorInstance {
  readonly collector = 'docker';
  readonly target: string;
  private readonly docker: Docker;
  private readonly disk: CachedReading<DiskUsage[]>;
  private readonly logs: CachedReading<LogSizes>;
  private readonly containerLogs: ContainerLogs;
  private lastLogError: string | null = null;

  constructor(config: DockerTarget, timeoutSeconds: number, private readonly log: Logger) {
    this.target = config.name;
    this.docker = dockerClient(config, timeoutSeconds);
    this.containerLogs = new ContainerLogs(this.docker);
    // Waits out another disk-usage computation for as long as a collection may take.
    this.disk = new CachedReading(config.diskRefreshSeconds, async () => diskUsage(await systemDfWhenFree(this.docker, AbortSignal.timeout(timeoutSeconds * 1000))));
    this.logs = new CachedReading(config.logRefreshSeconds, async () => this.containerLogs.measure(await this.containers()));
  }

  async collect(signal: AbortSignal): Promise<{ readings: Reading[]; cacheAges: CacheAge[] }> {
    const target = this.target;
    const containers = await this.containers(signal);
    const dangling = z.array(z.unknown()).parse(await this.docker.listImages({ filters: { dangling: ['true'] }, abortSignal: signal }));
    const [disk, logs] = await Promise.all([this.disk.get(), this.logs.get()]);
    const readings: Reading[] = [
      { family: 'upkeep_docker_stopped_containers', labels: { target }, value: containers.filter((c) => STOPPED_STATES.has(c.State)).length },
      { family: 'upkeep_docker_dangling_images', labels: { target }, value: dangling.length },
      { family: 'upkeep_docker_log_read_errors', labels: { target }, value: logs.value.errors },
    ];
    for (const container of containers) {
      readings.push({ family: 'upkeep_docker_container_running', labels: { target, container: containerName(container) }, value: container.State === 'running' ? 1 : 0 });
    }
    for (const usage of disk.value) {
      readings.push({ family: 'upkeep_docker_disk_bytes', labels: { target, type: usage.type }, value: usage.bytes });
      readings.push({ family: 'upkeep_docker_reclaimable_bytes', labels: { target, type: usage.type }, value: usage.reclaimableBytes });
      if (usage.prunableBytes !== null) readings.push({ family: 'upkeep_docker_prunable_bytes', labels: { target, type: usage.type }, value: usage.prunableBytes });
    }
    for (const [container, bytes] of logs.value.bytes) readings.push({ family: 'upkeep_docker_container_log_bytes', labels: { target, container }, value: bytes });
    this.noteLogErrors(logs.value);
    return { readings, cacheAges: [{ reading: 'disk_usage', ageSeconds: disk.ageSeconds }, { reading: 'container_logs', ageSeconds: logs.ageSeconds }] };
  }

  async close(): Promise<void> {
    this.disk.stop();
    this.logs.stop();
  }

  private async containers(signal?: AbortSignal): Promise<ContainerSummary[]> {
    return z.array(containerSummary).parse(await this.docker.listContainers({ all: true, abortSignal: signal }));
  }

  /** One log line when log files become unreadable (typically upkeep in a container without the mount), one when they recover. */
  private noteLogErrors(logs: LogSizes): void {
    if (logs.firstError === this.lastLogError) return;
    if (logs.firstError) {
      this.log.warn({ target: this.target, containers: logs.errors, err: logs.firstError },
        'cannot read container log files; container_log_bytes is missing for them. Mount /var/lib/docker/containers read-only where upkeep runs');
    } else {
      this.log.info({ target: this.target }, 'container log files readable again');
    }
    this.lastLogError = logs.firstError;
  }
}

export const docker: CollectorModule = {
  name: 'docker',
  families: FAMILIES,
  upFamily: { name: 'upkeep_docker_up', help: 'Whether the last collection from this Docker daemon succeeded (1) or failed (0).', label: 'target' },
  build({ config, log }) {
    return config.targets.docker.map((target) => new DockerCollector(target, config.collectors.timeoutSeconds, log));
  },
};
