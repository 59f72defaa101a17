/**
 * A run's cancellation (its deadline, a shutdown), which makes an AbortSignal only when something
 * asks for one: an action's queries and child processes take `signal`; the engine's own waits
 * (untilAbandoned, the executor thread's forwarding, the run's connections) listen with onAbort.
 *
 * Why not an AbortController per run: node makes each AbortSignal an EventTarget, changes its
 * prototype and then adds properties to it, and V8 promotes every such object to the old
 * generation, however short its life. A promoted signal keeps what it refers to (its listeners,
 * their closures, the run's context) alive through scavenges until the next mark-compact: the
 * engine running 10,000 dry runs in 10 s on one thread promoted 39.4-41.8 MB, 29.9-31.5 MB with
 * a signal that was a plain object (docs/performance.md, "Signals made on first use").
 */
export class RunAbort {
  private controller: AbortController | undefined;
  private listeners: Array<() => void> = [];
  private stopped: { readonly reason: unknown } | undefined;

  get aborted(): boolean {
    return this.stopped !== undefined;
  }

  get reason(): unknown {
    return this.stopped?.reason;
  }

  /** How many listeners wait for it (a run that has closed leaves none). */
  get listening(): number {
    return this.listeners.length;
  }

  /** The first call wins; each listener then runs once, in the order added. */
  abort(reason: unknown): void {
    if (this.stopped) return;
    this.stopped = { reason };
    this.controller?.abort(reason);
    const listeners = this.listeners;
    this.listeners = [];
    for (const listener of listeners) listener();
  }

  /**
   * Calls `listener` when the run is aborted; as with an AbortSignal, not if it already was
   * (check `aborted` first). Returns what takes the listener off again.
   */
  onAbort(listener: () => void): () => void {
    if (!this.stopped) this.listeners.push(listener);
    return () => {
      const at = this.listeners.indexOf(listener);
      if (at !== -1) this.listeners.splice(at, 1);
    };
  }

  /** An AbortSignal that follows this abort, made on first use. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.stopped) this.controller.abort(this.stopped.reason);
    }
    return this.controller.signal;
  }
}
