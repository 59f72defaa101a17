import { z } from 'zod';

/**
 * A module-level schema built the first time it is used, not when its module loads. `serve`
 * loads every module in one file, and building every remediation's params, every catalog row and
 * every Docker reply at start made zod's code hot enough for V8's optimizing compiler, whose code
 * pages cost about 4 MB of idle RSS; built on first use, an idle `serve` builds 827 schemas instead
 * of 1,328 (docs/performance.md, "One file, and schemas built on first use"). A small schema that
 * is a field of others parsed on every alert (`identifier`) stays built at load: as a lazy one it
 * would cost a step on every parse.
 */
export function onFirstUse<T extends z.ZodType>(build: () => T): z.ZodLazy<T> {
  return z.lazy(build);
}
