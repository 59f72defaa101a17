import type { FastifyReply } from 'fastify';
import type { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { QueueFull } from '../engine/engine.js';

/**
 * Size limits on what a webhook or a manual run may carry (server.max*). Each check reports the
 * first problem only, naming where it is and which config key sets the limit, and never echoes an
 * oversized name or value back.
 */
type ServerLimits = Readonly<Config['server']>;

// A guess at how long a full queue takes to drain a little; a client may retry sooner.
const RETRY_AFTER_SECONDS = 5;

function bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** Labels of one alert (or groupLabels, commonLabels): how many, and how long each name and value is. */
export function labelProblem(labels: Readonly<Record<string, string>>, limits: ServerLimits): string | null {
  // Called for every alert of every webhook: it walks the labels in place rather than copying them out.
  let count = 0;
  for (const name in labels) if (Object.hasOwn(labels, name)) count += 1;
  if (count > limits.maxLabels) return `${count} labels, at most ${limits.maxLabels} (server.maxLabels)`;
  for (const name in labels) {
    if (!Object.hasOwn(labels, name)) continue;
    const nameBytes = bytesOver(name, limits.maxLabelNameBytes);
    if (nameBytes !== null) return `a label name of ${nameBytes} bytes, at most ${limits.maxLabelNameBytes} (server.maxLabelNameBytes)`;
    const valueBytes = bytesOver(labels[name] ?? '', limits.maxLabelValueBytes);
    if (valueBytes !== null) return `label "${name}" is ${valueBytes} bytes, at most ${limits.maxLabelValueBytes} (server.maxLabelValueBytes)`;
  }
  return null;
}

/** The text's UTF-8 length when it is over `limit`, else null; counted only when it could be (a UTF-16 unit is at most 3 bytes). */
function bytesOver(text: string, limit: number): number | null {
  if (text.length * 3 <= limit) return null;
  const length = bytes(text);
  return length > limit ? length : null;
}

interface LabelledPayload {
  readonly alerts: readonly { readonly labels: Readonly<Record<string, string>> }[];
  readonly groupLabels?: Readonly<Record<string, string>> | undefined;
  readonly commonLabels?: Readonly<Record<string, string>> | undefined;
}

/** A zod refinement for the webhook payload: every label set within the label limits. */
export function checkWebhookLabels(limits: ServerLimits) {
  return (payload: LabelledPayload, ctx: z.core.$RefinementCtx<LabelledPayload>): void => {
    const sets: [(string | number)[], Readonly<Record<string, string>> | undefined][] = [
      [['groupLabels'], payload.groupLabels],
      [['commonLabels'], payload.commonLabels],
      ...payload.alerts.map((alert, index): [(string | number)[], Readonly<Record<string, string>>] => [['alerts', index, 'labels'], alert.labels]),
    ];
    for (const [path, labels] of sets) {
      const problem = labels === undefined ? null : labelProblem(labels, limits);
      if (problem === null) continue;
      ctx.addIssue({ code: 'custom', path, message: problem });
      return;
    }
  };
}

/** How many alerts a payload carries, read before it is validated so a huge one is refused cheaply. */
export function alertCount(body: unknown): number {
  if (body === null || typeof body !== 'object') return 0;
  const alerts: unknown = Reflect.get(body, 'alerts');
  return Array.isArray(alerts) ? alerts.length : 0;
}

/** A zod refinement for a manual run's params: how many, and how long each name and (JSON) value is. */
export function checkParams(limits: ServerLimits) {
  return (body: { readonly params: Readonly<Record<string, unknown>> }, ctx: z.core.$RefinementCtx<{ params: Record<string, unknown> }>): void => {
    const entries = Object.entries(body.params);
    const problem = (() => {
      if (entries.length > limits.maxParams) return `${entries.length} params, at most ${limits.maxParams} (server.maxParams)`;
      for (const [name, value] of entries) {
        const nameBytes = bytes(name);
        if (nameBytes > limits.maxParamNameBytes) return `a param name of ${nameBytes} bytes, at most ${limits.maxParamNameBytes} (server.maxParamNameBytes)`;
        if (jsonLongerThan(value, limits.maxParamValueBytes)) return `param "${name}" is over ${limits.maxParamValueBytes} bytes as JSON (server.maxParamValueBytes)`;
      }
      return null;
    })();
    if (problem !== null) ctx.addIssue({ code: 'custom', path: ['params'], message: problem });
  };
}

/**
 * Whether a parsed JSON value's text is longer than `limit` bytes. Counted with an explicit stack,
 * not JSON.stringify, which recurses and overflows on a value nested a few thousand levels deep;
 * the walk stops as soon as the limit is passed, so its cost is bounded by the limit.
 */
export function jsonLongerThan(value: unknown, limit: number): boolean {
  let total = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const item = pending.pop();
    if (item !== null && typeof item === 'object') {
      const entries = Array.isArray(item) ? item.map((child): [string | null, unknown] => [null, child]) : Object.entries(item);
      // Brackets and separators, then each key with its colon.
      total += 2 + Math.max(0, entries.length - 1);
      for (const [key, child] of entries) {
        if (key !== null) total += bytes(JSON.stringify(key)) + 1;
        pending.push(child);
      }
    } else {
      total += bytes(JSON.stringify(item));
    }
    if (total > limit) return true;
  }
  return false;
}

/** 429: the queue is full. Nothing was queued or journalled; the client may send the same request again later. */
export function sendQueueFull(reply: FastifyReply, err: QueueFull): FastifyReply {
  return reply.code(429).header('retry-after', String(RETRY_AFTER_SECONDS)).send({ error: err.message });
}
