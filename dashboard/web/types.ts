// The JSON the dashboard server answers (dashboard/server.ts), as the browser sees it.

export interface Position {
  timeUnixMs: number;
  receivedUnixMs: number;
  latitude: number;
  longitude: number;
  altitudeM: number;
  speedKmh: number;
  directionDeg: number;
  alarm: number;
  status: number;
}

export interface OpenAlarm {
  bit: number;
  startUnixMs: number;
}

export interface Vehicle {
  vehicleId: string;
  registered: boolean;
  online: boolean;
  edition: number;
  phone: string;
  node: string;
  lastSeenUnixMs: number;
  lastPosition: Position | null;
  registration: { plate: string; maker: string; model: string; terminalId: string } | null;
  openAlarms: OpenAlarm[];
  pendingCommands: { commandId: string; type: string; createdUnixMs: number }[];
}

export interface OnlineVehicle {
  vehicleId: string;
  node: string;
  lastSeenUnixMs: number;
}

export interface CommandStatus {
  commandId: string;
  vehicleId: string;
  state: string;
  updatedUnixMs: number;
  attempts: number;
  detail: string;
  replyType: string;
  result: number;
  replyJson: string;
  /** From the node's command log (ListCommands): message type and id, when it was queued. */
  kind?: string;
  messageId?: number;
  createdUnixMs?: number;
}

export interface CommandEntry {
  commandId: string;
  what: string;
  sentUnixMs: number;
  status: CommandStatus | null;
}

export interface TrackPoint {
  t: number;
  lat: number;
  lon: number;
  speed: number;
}

export interface VehicleDetail {
  vehicle: Vehicle;
  track: TrackPoint[];
  trackHours: number;
  /** Where the track comes from: the node's stored history, or only what the feed brought. */
  trackSource: 'store' | 'live feed';
  commands: CommandEntry[];
  /** The next (older) page of the command history, '' when there is none. */
  commandsNext: string;
  /** Where the history comes from: the node's command log, or only what the feed brought. */
  commandsSource: 'store' | 'live feed';
}

/** GET /api/vehicles/ID/commands: a page of the command history, newest first. */
export interface CommandsView {
  commands: CommandEntry[];
  nextPageToken: string;
  source: 'store' | 'live feed';
}

/** A member's load as its last report gives it (ListMembers): `terminals` always. */
export interface MemberLoad {
  terminals: number;
  authenticated?: number;
  reportsPerSecond?: number;
  elu?: number;
  cpu?: number;
  rssBytes?: number;
  capacity?: number;
  zone?: string;
}

export interface MemberRow {
  node: string;
  vehicles: number;
  /** Named by the membership; false for a node known only from its vehicles (or as this one). */
  member: boolean;
  gateway?: string;
  grpc?: string;
  workers?: number;
  startedAtUnixMs?: number;
  reportedAtUnixMs?: number;
  load?: MemberLoad;
  draining?: boolean;
}

export interface LoadSample {
  tUnixMs: number;
  online: Record<string, number>;
  reportsPerSecond: Record<string, number>;
}

export interface ClusterView {
  self: string;
  takenUnixMs: number;
  totalOnline: number;
  members: MemberRow[];
  /** 'unimplemented': the node has no ListMembers; members are then what the vehicles say. */
  membership: 'listed' | 'unimplemented';
  history: LoadSample[];
  sampleMs: number;
  liveFeed: { connected: boolean; lastError: string; browsers: number };
}

export interface VehicleList {
  totalOnline: number;
  matched: number;
  truncated: boolean;
  vehicles: OnlineVehicle[];
}

export interface LiveEvent {
  kind: 'position' | 'alarm' | 'online' | 'command';
  vehicleId: string;
  atUnixMs: number;
  source?: string;
  position?: Position | null;
  alarm?: { opened: boolean; bit: number } | null;
  online?: { online: boolean; reason: string } | null;
  command?: CommandStatus | null;
}

export interface CandidateLoad {
  node: string;
  zone: string;
  capacity: number;
  terminals: number;
  assigned: number;
  draining: boolean;
}

/** A decision of the locator (LocatorService.ListDecisions). */
export interface LocatorDecision {
  seq: number;
  atUnixMs: number;
  vehicleId: string;
  phone: string;
  source: string;
  node: string;
  reason: string;
  terminalZone: string;
  nodeZone: string;
  inZone: boolean;
  overCapacity: boolean;
  candidates: CandidateLoad[];
}

export interface DecisionBucket {
  startUnixMs: number;
  byNode: Record<string, number>;
  otherNodes: number;
  noNode: number;
}

/** GET /api/locator: no locator configured, its answer, or why there is none. */
export type LocatorView =
  | { configured: false }
  | { configured: true; address: string; error: string }
  | {
      configured: true;
      address: string;
      error?: undefined;
      decisions: LocatorDecision[];
      lastSeq: number;
      capacity: number;
      bucketSeconds: number;
      buckets: DecisionBucket[];
    };
