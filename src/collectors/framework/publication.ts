/**
 * The results one publish put in the families, and the expositions still reading them. An
 * exposition renders as its client reads, so a slow client can still be reading a publication
 * after newer ones replaced it. Each result is released (its collector may reuse its arrays) once
 * its publication was replaced and every exposition begun on it has ended.
 */
export class Publication {
  private readers = 0;
  private replaced = false;

  constructor(private readonly releases: (() => void)[]) {}

  /** An exposition begins reading this publication; the function returned says it ended (once). */
  read(): () => void {
    this.readers += 1;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.readers -= 1;
      this.releaseIfUnread();
    };
  }

  /** A newer publication took this one's place in the families. */
  replace(): void {
    this.replaced = true;
    this.releaseIfUnread();
  }

  private releaseIfUnread(): void {
    if (!this.replaced || this.readers > 0) return;
    for (const release of this.releases.splice(0)) release();
  }
}

/**
 * The slices, then `ended()` however the reading stops: all read, the reader gone (its loop
 * broken, which returns the generator), or a render error. A generator never started ends
 * nothing, so its publication's results are never released and their arrays go to the garbage
 * collector instead of back to their pool.
 */
export async function* reading(slices: AsyncGenerator<Uint8Array>, ended: () => void): AsyncGenerator<Uint8Array> {
  try {
    yield* slices;
  } finally {
    ended();
  }
}
