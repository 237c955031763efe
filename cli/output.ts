// The output of the commands that print what a service answers (track, area): written as it
// comes, waiting when the reader is slow, and ending quietly when the reader has gone
// (`fleetmesh track … | head -2`: stdout closes, writes fail with EPIPE; that is not an error).
import type { Writable } from 'node:stream';

/** Writes to `out` (stdout) until the reader closes it. */
export class Output {
  private gone = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly out: Writable) {
    // Listening is what keeps an EPIPE from being an unhandled 'error' (a crash with a stack).
    out.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') this.gone = true;
      else this.failure ??= err;
      this.wake?.();
    });
    out.on('close', () => {
      this.gone = true;
      this.wake?.();
    });
  }

  /** The reader has gone: nothing more will be read. */
  get closed(): boolean {
    return this.gone || this.out.destroyed;
  }

  /**
   * Writes `s`, waiting for the output to drain when it is full (a pipe to a slow reader).
   * False once the reader has gone (the caller stops); throws on any other write failure.
   */
  async write(s: string): Promise<boolean> {
    if (this.failure) throw this.failure;
    if (this.closed) return false;
    if (!this.out.write(s))
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.out.off('drain', done);
          this.wake = undefined;
          resolve();
        };
        this.wake = done;
        this.out.on('drain', done);
      });
    if (this.failure) throw this.failure;
    return !this.closed;
  }
}
