import { z } from 'zod';
import { name, parseableUrl, seconds, secondsOrZero } from '../fields.js';
import { sslProblem } from './tls.js';

const regex = z.string().refine((text) => { try { new RegExp(text); return true; } catch { return false; } }, 'must be a valid regular expression');

const tableFilter = z.strictObject({
  include: z.array(regex).default([]),
  exclude: z.array(regex).default([]),
  minDeadTuples: z.number().int().min(0).default(0),
  limit: z.number().int().positive().default(500),
});

/** A postgres:// URL whose TLS parameters (sslmode, sslrootcert...) mean what libpq says (tls.ts). */
export const postgresUrl = parseableUrl(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').superRefine((url, context) => {
  // An unparseable URL has its own message already (parseableUrl).
  const problem = URL.canParse(url) ? sslProblem(url) : null;
  if (problem !== null) context.addIssue({ code: 'custom', message: problem });
});

/** A `targets.postgres` entry: a server and the databases and tables upkeep watches on it. */
export const postgresTarget = z.strictObject({
  name,
  url: postgresUrl,
  databases: z.union([z.literal('auto'), z.array(z.string().min(1)).min(1)]).default('auto'),
  tables: tableFilter.prefault({}),
  sizeRefreshSeconds: seconds.default(300),
  // How often the tables' xid ages are read again, in the background (0: by every scrape itself).
  xidAgeRefreshSeconds: secondsOrZero.default(60),
  // How often `databases: auto` looks for databases created or dropped since.
  discoverRefreshSeconds: seconds.default(300),
  statements: z.strictObject({ enabled: z.boolean().default(false), limit: z.number().int().positive().default(10) })
    .prefault({}),
});

export type PostgresTarget = z.infer<typeof postgresTarget>;
