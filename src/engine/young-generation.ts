import { setFlagsFromString } from 'node:v8';
import type { Logger } from '../log.js';

/** Runs admitted in one second from which V8 may grow the young generation again. */
export const BUSY_RUNS_PER_SECOND = 200;
/** Seconds under that rate before the hold is back (so a storm's pauses do not flip it). */
export const QUIET_SECONDS = 10;
/** V8's own factor (its minimum), which Heap::ConfigureHeap sets back for every isolate. */
const RELEASE = '--semi-space-growth-factor=2';

/** The flag bin/upkeep.js set to hold the young generation, or null (a user sized it, or a test). */
export function youngGenerationHold(): string | null {
  const hold: unknown = Reflect.get(globalThis, Symbol.for('upkeep.youngGenerationHold'));
  return typeof hold === 'string' ? hold : null;
}

/**
 * bin/upkeep.js holds V8's young generation at 1 MB semi-spaces, which keeps idle RSS and the
 * big scrape's peak low (docs/performance.md, "Idle memory"). Under an alert storm the hold costs
 * CPU: at 1,000 alerts/s the main thread scavenged 135 times a second, 10 % of its time. So while
 * runs are admitted at BUSY_RUNS_PER_SECOND or more, V8 may grow it as it would by default (5–8 %
 * less CPU per alert, 14 MB more RSS at the peak of a storm); once the rate has stayed lower for
 * QUIET_SECONDS, the hold is back, and V8's memory reducer gives the grown space back within a
 * minute (docs/performance.md, "Mark-compacts, and the young generation under load").
 */
export class YoungGeneration {
  private admitted = 0;
  private quietSeconds = 0;
  private released = false;
  private timer: NodeJS.Timeout | undefined;

  private readonly hold: string | null;
  private readonly setFlags: (flags: string) => void;
  private readonly log: Logger | undefined;

  /** `hold` and `setFlags` are bin/upkeep.js's flag and V8's setter unless a test gives its own. */
  constructor(options: { log?: Logger; hold?: string | null; setFlags?: (flags: string) => void } = {}) {
    this.hold = options.hold === undefined ? youngGenerationHold() : options.hold;
    this.setFlags = options.setFlags ?? setFlagsFromString;
    this.log = options.log;
  }

  /** Counts one run admitted. */
  admit(): void {
    this.admitted += 1;
  }

  start(): void {
    if (this.hold === null || this.timer) return;
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
        this.log?.debug({ runsPerSecond: runs }, 'runs are admitted fast: V8 may grow the young generation');
        this.apply();
      }
      return;
    }
    this.quietSeconds += 1;
    if (this.released && this.quietSeconds >= QUIET_SECONDS) {
      this.released = false;
      this.log?.debug({ quietSeconds: this.quietSeconds }, 'runs are admitted slowly again: the young generation is held');
      this.apply();
    }
  }

  /**
   * Sets V8's flag for the current state. The flag is process-wide, and V8 sets it back to 2
   * whenever it configures an isolate's heap (Heap::ConfigureHeap): the executor thread's start
   * once undid the hold on the main thread too (its new space grew from 2 to 32 MB under the
   * webhook bench), so the thread calls this once it is online.
   */
  apply(): void {
    if (this.hold === null) return;
    this.setFlags(this.released ? RELEASE : this.hold);
  }
}
