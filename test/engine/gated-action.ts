import { z } from 'zod';
import type { Action } from '../../src/actions/contract.js';

/** An action whose runs wait until the test opens the gate. */
export function gatedAction(name = 'test.gated'): { action: Action<{ n: number }>; open: () => void } {
  let open: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => { open = resolve; });
  return {
    open: () => open(),
    action: {
      name, description: 'waits for the test', params: z.strictObject({ n: z.coerce.number() }),
      risk: () => 'safe', resolve: async (params) => params, lock: (params) => ({ kind: 'local', key: String(params.n) }),
      check: async () => ({ proceed: true, reason: 'go' }),
      plan: async (params) => ({ steps: [{ kind: 'exec', detail: `work ${params.n}` }], payload: null }),
      run: async () => { await gate; return { detail: {} }; },
      verify: async () => ({ ok: true, detail: 'fine' }),
    },
  };
}

/** An in-process action whose runs fail while `failing` is set; it counts its executions. */
export function flakyAction(): Action<{ n: number }> & { executed: number; failing: boolean } {
  const action = {
    executed: 0,
    failing: false,
    name: 'test.action',
    description: 'test',
    params: z.strictObject({ n: z.coerce.number() }),
    risk: () => 'safe' as const,
    resolve: async (params: { n: number }) => params,
    lock: () => ({ kind: 'local' as const, key: 'k' }),
    check: async () => ({ proceed: true, reason: 'go' }),
    plan: async () => ({ steps: [{ kind: 'exec' as const, detail: 'work' }], payload: null }),
    run: async () => {
      action.executed += 1;
      if (action.failing) throw new Error('it broke');
      return { detail: { done: true } };
    },
    verify: async () => ({ ok: true, detail: 'fine' }),
  };
  return action;
}
