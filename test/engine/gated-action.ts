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
