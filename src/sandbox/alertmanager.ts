import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './ports.js';
import { startDaemon } from './process.js';

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
  const daemon = startDaemon('prometheus-alertmanager', [
    `--config.file=${join(dir, 'alertmanager.yml')}`,
    `--storage.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--cluster.listen-address=',
  ]);
  const url = `http://127.0.0.1:${port}`;
  const server: AlertmanagerServer = {
    port,
    url,
    async destroy() {
      await daemon.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor('alertmanager', async () => {
      if (daemon.child.exitCode !== null) throw new Error(`alertmanager exited: ${daemon.output()}`);
      const response = await fetch(`${url}/-/ready`);
      if (!response.ok) throw new Error(`status ${response.status}`);
    });
  } catch (err) {
    await server.destroy();
    throw err;
  }
  return server;
}
