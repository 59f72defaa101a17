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
        why: 'Volumes are left out: pruning them deletes data, so their space is not "reclaimable"\nin the sense the safe prune can act on.',
        expr: `sum by (job, instance, target) (${series('upkeep_docker_reclaimable_bytes', 'type!="volumes"')}) > ${bytesExpr(docker.reclaimable)}`,
        forSeconds: 3600,
        severity: 'warning',
        summary: `Docker holds over ${bytes(docker.reclaimable)} that a safe prune would reclaim.`,
        description: `Docker {{ $labels.target }} has {{ $value | humanize1024 }}B reclaimable in stopped containers, unused images and build cache (threshold ${bytes(docker.reclaimable)}).`,
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
