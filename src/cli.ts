import { parseArgs } from 'node:util';
import type { FastifyInstance } from 'fastify';
import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import { errorMessage } from './redact.js';
import { VERSION } from './version.js';

// Each command imports what it needs when it runs: `--version` and `--help` load no framework,
// and `serve` reaches its first /healthz sooner.

const USAGE = `usage:
  upkeep [serve] --config FILE [--host H] [--port N]
  upkeep check-config --config FILE
  upkeep run REMEDIATION [--param k=v ...] [--dry-run] --config FILE
  upkeep demo [--once]
  upkeep rules [--thresholds FILE] [--out DIR]
  upkeep help COMMAND | --help | --version
every command takes --log-level LEVEL (fatal, error, warn, info, debug, trace, silent)`;

const LEVELS: ReadonlySet<string> = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
const LOG_LEVEL = '  --log-level LEVEL  fatal, error, warn, info, debug, trace or silent';

/** What `upkeep help COMMAND` prints: every flag the command reads. */
const HELP: Readonly<Record<string, string>> = {
  serve: `upkeep [serve] --config FILE [--host H] [--port N] [--log-level LEVEL]
Runs the service: /metrics, /healthz, /readyz and the remediation API.
  -c, --config FILE  the YAML config (required)
  --host H           listen address (default: server.host, 127.0.0.1); beyond loopback, server.authToken is required
  --port N           listen port (default: server.port, 9630)
${LOG_LEVEL} (default info)`,
  'check-config': `upkeep check-config --config FILE [--log-level LEVEL]
Validates the config (types, and that every remediation, param, target and collector it names
exists); prints a summary and exits 0, or names each error's path and exits 1.
  -c, --config FILE  the YAML config (required)
${LOG_LEVEL}`,
  run: `upkeep run REMEDIATION [--param k=v ...] [--dry-run] --config FILE [--log-level LEVEL]
Runs one remediation through the engine (same guards and journal) and prints the plan and result.
  -c, --config FILE  the YAML config (required)
  --param k=v        a parameter; repeat for several keys, each once (GET /remediations lists them)
  --dry-run          record the plan, execute nothing
Ctrl-C (or SIGTERM) stops the run, journals it interrupted and exits 1; a second exits at once.
SIGHUP (a closed terminal) lets the run go on: nohup upkeep run ... outlives the session.
${LOG_LEVEL} (default warn; logs go to stderr)`,
  demo: `upkeep demo [--once] [--port N] [--log-level LEVEL]
A self-contained tour on throwaway PostgreSQL and Redis servers.
  --once             exit after the tour instead of serving /metrics until Ctrl-C
  --port N           where the demo's upkeep listens (default: a free port)
Ctrl-C at any point stops and removes its servers (exit 130 before the tour ends).
${LOG_LEVEL} (default warn)`,
  rules: `upkeep rules [--thresholds FILE] [--out DIR] [--log-level LEVEL]
Renders the Prometheus alert rules (upkeep.rules.yml) from a thresholds file: the job selector,
the runbook base URL and every threshold (examples/thresholds.yml lists them with their defaults).
Without a file, the shipped defaults: exactly the committed alerts/upkeep.rules.yml. An unknown
key or a wrong value names its path and exits 1.
  --thresholds FILE  the YAML thresholds file (default: the shipped defaults)
  --out DIR          write DIR/upkeep.rules.yml (created if missing) instead of printing to stdout
${LOG_LEVEL}`,
  help: `upkeep help COMMAND
Prints the flags of COMMAND (serve, check-config, run, demo, rules).`,
};

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
  if (argv[0] === '--version' || argv[0] === '-v') {
    io.out(VERSION);
    return 0;
  }
  if (argv[0] === '--help' || argv[0] === '-h') {
    io.out(USAGE);
    return 0;
  }
  if (argv[0] === 'help') return help(argv[1], io);
  const command = argv[0] && !argv[0].startsWith('-') ? argv[0] : 'serve';
  const rest = command === argv[0] ? argv.slice(1) : argv;
  let args: ReturnType<typeof parse>;
  try {
    args = parse(rest);
  } catch (err) {
    const commandHelp = HELP[command];
    io.err(commandHelp === undefined ? `unknown command "${command}"\n${USAGE}` : `${argumentError(command, err)}\n${commandHelp}`);
    return 2;
  }
  if (args.values.help) return help(command, io);
  const level = args.values['log-level'];
  if (level !== undefined && !LEVELS.has(level)) {
    io.err(`--log-level must be one of ${[...LEVELS].join(', ')}, got "${level}"`);
    return 2;
  }
  switch (command) {
    case 'serve': return withConfig(args, io, (config) => serve(config, args, io));
    case 'check-config': return withConfig(args, io, async (config) => { io.out(summarize(config)); return 0; });
    case 'run': return withConfig(args, io, (config) => runRemediation(config, args, io));
    case 'demo': {
      const port = portOption(args.values.port, 0, io);
      if (port === null) return 2;
      const { listenProblem } = await import('./http/listen-failure.js');
      const taken = port === 0 ? null : await listenProblem('127.0.0.1', port);
      if (taken !== null) {
        io.err(taken);
        return 1;
      }
      const { runDemo } = await import('./demo/index.js');
      return runDemo({ once: args.values.once ?? false, port, ...(level !== undefined ? { logLevel: level } : {}) }, { out: io.out, interrupted: waitForInterrupt });
    }
    case 'rules': {
      if (args.positionals.length > 0) {
        io.err(`upkeep rules takes no arguments, got "${args.positionals.join(' ')}"\n${USAGE}`);
        return 2;
      }
      const { rulesCommand } = await import('./alerts/command.js');
      return rulesCommand({ thresholds: args.values.thresholds, out: args.values.out }, io);
    }
    default:
      io.err(`unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

/**
 * parseArgs's refusal in upkeep's words. Its own text for an unknown option is advice on
 * positional arguments, with an unbalanced quote ("as in '-- "--bogus"").
 */
function argumentError(command: string, err: unknown): string {
  const unknown = /^Unknown option '([^']*)'/.exec(errorMessage(err));
  return unknown ? `upkeep ${command}: unknown option ${unknown[1] ?? ''}` : `upkeep ${command}: ${errorMessage(err)}`;
}

function help(command: string | undefined, io: Io): number {
  if (command === undefined) {
    io.out(USAGE);
    return 0;
  }
  const text = HELP[command];
  if (text === undefined) {
    io.err(`unknown command "${command}"\n${USAGE}`);
    return 2;
  }
  io.out(text);
  return 0;
}

async function runRemediation(config: Readonly<Config>, args: ReturnType<typeof parse>, io: Io): Promise<number> {
  const [remediation] = args.positionals;
  if (!remediation) {
    io.err(`which remediation? (GET /remediations lists them)\n${USAGE}`);
    return 2;
  }
  const { parseParams, runFromCli } = await import('./triggers/cli.js');
  const { createLogger } = await import('./log.js');
  let params: Record<string, string>;
  try {
    params = parseParams(args.values.param ?? []);
  } catch (err) {
    io.err(`${errorMessage(err)}\n${USAGE}`);
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
      thresholds: { type: 'string' },
      out: { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

/** Loads and cross-checks the config; every command that reads one refuses to go on with an error in it. */
async function withConfig(args: ReturnType<typeof parse>, io: Io, body: (config: Readonly<Config>) => Promise<number>): Promise<number> {
  const file = args.values.config;
  if (!file) {
    io.err(`--config FILE is required\n${USAGE}`);
    return 2;
  }
  const [{ ConfigInvalid, loadConfig }, { checkReferences }, { ACTIONS }, { COLLECTORS }] = await Promise.all([
    import('./config/load.js'), import('./config/references.js'), import('./actions/registry.js'), import('./collectors/registry.js'),
  ]);
  let config: Readonly<Config>;
  try {
    config = await loadConfig(file, io.env, (parsed) => checkReferences(parsed, { remediations: ACTIONS, collectors: COLLECTORS.map((collector) => collector.name) }));
  } catch (err) {
    // Anything else is a bug; its message could quote the file, so only its type is shown.
    io.err(err instanceof ConfigInvalid ? err.message : `${file}: the config could not be checked (${err instanceof Error ? err.name : 'error'})`);
    return 1;
  }
  try {
    return await body(config);
  } catch (err) {
    // The state store could not be opened (state.postgres unreachable, refused, too new; a state.dir
    // that cannot be made or written): its message names the problem, never a password.
    const { StateStoreError } = await import('./engine/state/store-error.js');
    if (!(err instanceof StateStoreError)) throw err;
    io.err(err.message);
    return 1;
  }
}

/** Where the state lives; of a PostgreSQL URL only the host and database, never the user or a password. */
function stateSummary(state: Readonly<Config['state']>): string {
  if (!state.postgres) return `directory ${state.dir}`;
  const url = new URL(state.postgres.url);
  return `PostgreSQL ${url.host}${url.pathname}, schema ${state.postgres.schema} (shared by replicas)`;
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
    `  state: ${stateSummary(config.state)}`,
    `  listen: ${config.server.host}:${config.server.port}${config.server.authToken ? ' (bearer token required on POST)' : ''}`,
  ].join('\n');
}

async function serve(config: Readonly<Config>, args: ReturnType<typeof parse>, io: Io): Promise<number> {
  const [{ createLogger }, { openToNetwork }, { buildApp }, { lowerOtherThreads }, { interfacesProblem, listenFailure }, { networkInterfaces }] = await Promise.all([
    import('./log.js'), import('./config/checks.js'), import('./server.js'), import('./thread-priority.js'), import('./http/listen-failure.js'), import('node:os'),
  ]);
  const log = createLogger({ level: args.values['log-level'] ?? 'info' });
  const port = portOption(args.values.port, config.server.port, io);
  if (port === null) return 2;
  const open = args.values.host === undefined ? null : openToNetwork(args.values.host, config.server.authToken);
  if (open) {
    io.err(`--host: server.authToken ${open}`);
    return 1;
  }
  const host = args.values.host ?? config.server.host;
  const noInterfaces = interfacesProblem(host, port, networkInterfaces);
  if (noInterfaces) {
    io.err(noInterfaces);
    return 1;
  }
  const app = await buildApp({ config, log });
  try {
    await app.fastify.listen({ host, port });
  } catch (err) {
    await app.fastify.close();
    io.err(listenFailure(host, port, err));
    return 1;
  }
  const notLowered = lowerOtherThreads();
  if (notLowered) log.warn({ err: notLowered }, 'cannot lower the priority of upkeep\'s helper threads; they run at the main thread\'s');
  // node-postgres read it for URLs without TLS parameters, and pg_dump never got it: the URL says.
  if ((config.targets.postgres.length > 0 || config.state.postgres !== undefined) && io.env['PGSSLMODE'] !== undefined) log.warn({ PGSSLMODE: io.env['PGSSLMODE'] }, 'PGSSLMODE is not read: put sslmode in each PostgreSQL URL (docs/configuration.md, "TLS to PostgreSQL")');
  return waitForShutdown(app.fastify, log, config.server.shutdownTimeoutSeconds);
}

/** --port as a number (`fallback` without it), or null once it has said why it is not one. */
function portOption(value: string | undefined, fallback: number, io: Io): number | null {
  const port = value === undefined ? fallback : Number(value);
  if (Number.isInteger(port) && port >= 0 && port <= 65535) return port;
  io.err(`--port must be a port number, got "${value}"`);
  return null;
}

/** The first SIGINT or SIGTERM; both listeners go then, so a second signal of either kind ends the process at once. */
function waitForInterrupt(): Promise<void> {
  return new Promise((resolve) => {
    const interrupted = () => {
      process.off('SIGINT', interrupted);
      process.off('SIGTERM', interrupted);
      resolve();
    };
    process.on('SIGINT', interrupted);
    process.on('SIGTERM', interrupted);
  });
}

/**
 * Stops accepting, lets in-flight requests finish, closes clients, then resolves 0. Past the
 * deadline (server.shutdownTimeoutSeconds) nothing may hold the process: a client still sending,
 * a run ignoring its abort. Every connection is closed and the process exits 1 at once; runs left
 * unfinished are journalled as interrupted at the next start. After a clean close the deadline
 * stays armed (unref'd, so it holds nothing itself): work abandoned at shutdown that still holds
 * the process (a run that ignored its abort, its socket or timer) does not keep it alive past it.
 */
function waitForShutdown(fastify: FastifyInstance, log: Logger, deadlineSeconds: number): Promise<number> {
  return new Promise((resolve) => {
    let closing = false;
    let closed = false;
    const onSignal = (signal: NodeJS.Signals) => {
      // A second signal while runs in flight finish (docker stop, then an impatient Ctrl-C) must
      // not kill the process before it journals them: the deadline already bounds the wait.
      if (closing) {
        log.info({ signal }, 'already shutting down');
        return;
      }
      closing = true;
      log.info({ signal, deadlineSeconds }, 'shutting down');
      const deadline = setTimeout(() => {
        fastify.server.closeAllConnections();
        if (closed) log.warn({ deadlineSeconds }, 'shutdown deadline passed with abandoned work still holding the process; exiting');
        else log.error({ deadlineSeconds }, 'shutdown deadline passed; closed every connection, exiting');
        process.exit(closed ? process.exitCode ?? 0 : 1);
      }, deadlineSeconds * 1000);
      const stop = (code: number) => {
        closed = true;
        deadline.unref();
        resolve(code);
      };
      fastify.close().then(() => {
        log.info('stopped');
        stop(0);
      }, (err: unknown) => {
        log.error({ err }, 'error during shutdown');
        stop(1);
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // Unhandled, SIGHUP ends node at once, as kill -9 would: no run finished or journalled, and a
    // terminal closing under a foreground upkeep killed it. upkeep does not reload its config, and
    // stopping cleanly instead would leave stopped a service that `kill -HUP` meant to reload
    // (systemd's Restart=on-failure does not restart an exit 0).
    process.on('SIGHUP', () => log.warn({ signal: 'SIGHUP' }, 'SIGHUP ignored: upkeep does not reload its config; restart it to apply a change'));
  });
}
