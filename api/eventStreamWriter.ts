// Writes events to one subscriber's stream without letting a slow consumer grow memory: past
// `maxBacklog` messages waiting in the stream, newer events are dropped and counted, and once
// there is room again the consumer first gets one EVENTS_DROPPED message with the count.
// Pure: the sink is anything with a write() and a count of what it holds (a gRPC call).

export interface MessageSink<M> {
  readonly writableLength: number;
  write(message: M): unknown;
}

export class EventStreamWriter<M> {
  /** Events dropped since the last EVENTS_DROPPED message. */
  private pendingDrops = 0;
  /** Every event dropped on this stream. */
  droppedTotal = 0;

  constructor(
    private readonly sink: MessageSink<M>,
    private readonly maxBacklog: number,
    private readonly droppedMessage: (count: number) => M,
  ) {}

  send(message: M): void {
    if (this.sink.writableLength >= this.maxBacklog) {
      this.pendingDrops++;
      this.droppedTotal++;
      return;
    }
    if (this.pendingDrops > 0) {
      this.sink.write(this.droppedMessage(this.pendingDrops));
      this.pendingDrops = 0;
    }
    this.sink.write(message);
  }
}
