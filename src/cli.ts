import { parseArgs } from 'node:util';
import { ConfigInvalid, loadConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { createLogger, type Logger } from './log.js';
import { parseParams, runFromCli } from './remediation/engine-cli.js';
import { buildApp } from './server.js';

const USAGE = `usage:
  upkeep [serve] --config FILE [--host H] [--port N]
  upkeep check-config --config FILE
  upkeep run REMEDIATION [--param k=v ...] [--dry-run] --config FILE
  upkeep demo [--once]`;

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  env: Readonly<Record<string, string | undefined>>;
}

const defaultIo: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
};

/** Returns the exit code; `serve` resolves only once the server has shut down. */
export async function main(argv: readonly string[], io: Io = defaultIo): Promise<number> {
  const command = argv[0] && !argv[0].startsWith('-') ? argv[0] : 'serve';
  const rest = command === argv[0] ? argv.slice(1) : argv;
  let args: ReturnType<typeof parse>;
  try {
    args = parse(rest);
  } catch (err) {
    io.err(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  switch (command) {
    case 'serve': return withConfig(args, io, (config) => serve(config, args, io));
    case 'check-config': return withConfig(args, io, async (config) => { io.out(summarize(config)); return 0; });
    case 'run': return withConfig(args, io, (config) => runRemediation(config, args, io));
    case 'demo': {
      const { runDemo } = await import('./demo/index.js');
      const port = args.values.port === undefined ? 0 : Number(args.values.port);
      return runDemo({ once: args.values.once ?? false, port }, { out: io.out, interrupted: waitForInterrupt });
    }
    default:
      io.err(`unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

async function runRemediation(config: Readonly<Config>, args: ReturnType<typeof parse>, io: Io): Promise<number> {
  const [remediation] = args.positionals;
  if (!remediation) {
    io.err(`which remediation? (GET /remediations lists them)\n${USAGE}`);
    return 2;
  }
  let params: Record<string, string>;
  try {
    params = parseParams(args.values.param ?? []);
  } catch (err) {
    io.err(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  // Logs go to stderr, so stdout carries only the plan and the result.
  const log = createLogger({ level: args.values['log-level'] ?? 'warn', destination: process.stderr });
  return runFromCli(config, log, { remediation, params, dryRun: args.values['dry-run'] ?? false }, io.out);
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      host: { type: 'string' },
      port: { type: 'string' },
      param: { type: 'string', multiple: true },
      'dry-run': { type: 'boolean' },
      once: { type: 'boolean' },
      'log-level': { type: 'string' },
    },
  });
}

async function withConfig(args: ReturnType<typeof parse>, io: Io, body: (config: Readonly<Config>) => Promise<number>): Promise<number> {
  const file = args.values.config;
  if (!file) {
    io.err(`--config FILE is required\n${USAGE}`);
    return 2;
  }
  try {
    return await body(await loadConfig(file, io.env));
  } catch (err) {
    if (err instanceof ConfigInvalid) {
      io.err(err.message);
      return 1;
    }
    throw err;
  }
}

export function summarize(config: Readonly<Config>): string {
  const targets = Object.entries(config.targets)
    .filter(([, list]) => list.length > 0)
    .map(([kind, list]) => `${kind}=${list.length}`)
    .join(' ');
  return [
    'config OK',
    `  targets: ${targets || 'none'}`,
    `  remediation rules: ${config.remediation.rules.length}, windows: ${config.remediation.windows.length}, retention policies: ${config.remediation.retention.length}`,
    `  schedule entries: ${config.schedule.length}`,
    `  listen: ${config.server.host}:${config.server.port}${config.server.authToken ? ' (bearer token required on POST)' : ''}`,
  ].join('\n');
}

async function serve(config: Readonly<Config>, args: ReturnType<typeof parse>, io: Io): Promise<number> {
  const log = createLogger({ level: args.values['log-level'] ?? 'info' });
  const port = args.values.port === undefined ? config.server.port : Number(args.values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    io.err(`--port must be a port number, got "${args.values.port}"`);
    return 2;
  }
  const app = await buildApp({ config, log });
  await app.fastify.listen({ host: args.values.host ?? config.server.host, port });
  return waitForShutdown(app.fastify, log);
}

function waitForInterrupt(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

/** Stops accepting, lets in-flight requests finish, closes clients, then resolves 0. */
function waitForShutdown(fastify: { close(): Promise<void> }, log: Logger): Promise<number> {
  return new Promise((resolve) => {
    let closing = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (closing) return;
      closing = true;
      log.info({ signal }, 'shutting down');
      // A stuck client must not keep the process alive forever.
      const deadline = setTimeout(() => {
        log.error('shutdown deadline passed; exiting');
        resolve(1);
      }, 10_000);
      deadline.unref();
      fastify.close().then(() => {
        clearTimeout(deadline);
        log.info('stopped');
        resolve(0);
      }, (err: unknown) => {
        log.error({ err }, 'error during shutdown');
        resolve(1);
      });
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
}
