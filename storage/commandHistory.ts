// A vehicle's downlink commands read back from the commands log (append-only events written by
// VehicleStore.logCommand): each command's first entry (queued, or refused) names it — kind,
// message id, `createdAt` —, the others move its state (a command in flight when its terminal
// goes offline is logged 'queued' again, so 'queued' alone does not mark the first). Pages are
// over the first entries, newest first by `createdAt` (index `vehicle_created`); then the
// entries of the page's commands are read at once, newest first and bounded (`command_at`), and
// folded into one status each by the caller. A command's log has no upper size (re-queued each
// time its terminal drops while it is in flight): one whose entries the bound cut gets its
// latest entry and its highest attempt read on their own, so every status is exact and every
// read bounded. Commands logged before first entries carried `createdAt` are not listed.
// Read-only, no actor.
import { ObjectId, type Db, type Document } from 'mongodb';
import {
  decodeCursor,
  encodeCursor,
  InvalidQuery,
  pageSize,
  storedVehicleId,
} from './historyQuery.js';
import { COLLECTIONS } from './schema.js';

export const DEFAULT_COMMAND_PAGE = 100;
export const MAX_COMMAND_PAGE = 500;
/** Entries read per command of a page in one read (queued, sends, the outcome; generous). */
const MAX_EVENTS_PER_COMMAND = 64;

export interface CommandListQuery {
  vehicleId: string;
  /** Created (queued) at or after; undefined: open. */
  fromMs?: number;
  /** Created before; undefined: open. */
  toMs?: number;
}

export interface CommandListRequest {
  vehicleId?: unknown;
  fromUnixMs?: unknown;
  toUnixMs?: unknown;
}

function bound(raw: unknown, name: string): number | undefined {
  const n = raw === undefined || raw === null ? 0 : Number(raw);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new InvalidQuery(`${name} must be Unix milliseconds (>= 0; 0 leaves the range open)`);
  return n === 0 ? undefined : n;
}

export function commandListQuery(req: CommandListRequest): CommandListQuery {
  const fromMs = bound(req.fromUnixMs, 'from_unix_ms');
  const toMs = bound(req.toUnixMs, 'to_unix_ms');
  if (fromMs !== undefined && toMs !== undefined && toMs <= fromMs)
    throw new InvalidQuery(`to_unix_ms (${toMs}) must be after from_unix_ms (${fromMs})`);
  return {
    vehicleId: storedVehicleId(req.vehicleId),
    ...(fromMs !== undefined ? { fromMs } : {}),
    ...(toMs !== undefined ? { toMs } : {}),
  };
}

export function commandPageSize(raw: unknown): number {
  return pageSize(raw, DEFAULT_COMMAND_PAGE, MAX_COMMAND_PAGE);
}

/** One command: its first log entry and every entry of it, in the order they happened. */
export interface StoredCommand {
  commandId: string;
  vehicleId: string;
  /** Message type and id, '' and 0 when its first entry predates them. */
  kind: string;
  messageId: number;
  createdAt: number;
  events: Document[];
}

export interface CommandPage {
  commands: StoredCommand[];
  nextPageToken: string;
}

/** An _id as the cursor carries it (the log's ids are ObjectIds; a string stays a string). */
function idOf(id: string): ObjectId | string {
  return /^[0-9a-f]{24}$/.test(id) ? new ObjectId(id) : id;
}

function idText(id: unknown): string {
  return id instanceof ObjectId ? id.toHexString() : String(id);
}

/** Log entries in the order they happened: by time, then by id (ObjectIds grow per writer). */
export function byTimeThenId(a: Document, b: Document): number {
  const d = (a.at as Date).getTime() - (b.at as Date).getTime();
  if (d !== 0) return d;
  const x = idText(a._id);
  const y = idText(b._id);
  return x < y ? -1 : x > y ? 1 : 0;
}

export class CommandHistoryReader {
  constructor(private readonly db: Db) {}

  /** One page of the vehicle's commands, newest first by (created, id). */
  async page(q: CommandListQuery, size: number, token: unknown): Promise<CommandPage> {
    const after = decodeCursor(token);
    if (after && after.id === undefined)
      throw new InvalidQuery('page_token is not one this service handed out');
    const log = this.db.collection(COLLECTIONS.commands);
    const created: Document = {};
    if (q.fromMs !== undefined) created.$gte = new Date(q.fromMs);
    if (q.toMs !== undefined) created.$lt = new Date(q.toMs);
    const filter: Document = {
      vehicleId: q.vehicleId,
      createdAt: Object.keys(created).length > 0 ? created : { $exists: true },
    };
    if (after)
      filter.$or = [
        { createdAt: { $lt: new Date(after.time) } },
        { createdAt: new Date(after.time), _id: { $lt: idOf(after.id as string) } },
      ];
    const firsts = await log
      .find(filter, { sort: { createdAt: -1, _id: -1 }, limit: size + 1 })
      .toArray();
    const page = firsts.slice(0, size);
    // A command whose first entry was written twice (a retried batch) is listed once.
    const seen = new Set<string>();
    const heads = page.filter((d) => {
      const id = String(d.commandId);
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
    // The page's entries newest first, so a limit cuts the oldest: a command's log has no upper
    // size (each time its terminal drops while it is in flight it is logged queued, then sent,
    // again). The read is a prefix of the (at, _id) order: a command with any entry in it has
    // its latest there too.
    const limit = heads.length * MAX_EVENTS_PER_COMMAND;
    const events = heads.length
      ? await log
          .find(
            { commandId: { $in: heads.map((d) => String(d.commandId)) } },
            { sort: { at: -1, _id: -1 }, limit },
          )
          .toArray()
      : [];
    const byCommand = new Map<string, Document[]>();
    for (const e of events) {
      const list = byCommand.get(String(e.commandId));
      if (list) list.push(e);
      else byCommand.set(String(e.commandId), [e]);
    }
    const commands = await Promise.all(
      heads.map(async (d): Promise<StoredCommand> => {
        const id = String(d.commandId);
        const created = d.createdAt as Date;
        const read = byCommand.get(id) ?? [];
        // Read whole unless the limit was reached and its first entry is not among those read:
        // then its latest entry and its highest attempt, one bounded read each.
        const whole = events.length < limit || read.some((e) => idText(e._id) === idText(d._id));
        const more = whole ? [] : await this.latestAndMostAttempts(id, read.length === 0);
        return {
          commandId: id,
          vehicleId: String(d.vehicleId),
          kind: typeof d.kind === 'string' ? d.kind : '',
          messageId: typeof d.messageId === 'number' ? d.messageId : 0,
          createdAt: created.getTime(),
          events: distinct([d, ...read, ...more])
            .filter((e) => e.vehicleId === d.vehicleId)
            .sort(byTimeThenId),
        };
      }),
    );
    const last = page[page.length - 1];
    return {
      commands,
      nextPageToken:
        firsts.length > size && last
          ? encodeCursor({ time: (last.createdAt as Date).getTime(), id: idText(last._id) })
          : '',
    };
  }

  /**
   * The entries that give a command's status, in the order they happened, however long its log:
   * its first (kind, message id, created), its latest and the one with its highest attempt —
   * three reads of one entry each. Empty for an unknown command.
   */
  async commandEntries(commandId: string): Promise<Document[]> {
    const log = this.db.collection(COLLECTIONS.commands);
    const [first, more] = await Promise.all([
      log.findOne({ commandId }, { sort: { at: 1, _id: 1 } }),
      this.latestAndMostAttempts(commandId, true),
    ]);
    return distinct([...(first ? [first] : []), ...more]).sort(byTimeThenId);
  }

  /** A command's entry with the highest attempt, and its latest entry when `latest`. */
  private async latestAndMostAttempts(commandId: string, latest: boolean): Promise<Document[]> {
    const log = this.db.collection(COLLECTIONS.commands);
    const [last, attempts] = await Promise.all([
      latest ? log.findOne({ commandId }, { sort: { at: -1, _id: -1 } }) : null,
      log.findOne({ commandId, attempt: { $exists: true } }, { sort: { attempt: -1 } }),
    ]);
    return [...(last ? [last] : []), ...(attempts ? [attempts] : [])];
  }
}

/** Entries once each (by _id). */
function distinct(entries: Document[]): Document[] {
  const seen = new Set<string>();
  return entries.filter((e) => {
    const id = idText(e._id);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}
