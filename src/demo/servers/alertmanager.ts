import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { startUntilReady } from './process.js';

export interface AlertmanagerOptions {
  /** Where to POST notifications (upkeep's /alertmanager). */
  webhookUrl: string;
  /** Sent as `Authorization: Bearer TOKEN`, as a real deployment would. */
  bearerToken?: string;
}

export interface AlertmanagerServer {
  port: number;
  url: string;
  destroy(): Promise<void>;
}

/** A throwaway Alertmanager (no clustering) that notifies at once and sends resolved alerts too. */
export async function startAlertmanager(options: AlertmanagerOptions): Promise<AlertmanagerServer> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-alertmanager-'));
  const port = await freePort();
  const webhook: Record<string, unknown> = { url: options.webhookUrl, send_resolved: true };
  if (options.bearerToken) webhook.http_config = { authorization: { type: 'Bearer', credentials: options.bearerToken } };
  const config = {
    route: { receiver: 'upkeep', group_by: ['...'], group_wait: '0s', group_interval: '1s', repeat_interval: '1h' },
    receivers: [{ name: 'upkeep', webhook_configs: [webhook] }],
  };
  await writeFile(join(dir, 'alertmanager.yml'), JSON.stringify(config));
  const url = `http://127.0.0.1:${port}`;
  const { destroy } = await startUntilReady('alertmanager', 'prometheus-alertmanager', [
    `--config.file=${join(dir, 'alertmanager.yml')}`,
    `--storage.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--cluster.listen-address=',
  ], url, dir);
  return { port, url, destroy };
}
