// A counter's rate over a sliding window of samples, for the status line of `fleetmesh start`:
// the difference between two samples 2 s apart jumps when the reports come in bursts (terminals
// reporting in step every 10 s gave 24/s, then 0/s), while over a window at least as long as the
// report interval every terminal is counted once per interval, and the rate stays steady.

export class RateWindow {
  private readonly samples: { at: number; count: number }[] = [];

  /** `windowMs`: how far back the rate looks (the oldest sample kept is at most that old). */
  constructor(private readonly windowMs: number) {
    if (!(windowMs > 0)) throw new RangeError('the window must be positive');
  }

  /**
   * Takes the counter's value at `at` (ms, monotonic) and answers its rate per second over the
   * window up to now (0 from a single sample). A counter that went back (a restarted node)
   * starts the window again.
   */
  sample(at: number, count: number): number {
    const last = this.samples[this.samples.length - 1];
    if (last && (count < last.count || at < last.at)) this.samples.length = 0;
    this.samples.push({ at, count });
    // Keep one sample at or beyond the window's start, so the window is covered in full.
    while (this.samples.length > 2 && this.samples[1]!.at <= at - this.windowMs)
      this.samples.shift();
    const first = this.samples[0]!;
    const span = at - first.at;
    return span > 0 ? ((count - first.count) * 1000) / span : 0;
  }
}
