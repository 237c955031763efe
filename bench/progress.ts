// A one-line progress bar for long bench runs, drawn on stderr only when stdout is a terminal
// (a run piped to a file or a test gets none): a few lines, no package needed.
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(s: string): unknown;
}

export class ProgressBar {
  private shown = false;
  private lastDraw = 0;

  constructor(
    private readonly stream: ProgressStream = process.stderr,
    private readonly enabled = Boolean(process.stdout.isTTY && process.stderr.isTTY),
    /** Redraws at most this often (ms), except at 100 %. */
    private readonly everyMs = 100,
  ) {}

  update(label: string, done: number, total: number): void {
    if (!this.enabled || total <= 0) return;
    const now = Date.now();
    const fraction = Math.min(1, Math.max(0, done / total));
    if (fraction < 1 && now - this.lastDraw < this.everyMs) return;
    this.lastDraw = now;
    // A terminal of unknown width (0 under some wrappers) is taken as 80 columns.
    const columns = this.stream.columns || 80;
    const width = Math.max(10, Math.min(40, columns - label.length - 12));
    const filled = Math.round(fraction * width);
    const line = `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)} %`;
    // \r back to the line's start, \x1b[K clears what a longer line left.
    this.stream.write(`\r${line.slice(0, columns - 1)}\x1b[K`);
    this.shown = true;
  }

  /** Removes the bar so other output starts on a clean line. */
  clear(): void {
    if (!this.shown) return;
    this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}
