import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { Connections } from '../../src/systems/connections.js';
import type { Action, ActionContext, CheckResult, PlanStep, RunOutput, Trigger, VerifyResult } from '../../src/actions/contract.js';

export interface TestContext extends ActionContext {
  /** Every log line written while the context was in use, parsed. */
  readonly logLines: Array<Record<string, unknown>>;
  readonly abort: AbortController;
  close(): Promise<void>;
}

/** Parses a config object through the real schema (defaults, strictness) and fails loudly if invalid. */
// Steps run inline unless the test asks for the thread: why, at testConfig in test/http/helpers.ts.
export function testConfig(raw: Record<string, unknown>): Readonly<Config> {
  const remediation = { executor: 'inline', ...(raw.remediation as Record<string, unknown> | undefined) };
  const result = parseConfig(stringify({ ...raw, remediation }), {});
  if (!result.ok) throw new Error(`test config invalid: ${JSON.stringify(result.errors)}`);
  return result.config;
}

/** A real ActionContext: real connections from the config, a logger that records its lines. */
export function buildContext(raw: Record<string, unknown>, options: { timeoutMs?: number; trigger?: Trigger } = {}): TestContext {
  const config = testConfig(raw);
  const logLines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  const connections = new Connections(config);
  const abort = new AbortController();
  const timeoutMs = options.timeoutMs ?? 10 * 60_000;
  return {
    config,
    log: createLogger({ level: 'debug', destination }),
    connections,
    signal: abort.signal,
    deadline: Date.now() + timeoutMs,
    trigger: options.trigger ?? 'manual',
    now: Date.now,
    logLines,
    abort,
    close: () => connections.close(),
  };
}

export interface Performed<P> {
  params: P;
  before: CheckResult;
  plan: PlanStep[];
  /** What run() was handed: the plan's payload. */
  payload: unknown;
  output: RunOutput;
  verification: VerifyResult;
}

/** The engine's sequence for one run, without its guards: parse, resolve, check, plan, run, verify. */
export async function perform<P>(action: Action<P>, rawParams: unknown, shared: ActionContext): Promise<Performed<P>> {
  // One run: its own memo, as the engine gives each run.
  const context: ActionContext = { ...shared, memo: new Map() };
  const params = await action.resolve(action.params.parse(rawParams), context);
  const before = await action.check(params, context);
  const plan = await action.plan(params, context);
  const output = await action.run(params, plan.payload, context);
  const verification = await action.verify(params, before, output, context);
  return { params, before, plan: [...plan.steps], payload: plan.payload, output, verification };
}
