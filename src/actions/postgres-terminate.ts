import type pg from 'pg';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { urlDatabase } from '../systems/postgres/watched.js';
import { hiddenSessionsNote, withClient } from './postgres-session.js';
import { checkTarget, postgresTarget, requireWatchedDatabase } from './postgres-scope.js';
import { count, identifier } from './params.js';
import type { Action, ActionContext, RunOutput } from './contract.js';
import { onFirstUse } from '../lazy-schema.js';

// postgres.terminate_idle: ends sessions left idle in a transaction, which hold the vacuum
// horizon and their locks while doing nothing. Destructive: the session's transaction rolls back.

const terminateParams = onFirstUse(() => z.strictObject({
  target: identifier,
  idleSeconds: count(),
  /** Only sessions connected to this database; omitted, every database of the server. */
  database: identifier.optional(),
}));
type TerminateParams = z.infer<typeof terminateParams>;

/**
 * A backend is named by its pid and its start time: a pid is reused once its backend exits, and
 * the pair is what the plan shows and the run re-checks. The start time is UTC to the microsecond,
 * as PostgreSQL keeps it, so it compares equal.
 */
const BACKEND_START = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const sessionKey = onFirstUse(() => z.object({ pid: z.number().int().positive(), backendStart: z.string().regex(BACKEND_START) }));
type SessionKey = z.infer<typeof sessionKey>;

export interface TerminatePayload { readonly idleSeconds: number; readonly sessions: readonly SessionKey[] }

/**
 * Who may be ended, the same in the listing and in each terminating statement: a client backend
 * (never a walsender or a background worker) idle in a transaction for longer than `idleSeconds`,
 * whose role is neither a superuser nor a replication role, and that is not upkeep's own (its
 * collector and canceller name themselves upkeep..., the state store upkeep-state, and every
 * backend of a run upkeep:<runId>).
 */
function eligible(idleSeconds: number): string {
  return `a.backend_type = 'client backend'
   AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')
   AND a.state_change < now() - make_interval(secs => ${idleSeconds})
   AND NOT r.rolsuper AND NOT r.rolreplication
   AND a.pid <> pg_backend_pid()
   AND a.application_name <> 'upkeep' AND a.application_name NOT LIKE 'upkeep-%' AND a.application_name NOT LIKE 'upkeep:%'`;
}

const STARTED = `to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

function candidatesSql(idleSeconds: number): string {
  return `
SELECT a.pid, ${STARTED} AS "backendStart", a.datname AS database, a.usename AS "user",
       a.application_name AS "applicationName", coalesce(host(a.client_addr), 'local') AS "clientAddr", a.state,
       extract(epoch FROM now() - a.state_change)::float8 AS "idleSeconds",
       coalesce(greatest(age(a.backend_xid), age(a.backend_xmin)), 0)::float8 AS "xminAge"
  FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
 WHERE ${eligible(idleSeconds)} AND ($1::text IS NULL OR a.datname = $1)
 ORDER BY a.state_change, a.pid`;
}

/**
 * Ends one planned backend, in one statement that re-checks it: the same pid and start time, and
 * still eligible. A session that committed, became active or ended since the plan is left alone.
 */
export function terminateStatement(session: SessionKey, idleSeconds: number): string {
  const { pid, backendStart } = sessionKey.parse(session);
  return `SELECT pg_terminate_backend(a.pid) AS terminated FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
 WHERE a.pid = ${pid} AND a.backend_start = '${backendStart}'::timestamptz
   AND ${eligible(count().parse(idleSeconds))}`;
}

const candidateRow = onFirstUse(() => sessionKey.unwrap().extend({
  // A client backend always has both.
  database: z.string(),
  user: z.string(),
  applicationName: z.string(),
  clientAddr: z.string(),
  state: z.string(),
  idleSeconds: z.number(),
  xminAge: z.number(),
}));
type Candidate = z.infer<typeof candidateRow>;

/** The database upkeep connects to for this target: the one its URL names. */
function homeDatabase(config: Readonly<Config>, target: string): string {
  return urlDatabase(postgresTarget(config, target).url);
}

async function candidates(params: TerminateParams, context: ActionContext): Promise<{ sessions: Candidate[]; hidden: string }> {
  return withClient(context, params.target, homeDatabase(context.config, params.target), async (client: pg.Client) => {
    const sessions = z.array(candidateRow).parse((await client.query(candidatesSql(params.idleSeconds), [params.database ?? null])).rows);
    // "No session qualifies" said by a role that sees none of the others' is no finding.
    return { sessions, hidden: sessions.length === 0 ? await hiddenSessionsNote(client) : '' };
  });
}

function describeSession(session: Candidate): string {
  return `pid ${session.pid} (user ${session.user}, application ${JSON.stringify(session.applicationName)}, ${session.clientAddr}, database ${session.database}, ${session.state} for ${Math.round(session.idleSeconds)}s, xmin age ${session.xminAge})`;
}

/** A configured target, and a database it lists (when one is named). */
function screenTarget(params: TerminateParams, config: Readonly<Config>): void {
  if (params.database === undefined) postgresTarget(config, params.target);
  else checkTarget(config, params.target, params.database);
}

const runOutput = onFirstUse(() => z.object({ terminated: z.array(sessionKey), leftAlone: z.array(sessionKey) }));
type TerminateOutput = z.infer<typeof runOutput>;

const stillThere = onFirstUse(() => z.array(z.object({ pid: z.number() })));
// pg_terminate_backend only signals: the backend exits a moment later. Counted in polls, not by
// the engine's clock, which a test may hold still.
const VERIFY_POLL_MS = 100;
const VERIFY_POLLS = 100;

export const terminateIdle: Action<TerminateParams, TerminatePayload, TerminateOutput> = {
  name: 'postgres.terminate_idle',
  description: 'End sessions idle in a transaction for longer than idleSeconds (pg_terminate_backend; their transactions roll back); never superuser, replication or upkeep\'s own backends.',
  riskClass: 'destructive (the sessions\' open transactions roll back)',
  params: terminateParams,
  risk: () => 'destructive',
  screen: (params, config) => screenTarget(params, config),
  async resolve(params, context) {
    screenTarget(params, context.config);
    if (params.database !== undefined) {
      await requireWatchedDatabase(context, { target: params.target, database: params.database, outsideFilters: false, allowSystemCatalogs: false });
    }
    return params;
  },
  lock: (params, config) => ({ kind: 'postgres', target: params.target, database: homeDatabase(config, params.target), key: 'terminate_idle' }),
  async check(params, context) {
    const { sessions, hidden } = await candidates(params, context);
    const where = params.database === undefined ? `on target ${params.target}` : `in database ${params.database}`;
    if (sessions.length === 0) return { proceed: false, reason: `no session ${where} has been idle in a transaction for over ${params.idleSeconds}s${hidden}`, observed: { sessions } };
    return { proceed: true, reason: `${sessions.length} session(s) idle in a transaction for over ${params.idleSeconds}s: ${sessions.map(describeSession).join(', ')}`, observed: { sessions } };
  },
  async plan(params, context) {
    const sessions = (await candidates(params, context)).sessions.map(({ pid, backendStart }) => ({ pid, backendStart }));
    return {
      steps: sessions.map((session) => ({ kind: 'sql', detail: terminateStatement(session, params.idleSeconds) })),
      payload: { idleSeconds: params.idleSeconds, sessions },
    };
  },
  async run(params, payload, context): Promise<RunOutput<TerminateOutput>> {
    return withClient(context, params.target, homeDatabase(context.config, params.target), async (client) => {
      const output: TerminateOutput = { terminated: [], leftAlone: [] };
      for (const session of payload.sessions) {
        if (context.signal.aborted) throw context.signal.reason;
        const rows = z.array(z.object({ terminated: z.boolean() })).parse((await client.query(terminateStatement(session, payload.idleSeconds))).rows);
        (rows.some((row) => row.terminated) ? output.terminated : output.leftAlone).push({ pid: session.pid, backendStart: session.backendStart });
      }
      return { detail: output };
    });
  },
  async verify(params, _before, output, context) {
    const { terminated, leftAlone } = runOutput.parse(output.detail);
    const left = leftAlone.length > 0 ? `; left alone (no longer idle in a transaction past the threshold, or gone): ${leftAlone.map((session) => `pid ${session.pid}`).join(', ')}` : '';
    const remaining = await withClient(context, params.target, homeDatabase(context.config, params.target), async (client) => {
      for (let poll = 1; ; poll += 1) {
        const rows = stillThere.parse((await client.query(
          `SELECT a.pid FROM pg_stat_activity a JOIN unnest($1::int[], $2::timestamptz[]) AS s(pid, started) ON a.pid = s.pid AND a.backend_start = s.started`,
          [terminated.map((session) => session.pid), terminated.map((session) => session.backendStart)])).rows);
        if (rows.length === 0 || poll >= VERIFY_POLLS || context.signal.aborted) return rows.map((row) => row.pid);
        await new Promise((done) => setTimeout(done, VERIFY_POLL_MS));
      }
    });
    const ended = terminated.map((session) => `pid ${session.pid}`).join(', ') || 'none';
    if (remaining.length > 0) return { ok: false, detail: `still running after pg_terminate_backend: ${remaining.map((pid) => `pid ${pid}`).join(', ')}${left}`, observed: { remaining } };
    return { ok: true, detail: `ended: ${ended}${left}`, observed: { terminated, leftAlone } };
  },
};
