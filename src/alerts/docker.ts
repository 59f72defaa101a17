import { bytes, bytesExpr } from './format.js';
import type { RuleContext, RuleGroup } from './types.js';

export function dockerRules({ thresholds: { docker }, series }: RuleContext): RuleGroup {
  return {
    name: 'upkeep-docker',
    rules: [
      {
        alert: 'DockerContainerLogLarge',
        why: 'json-file logs without max-size grow until the disk is full.',
        expr: `${series('upkeep_docker_container_log_bytes')} > ${bytesExpr(docker.containerLogSize)}`,
        forSeconds: 1800,
        severity: 'warning',
        summary: `A container's log file is larger than ${bytes(docker.containerLogSize)}.`,
        description: `The log of container {{ $labels.container }} on Docker {{ $labels.target }} is {{ $value | humanize1024 }}B (threshold ${bytes(docker.containerLogSize)}).`,
      },
      {
        alert: 'DockerReclaimableSpaceHigh',
        why: 'Counts only what the safe prune frees: not volumes (pruning them deletes data) and not unused\ntagged images (docker system df calls them reclaimable, but a prune that never removes them\nwould run, free nothing and leave the alert firing).',
        expr: `sum by (job, instance, target) (${series('upkeep_docker_prunable_bytes')}) > ${bytesExpr(docker.reclaimable)}`,
        forSeconds: 3600,
        severity: 'warning',
        summary: `Docker holds over ${bytes(docker.reclaimable)} that a safe prune would reclaim.`,
        description: `Docker {{ $labels.target }} has {{ $value | humanize1024 }}B that a prune would free in stopped containers, untagged images and build cache (threshold ${bytes(docker.reclaimable)}).`,
      },
    ],
  };
}

export function httpRules({ series }: RuleContext): RuleGroup {
  return {
    name: 'upkeep-http',
    rules: [
      {
        alert: 'ServiceDown',
        why: 'The runbook curls /health daily; upkeep probes on every scrape.',
        expr: `${series('upkeep_http_up')} == 0`,
        forSeconds: 120,
        severity: 'critical',
        summary: 'A service fails its health check.',
        description: '{{ $labels.service }} fails its health check, probed by upkeep at {{ $labels.instance }}.',
      },
    ],
  };
}
