// One StreamEvents subscription for the whole dashboard (with its own token), fanned out to
// every browser's SSE channel and remembered in the recent tracks and commands. The gRPC stream
// is opened again after a failure (the node restarted, a network blip), waiting longer each time
// up to 10 s, so a browser sees the feed come back without reloading.
import type { ClientReadableStream } from '@grpc/grpc-js';
import type { RecentCommands, RecentTracks } from './recent.js';
import type { SseChannel } from './sse.js';
import { withoutSyntheticOneofs, type VehicleClient, type VehicleEvent } from './vehicleClient.js';

/** What a browser receives for one vehicle event (the SSE event name is its kind). */
export interface LiveEvent {
  kind: 'position' | 'alarm' | 'online' | 'command';
  vehicleId: string;
  atUnixMs: number;
  source?: string;
  position?: VehicleEvent['position'];
  alarm?: VehicleEvent['alarm'];
  online?: VehicleEvent['online'];
  command?: VehicleEvent['command'];
}

interface Subscriber {
  channel: SseChannel;
  /** Only this vehicle's events, when set. */
  vehicleId: string | undefined;
}

export class LiveFeed {
  private stream: ClientReadableStream<unknown> | undefined;
  private readonly subscribers = new Set<Subscriber>();
  private retryMs = 500;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The stream is open and events flow (for the status shown in the page). */
  connected = false;
  lastError = '';

  constructor(
    private readonly client: VehicleClient,
    private readonly token: string,
    private readonly tracks: RecentTracks,
    private readonly commands: RecentCommands,
  ) {}

  start(): void {
    if (this.stopped || this.stream) return;
    const stream = this.client.streamEvents(this.token, ['POSITION', 'ALARM', 'ONLINE', 'COMMAND']);
    this.stream = stream;
    stream.on('metadata', () => {
      this.connected = true;
    });
    stream.on('data', (raw: unknown) => {
      this.connected = true;
      this.retryMs = 500;
      this.take(withoutSyntheticOneofs(raw) as VehicleEvent);
    });
    const retry = (why: string): void => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      this.connected = false;
      this.lastError = why;
      if (this.stopped) return;
      this.retryTimer = setTimeout(() => this.start(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 10_000);
    };
    stream.on('error', (err: Error) => retry(err.message));
    stream.on('end', () => retry('the event stream ended'));
  }

  subscribe(channel: SseChannel, vehicleId: string | undefined): () => void {
    const s: Subscriber = { channel, vehicleId };
    this.subscribers.add(s);
    return () => {
      this.subscribers.delete(s);
      channel.close();
    };
  }

  get browsers(): number {
    return this.subscribers.size;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const s = this.stream;
    this.stream = undefined;
    s?.cancel();
    for (const sub of this.subscribers) sub.channel.close();
    this.subscribers.clear();
  }

  private take(e: VehicleEvent): void {
    if (e.kind === 'EVENTS_DROPPED') {
      // The node dropped events for us: every browser may have a gap.
      for (const s of this.subscribers) s.channel.send('dropped', { count: e.dropped ?? 0 });
      return;
    }
    const live: LiveEvent = {
      kind: e.kind.toLowerCase() as LiveEvent['kind'],
      vehicleId: e.vehicleId,
      atUnixMs: e.atUnixMs,
    };
    if (e.kind === 'POSITION' && e.position) {
      this.tracks.add(e.vehicleId, e.position);
      live.position = e.position;
      live.source = e.source;
    } else if (e.kind === 'ALARM') live.alarm = e.alarm;
    else if (e.kind === 'ONLINE') live.online = e.online;
    else if (e.kind === 'COMMAND' && e.command) {
      this.commands.status(e.command);
      live.command = e.command;
    }
    for (const s of this.subscribers) {
      if (s.vehicleId === undefined || s.vehicleId === e.vehicleId) s.channel.send(live.kind, live);
    }
  }
}
