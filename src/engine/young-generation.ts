import { setFlagsFromString } from 'node:v8';
import type { Logger } from '../log.js';

/** Runs admitted in one second from which V8 may grow the heap as it would by default. */
export const BUSY_RUNS_PER_SECOND = 200;
/** Seconds under that rate before the hold is back (so a storm's pauses do not flip it). */
export const QUIET_SECONDS = 10;
/**
 * Each held flag's value when released: V8's own. 2 is the semi-space factor's (its minimum), which
 * Heap::ConfigureHeap sets back for every isolate; 0 lets V8 choose the old generation's growth.
 */
const RELEASED: Readonly<Record<string, string>> = { '--semi-space-growth-factor': '2', '--heap-growing-percent': '0' };

/** The flags of `hold` with V8's own values: '--semi-space-growth-factor=1 --heap-growing-percent=50' -> '…=2 …=0'. */
export function releaseOf(hold: string): string {
  return hold.split(' ').map((flag) => {
    const [name = ''] = flag.split('=');
    const value = RELEASED[name];
    return value === undefined ? flag : `${name}=${value}`;
  }).join(' ');
}

/** The flags bin/upkeep.js set to hold the heap's growth, or null (a user set them, or a test). */
export function youngGenerationHold(): string | null {
  const hold: unknown = Reflect.get(globalThis, Symbol.for('upkeep.youngGenerationHold'));
  return typeof hold === 'string' ? hold : null;
}

/**
 * bin/upkeep.js holds V8's young generation at 1 MB semi-spaces, which keeps idle RSS and the
 * big scrape's peak low (docs/performance.md, "Idle memory"), and the old generation's growth
 * between mark-compacts at 1.5x ("The old generation's growth held"). Under an alert storm the
 * hold costs CPU: at 1,000 alerts/s the main thread scavenged 135 times a second, 10 % of its
 * time. So while runs are admitted at BUSY_RUNS_PER_SECOND or more, V8 may grow both as it would
 * by default (5–8 % less CPU per alert, 14 MB more RSS at the peak of a storm); once the rate has
 * stayed lower for QUIET_SECONDS, the hold is back, and V8's memory reducer gives the grown space
 * back within a minute (docs/performance.md, "Mark-compacts, and the young generation under load").
 */
export class YoungGeneration {
  private admitted = 0;
  private quietSeconds = 0;
  private released = false;
  private timer: NodeJS.Timeout | undefined;

  /** bin/upkeep.js's flags and their released values, or null: nothing to set. */
  private readonly flags: { readonly hold: string; readonly release: string } | null;
  private readonly setFlags: (flags: string) => void;
  private readonly log: Logger | undefined;

  /** `hold` and `setFlags` are bin/upkeep.js's flags and V8's setter unless a test gives its own. */
  constructor(options: { log?: Logger; hold?: string | null; setFlags?: (flags: string) => void } = {}) {
    const hold = options.hold === undefined ? youngGenerationHold() : options.hold;
    this.flags = hold === null ? null : { hold, release: releaseOf(hold) };
    this.setFlags = options.setFlags ?? setFlagsFromString;
    this.log = options.log;
  }

  /** Counts one run admitted. */
  admit(): void {
    this.admitted += 1;
  }

  start(): void {
    if (this.flags === null || this.timer) return;
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One second's count: release on a busy second, hold again after QUIET_SECONDS quiet ones. */
  tick(): void {
    const runs = this.admitted;
    this.admitted = 0;
    if (runs >= BUSY_RUNS_PER_SECOND) {
      this.quietSeconds = 0;
      if (!this.released) {
        this.released = true;
        this.log?.debug({ runsPerSecond: runs }, 'runs are admitted fast: V8 may grow the heap as it would by default');
        this.apply();
      }
      return;
    }
    this.quietSeconds += 1;
    if (this.released && this.quietSeconds >= QUIET_SECONDS) {
      this.released = false;
      this.log?.debug({ quietSeconds: this.quietSeconds }, 'runs are admitted slowly again: the heap\'s growth is held');
      this.apply();
    }
  }

  /**
   * Sets V8's flags for the current state. They are process-wide, and V8 sets the semi-space one back to 2
   * whenever it configures an isolate's heap (Heap::ConfigureHeap): the executor thread's start
   * once undid the hold on the main thread too (its new space grew from 2 to 32 MB under the
   * webhook bench), so the thread calls this once it is online.
   */
  apply(): void {
    if (this.flags === null) return;
    this.setFlags(this.released ? this.flags.release : this.flags.hold);
  }
}
