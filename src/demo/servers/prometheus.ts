import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { freePort } from './ports.js';
import { startUntilReady } from './process.js';

export interface PrometheusOptions {
  /** host:port of upkeep's /metrics. */
  scrapeTarget: string;
  ruleFiles?: string[];
  /** host:port of an Alertmanager. */
  alertmanager?: string;
  intervalSeconds?: number;
}

export interface PrometheusServer {
  port: number;
  url: string;
  /** Runs an instant query; throws with Prometheus's own message when it is invalid. */
  query(expr: string): Promise<QueryResult[]>;
  /** Runs a range query (as Grafana runs a panel or an annotation), times in Unix seconds. */
  queryRange(expr: string, range: { start: number; end: number; step: number }): Promise<RangeResult[]>;
  /** Active alerts as Prometheus sees them (pending or firing). */
  alerts(): Promise<ActiveAlert[]>;
  destroy(): Promise<void>;
}

const sample = z.tuple([z.number(), z.string()]);
const resultSchema = z.object({ metric: z.record(z.string(), z.string()), value: sample });
const rangeResultSchema = z.object({ metric: z.record(z.string(), z.string()), values: z.array(sample) });
const queryResponse = <T extends z.ZodType>(result: T) => z.object({
  status: z.string(),
  error: z.string().optional(),
  data: z.object({ resultType: z.string(), result: z.array(result) }).optional(),
});
export type QueryResult = z.infer<typeof resultSchema>;
export type RangeResult = z.infer<typeof rangeResultSchema>;

const alertSchema = z.object({
  labels: z.record(z.string(), z.string()),
  annotations: z.record(z.string(), z.string()).default({}),
  state: z.string(),
  activeAt: z.string().optional(),
  /** The expression's value when last evaluated, as Prometheus formats it ("+Inf", "0e+00"). */
  value: z.string().optional(),
});
const alertsResponse = z.object({ data: z.object({ alerts: z.array(alertSchema) }) });
export type ActiveAlert = z.infer<typeof alertSchema>;

/** A throwaway Prometheus on 127.0.0.1 scraping one target at a short interval. */
export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-prometheus-'));
  const port = await freePort();
  const interval = `${options.intervalSeconds ?? 1}s`;
  const config = {
    global: { scrape_interval: interval, evaluation_interval: interval },
    rule_files: options.ruleFiles ?? [],
    alerting: options.alertmanager ? { alertmanagers: [{ static_configs: [{ targets: [options.alertmanager] }] }] } : undefined,
    scrape_configs: [{ job_name: 'upkeep', static_configs: [{ targets: [options.scrapeTarget] }] }],
  };
  await writeFile(join(dir, 'prometheus.yml'), JSON.stringify(config));
  const url = `http://127.0.0.1:${port}`;
  const post = async <T extends z.ZodType>(api: string, form: Record<string, string>, result: T): Promise<z.infer<T>[]> => {
    const response = await fetch(`${url}/api/v1/${api}`, { method: 'POST', body: new URLSearchParams(form) });
    const parsed = queryResponse(result).parse(await response.json());
    if (parsed.status !== 'success' || !parsed.data) throw new Error(`${form.query}: ${parsed.error ?? parsed.status}`);
    return parsed.data.result;
  };
  const { destroy } = await startUntilReady('prometheus', 'prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
  ], url, dir);
  const server: PrometheusServer = {
    port,
    url,
    async query(expr) {
      return post('query', { query: expr }, resultSchema);
    },
    async queryRange(expr, range) {
      return post('query_range', { query: expr, start: String(range.start), end: String(range.end), step: String(range.step) }, rangeResultSchema);
    },
    async alerts() {
      const response = await fetch(`${url}/api/v1/alerts`);
      return alertsResponse.parse(await response.json()).data.alerts;
    },
    destroy,
  };
  return server;
}
