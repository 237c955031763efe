// One browser's server-sent event stream with a bounded backlog. The socket takes what it can;
// while it cannot (a slow or paused browser), events wait here up to `maxBacklog`, and newer
// ones past that are dropped and counted: once the backlog has drained, the browser gets one
// `dropped` event with the count, so it knows to reload instead of trusting a gap-free feed
// (the same rule the gRPC event stream follows). Memory per browser is bounded whatever it does.

/** What an SSE channel writes to: an http.ServerResponse, or a fake in tests. */
export interface EventSink {
  write(chunk: string): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

export interface ChannelStats {
  sent: number;
  waiting: number;
  dropped: number;
  droppedTotal: number;
}

export class SseChannel {
  private readonly backlog: string[] = [];
  private blocked = false;
  private droppedSinceNotice = 0;
  private closed = false;
  readonly stats: ChannelStats = { sent: 0, waiting: 0, dropped: 0, droppedTotal: 0 };

  constructor(
    private readonly sink: EventSink,
    readonly maxBacklog: number,
  ) {
    if (!Number.isInteger(maxBacklog) || maxBacklog < 1) {
      throw new RangeError(`maxBacklog must be a whole number ≥ 1, not ${maxBacklog}`);
    }
  }

  /** Queues one event named `event` carrying `data` as JSON. */
  send(event: string, data: unknown): void {
    if (this.closed) return;
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    if (this.blocked) {
      if (this.backlog.length < this.maxBacklog) this.backlog.push(frame);
      else {
        this.droppedSinceNotice++;
        this.stats.droppedTotal++;
      }
      this.stats.waiting = this.backlog.length;
      this.stats.dropped = this.droppedSinceNotice;
      return;
    }
    this.write(frame);
  }

  /** A comment line: keeps proxies and the browser from timing the stream out. */
  keepAlive(): void {
    if (!this.closed && !this.blocked) this.write(': keep-alive\n\n');
  }

  close(): void {
    this.closed = true;
    this.backlog.length = 0;
  }

  private write(frame: string): void {
    this.stats.sent++;
    if (this.sink.write(frame)) return;
    this.blocked = true;
    this.sink.once('drain', () => this.drain());
  }

  private drain(): void {
    if (this.closed) return;
    this.blocked = false;
    while (this.backlog.length > 0) {
      const frame = this.backlog.shift() as string;
      this.stats.waiting = this.backlog.length;
      this.write(frame);
      if (this.blocked) return;
    }
    if (this.droppedSinceNotice > 0) {
      const count = this.droppedSinceNotice;
      this.droppedSinceNotice = 0;
      this.stats.dropped = 0;
      this.write(`event: dropped\ndata: ${JSON.stringify({ count })}\n\n`);
    }
  }
}
