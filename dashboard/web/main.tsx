// The dashboard's front-end: log in with a node token, then the cluster and the online
// vehicles (#/), or one vehicle (#/vehicles/ID): its live position and track, open alarms,
// commands. Live data comes by server-sent events; every list kept here is bounded too.
import 'uplot/dist/uPlot.min.css';
import './app.css';
import { render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ALARM_NAMES, api, ApiError, time } from './api.js';
import { LoadChart, NodeChart } from './loadChart.js';
import { distance, TrackPlane } from './trackPlane.js';
import type {
  CandidateLoad,
  ClusterView,
  CommandEntry,
  CommandsView,
  LiveEvent,
  LocatorView,
  TrackPoint,
  VehicleDetail,
  VehicleList,
} from './types.js';

const LIVE_LINES = 100;
const TRACK_POINTS = 5000;
/** Commands a vehicle page shows at most (pages of 50 from the node's log). */
const COMMANDS_SHOWN = 500;

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = (): void => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

/** Runs `fn` now and every `ms` while mounted (and again whenever `deps` change). */
function usePoll(fn: () => Promise<void>, ms: number, deps: unknown[]): void {
  useEffect(() => {
    let stop = false;
    let timer: number | undefined;
    const tick = async (): Promise<void> => {
      await fn().catch(() => undefined);
      if (!stop) timer = window.setTimeout(tick, ms);
    };
    void tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, deps);
}

/** Follows the live feed (one vehicle's or everyone's) while mounted. */
function useLive(vehicle: string | undefined, on: (kind: string, data: unknown) => void): boolean {
  const [open, setOpen] = useState(false);
  const handler = useRef(on);
  handler.current = on;
  useEffect(() => {
    const es = new EventSource(`/api/events${vehicle ? `?vehicle=${vehicle}` : ''}`);
    es.onopen = () => setOpen(true);
    es.onerror = () => setOpen(false);
    for (const kind of ['ready', 'position', 'alarm', 'online', 'command', 'dropped']) {
      es.addEventListener(kind, (e) =>
        handler.current(kind, JSON.parse((e as MessageEvent<string>).data)),
      );
    }
    return () => es.close();
  }, [vehicle]);
  return open;
}

function Login({ onDone }: { onDone: () => void }) {
  const [token, setToken] = useState('');
  const [operator, setOperator] = useState('');
  const [error, setError] = useState('');
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError('');
    try {
      await api('/api/login', { token, operator });
      onDone();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <form class="login card" onSubmit={submit}>
      <h1>fleetmesh</h1>
      <p>Log in with a gRPC token of the node (.fleetmesh/grpc-token).</p>
      <input
        type="password"
        name="token"
        placeholder="token"
        autocomplete="current-password"
        value={token}
        onInput={(e) => setToken((e.target as HTMLInputElement).value)}
      />
      <input
        name="operator"
        placeholder="your name (optional): recorded on the alarms you handle"
        autocomplete="username"
        maxLength={64}
        value={operator}
        onInput={(e) => setOperator((e.target as HTMLInputElement).value)}
      />
      <button type="submit">Log in</button>
      {error && <p class="error">{error}</p>}
    </form>
  );
}

/** A share 0..1 as a percentage, or a dash when the member does not report it. */
const percent = (x: number | undefined): string =>
  x === undefined ? '–' : `${Math.round(x * 100)} %`;
const mib = (x: number | undefined): string =>
  x === undefined ? '–' : `${Math.round(x / (1024 * 1024))} MiB`;

function Cluster() {
  const [view, setView] = useState<ClusterView | null>(null);
  usePoll(async () => setView(await api<ClusterView>('/api/cluster')), 3000, []);
  if (!view) return <section class="card">loading the cluster…</section>;
  return (
    <section class="card cluster">
      <h2>
        Cluster <small>{view.totalOnline} vehicles online</small>
      </h2>
      <table>
        <thead>
          <tr>
            <th>member</th>
            <th>vehicles online</th>
            <th>terminals</th>
            <th>reports/s</th>
            <th>CPU</th>
            <th>event loop</th>
            <th>memory</th>
            <th>workers</th>
            <th>gateway</th>
          </tr>
        </thead>
        <tbody>
          {view.members.map((m) => (
            <tr
              class={`member${m.member ? '' : ' not-member'}`}
              data-node={m.node}
              data-member={String(m.member)}
              key={m.node}
              title={
                m.load
                  ? `zone ${m.load.zone ?? '–'}, capacity ${m.load.capacity ?? '–'}, gRPC ${m.grpc || '–'}, load reported ${m.reportedAtUnixMs ? time(m.reportedAtUnixMs) : '–'}`
                  : 'not in the membership: known from its vehicles'
              }
            >
              <td>
                {m.node}
                {m.node === view.self ? ' (this node)' : ''}
                {m.draining ? ' (draining)' : ''}
              </td>
              <td class="vehicles">{m.vehicles}</td>
              <td class="terminals">
                {m.load
                  ? `${m.load.terminals}${m.load.capacity ? ` / ${m.load.capacity}` : ''}`
                  : '–'}
              </td>
              <td class="rps">{m.load?.reportsPerSecond?.toFixed(1) ?? '–'}</td>
              <td>{percent(m.load?.cpu)}</td>
              <td>{percent(m.load?.elu)}</td>
              <td>{mib(m.load?.rssBytes)}</td>
              <td class="workers">{m.workers ?? '–'}</td>
              <td>{m.gateway ?? '–'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <LoadChart history={view.history} figure="online" label="vehicles online" />
      <LoadChart history={view.history} figure="reportsPerSecond" label="reports/s" />
      <p class="note">
        {view.membership === 'listed'
          ? 'Members are the nodes in the membership with their last load report (ListMembers); '
          : 'This node does not list members: members are the nodes holding vehicles’ sessions; '}
        sampled every {view.sampleMs / 1000} s; live feed{' '}
        {view.liveFeed.connected ? 'connected' : `down: ${view.liveFeed.lastError}`},{' '}
        {view.liveFeed.browsers} browser(s) following.
      </p>
    </section>
  );
}

const REASONS: Record<string, string> = {
  DECISION_LEAST_LOADED: 'least loaded',
  DECISION_ZONE: 'zone',
  DECISION_DRAIN: 'drain',
  DECISION_FALLBACK: 'fallback',
  DECISION_NO_NODE: 'no node',
};

/** A candidate's load as the choice saw it: terminals (+ assigned since) / capacity. */
const loadOf = (c: CandidateLoad): string =>
  `${c.node} ${c.terminals}${c.assigned ? `+${c.assigned}` : ''}/${c.capacity}${c.draining ? ' draining' : ''}`;

/** The locator's decisions: terminals sent to each node over time, and the last ones. */
function LocatorPanel() {
  const [view, setView] = useState<LocatorView | null>(null);
  usePoll(async () => setView(await api<LocatorView>('/api/locator?limit=50')), 3000, []);
  if (!view) return <section class="card locator">loading the locator…</section>;
  if (!view.configured)
    return (
      <section class="card locator" data-configured="false">
        <h2>Locator</h2>
        <p class="none">
          No locator configured: this dashboard was not given a locator’s gRPC address (
          <code>npm start</code> gives it its own).
        </p>
      </section>
    );
  if (view.error !== undefined)
    return (
      <section class="card locator" data-configured="true">
        <h2>
          Locator <small>{view.address}</small>
        </h2>
        <p class="error">{view.error}</p>
      </section>
    );
  const points = view.buckets.map((b) => ({
    tUnixMs: b.startUnixMs,
    values: b.noNode > 0 ? { ...b.byNode, '(no node)': b.noNode } : b.byNode,
  }));
  return (
    <section class="card locator" data-configured="true" data-last-seq={view.lastSeq}>
      <h2>
        Locator{' '}
        <small>
          {view.address} · {view.lastSeq} decisions since it started
        </small>
      </h2>
      <NodeChart
        points={points}
        label={`terminals sent per ${view.bucketSeconds} s`}
        name="decisions"
        missing={0}
        steps
      />
      <table>
        <thead>
          <tr>
            <th>time</th>
            <th>vehicle</th>
            <th>node</th>
            <th>reason</th>
            <th>zone</th>
            <th>loads seen (terminals+assigned/capacity)</th>
          </tr>
        </thead>
        <tbody>
          {view.decisions.map((d) => (
            <tr
              class="decision-row"
              key={d.seq}
              data-vehicle={d.vehicleId}
              data-node={d.node}
              data-reason={d.reason}
              title={`#${d.seq}, ${d.source === 'DECISION_SOURCE_LOCATE' ? 'gRPC Locate' : 'a terminal at the JT/T 808 endpoint'}${d.overCapacity ? ', every node full' : ''}`}
            >
              <td title={time(d.atUnixMs)}>{time(d.atUnixMs).slice(11)}</td>
              <td>{d.phone || d.vehicleId}</td>
              <td>{d.node || '—'}</td>
              <td class="reason">{REASONS[d.reason] ?? d.reason}</td>
              <td>
                {d.terminalZone
                  ? `${d.terminalZone}${d.inZone ? '' : ` → ${d.nodeZone || '—'}`}`
                  : d.nodeZone}
              </td>
              <td class="loads">{d.candidates.map(loadOf).join(', ')}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {view.decisions.length === 0 && <p class="none">no decisions yet</p>}
      <p class="note">
        The last {view.decisions.length} of the {view.capacity} decisions the locator keeps
        (ListDecisions), polled every 3 s.
      </p>
    </section>
  );
}

function Vehicles() {
  const [q, setQ] = useState('');
  const [list, setList] = useState<VehicleList | null>(null);
  const [error, setError] = useState('');
  usePoll(
    async () => {
      try {
        setList(await api<VehicleList>(`/api/vehicles?q=${encodeURIComponent(q)}&limit=200`));
        setError('');
      } catch (err) {
        setError(err instanceof Error ? err.message : String(err));
      }
    },
    2000,
    [q],
  );
  return (
    <section class="card vehicles">
      <h2>
        Vehicles online <small>{list ? `${list.matched} of ${list.totalOnline}` : ''}</small>
      </h2>
      <input
        type="search"
        name="search"
        placeholder="search by vehicle id or node"
        value={q}
        onInput={(e) => setQ((e.target as HTMLInputElement).value.trim())}
      />
      {error && <p class="error">{error}</p>}
      <table>
        <thead>
          <tr>
            <th>vehicle</th>
            <th>node</th>
            <th>last seen</th>
          </tr>
        </thead>
        <tbody>
          {list?.vehicles.map((v) => (
            <tr class="vehicle-row" data-vehicle={v.vehicleId} key={v.vehicleId}>
              <td>
                <a href={`#/vehicles/${v.vehicleId}`}>{v.vehicleId}</a>
              </td>
              <td>{v.node}</td>
              <td>{time(v.lastSeenUnixMs)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list && list.matched > list.vehicles.length && (
        <p class="note">{list.matched - list.vehicles.length} more: narrow the search.</p>
      )}
    </section>
  );
}

function describe(kind: string, d: LiveEvent): string {
  if (kind === 'position' && d.position)
    return `${d.position.latitude.toFixed(5)}, ${d.position.longitude.toFixed(5)} ${d.position.speedKmh} km/h (${d.source})`;
  if (kind === 'alarm' && d.alarm)
    return `${d.alarm.opened ? 'opened' : 'closed'} ${ALARM_NAMES[d.alarm.bit] ?? `bit ${d.alarm.bit}`}`;
  if (kind === 'online' && d.online)
    return `${d.online.online ? 'online' : 'offline'} ${d.online.reason}`;
  if (kind === 'command' && d.command) return `command ${d.command.state}`;
  return '';
}

function LiveLog({ vehicle }: { vehicle?: string }) {
  type Line = { n: number; text: string; cls: string };
  const [lines, setLines] = useState<Line[]>([]);
  const seq = useRef(0);
  // A whole fleet's feed is many events a second: they are shown a few times a second, the
  // newest LIVE_LINES only, instead of one render per event.
  const fresh = useRef<Line[]>([]);
  useEffect(() => {
    const timer = setInterval(() => {
      if (fresh.current.length === 0) return;
      const add = fresh.current.reverse();
      fresh.current = [];
      setLines((old) => [...add, ...old].slice(0, LIVE_LINES));
    }, 250);
    return () => clearInterval(timer);
  }, []);
  const open = useLive(vehicle, (kind, data) => {
    if (kind === 'ready') return;
    const text =
      kind === 'dropped'
        ? `${(data as { count: number }).count} events dropped: this browser fell behind`
        : `${time((data as LiveEvent).atUnixMs)} ${(data as LiveEvent).vehicleId} ${kind} ${describe(kind, data as LiveEvent)}`;
    fresh.current.push({ n: seq.current++, text, cls: kind });
    if (fresh.current.length > LIVE_LINES) fresh.current.shift();
  });
  return (
    <section class="card live">
      <h2>
        Live <small class={open ? 'ok' : 'error'}>{open ? 'connected' : 'reconnecting…'}</small>
      </h2>
      <ol>
        {lines.map((l) => (
          <li key={l.n} class={`live-${l.cls}`}>
            {l.text}
          </li>
        ))}
      </ol>
    </section>
  );
}

function Overview() {
  return (
    <div class="grid">
      <Cluster />
      <LocatorPanel />
      <Vehicles />
      <LiveLog />
    </div>
  );
}

function bitsOf(alarm: number): number[] {
  const bits: number[] = [];
  for (let b = 0; b < 32; b++) if (alarm & (1 << b)) bits.push(b);
  return bits;
}

function VehiclePage({ id }: { id: string }) {
  const [detail, setDetail] = useState<VehicleDetail | null>(null);
  const [track, setTrack] = useState<TrackPoint[]>([]);
  const [commands, setCommands] = useState<CommandEntry[]>([]);
  const [commandsNext, setCommandsNext] = useState('');
  const [commandsSource, setCommandsSource] = useState<'store' | 'live feed'>('store');
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');
  const [hours, setHours] = useState(3);
  const load = useCallback(async () => {
    try {
      const d = await api<VehicleDetail>(`/api/vehicles/${id}?hours=${hours}`);
      setDetail(d);
      setTrack(d.track);
      setCommands(d.commands);
      setCommandsNext(d.commandsNext);
      setCommandsSource(d.commandsSource);
      setError('');
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  }, [id, hours]);
  /** The command history again (after a command is sent): its newest page. */
  const loadCommands = useCallback(async () => {
    const r = await api<CommandsView>(`/api/vehicles/${id}/commands`);
    setCommands(r.commands);
    setCommandsNext(r.nextPageToken);
    setCommandsSource(r.source);
  }, [id]);
  /** The next older page, added below (COMMANDS_SHOWN at most). */
  const olderCommands = async (): Promise<void> => {
    const r = await api<CommandsView>(
      `/api/vehicles/${id}/commands?page=${encodeURIComponent(commandsNext)}`,
    );
    setCommands((old) =>
      [...old, ...r.commands.filter((c) => !old.some((o) => o.commandId === c.commandId))].slice(
        0,
        COMMANDS_SHOWN,
      ),
    );
    setCommandsNext(r.nextPageToken);
  };
  useEffect(() => void load(), [load]);
  useLive(id, (kind, data) => {
    const e = data as LiveEvent;
    if (kind === 'position' && e.position) {
      const p = e.position;
      setTrack((old) =>
        [
          ...old.filter((q) => q.t !== p.timeUnixMs),
          { t: p.timeUnixMs, lat: p.latitude, lon: p.longitude, speed: p.speedKmh },
        ]
          .sort((a, b) => a.t - b.t)
          .slice(-TRACK_POINTS),
      );
      setDetail((d) => (d ? { ...d, vehicle: { ...d.vehicle, lastPosition: p } } : d));
    } else if (kind === 'alarm' || kind === 'online' || kind === 'dropped') void load();
    else if (kind === 'command' && e.command) {
      const s = e.command;
      setCommands((old) =>
        old.some((c) => c.commandId === s.commandId)
          ? old.map((c) => (c.commandId === s.commandId ? { ...c, status: s } : c))
          : [
              { commandId: s.commandId, what: '', sentUnixMs: s.updatedUnixMs, status: s },
              ...old,
            ].slice(0, COMMANDS_SHOWN),
      );
    }
  });

  const confirm = async (bits: number): Promise<void> => {
    try {
      const r = await api<{ confirmed: { bit: number }[]; commandId: string; handler: string }>(
        `/api/vehicles/${id}/confirm`,
        { bits },
      );
      setNotice(
        `handled: ${r.confirmed.map((a) => ALARM_NAMES[a.bit] ?? `bit ${a.bit}`).join(', ') || 'none open'}${r.handler ? ` by ${r.handler}` : ''}${r.commandId ? ' (0x8203 sent to the terminal)' : ''}`,
      );
      await load();
    } catch (err) {
      setNotice(err instanceof Error ? err.message : String(err));
    }
  };

  if (error && !detail)
    return (
      <section class="card">
        <a href="#/">← all vehicles</a>
        <p class="error">{error}</p>
      </section>
    );
  if (!detail) return <section class="card">loading {id}…</section>;
  const v = detail.vehicle;
  const p = v.lastPosition;
  const span =
    track.length > 1
      ? `${track.length} points over ${duration(track[track.length - 1]!.t - track[0]!.t)}`
      : `${track.length} point(s)`;
  return (
    <div class="grid vehicle" data-vehicle={v.vehicleId}>
      <section class="card">
        <a href="#/">← all vehicles</a>
        <h2>
          {v.vehicleId}{' '}
          <small class={v.online ? 'ok' : 'error'}>
            {v.online ? `online on ${v.node}` : 'offline'}
          </small>
        </h2>
        <dl>
          <dt>plate</dt>
          <dd>{v.registration?.plate || '—'}</dd>
          <dt>terminal</dt>
          <dd>
            {v.registration
              ? `${v.registration.maker} ${v.registration.model} ${v.registration.terminalId}`
              : '—'}
            , JT/T 808-{v.edition || '?'}
          </dd>
          <dt>last seen</dt>
          <dd>{time(v.lastSeenUnixMs)}</dd>
          <dt>position</dt>
          <dd class="position">
            {p
              ? `${p.latitude.toFixed(6)}, ${p.longitude.toFixed(6)} · ${p.speedKmh} km/h · ${p.directionDeg}° · ${time(p.timeUnixMs)}`
              : 'none yet'}
          </dd>
        </dl>
      </section>
      <section class="card track-card">
        <h2>
          Track{' '}
          <small class="track-source" data-source={detail.trackSource}>
            last{' '}
            <select
              name="hours"
              value={hours}
              onChange={(e) => setHours(Number((e.target as HTMLSelectElement).value))}
            >
              {[1, 3, 6].map((h) => (
                <option value={h} key={h}>
                  {h} h
                </option>
              ))}
            </select>{' '}
            of reports ({detail.trackSource}): {span}
          </small>
        </h2>
        <TrackPlane points={track} />
        {track.length > 1 && (
          <p class="note">
            distance ≈ {distance(pathLength(track))}; green: first point, red: now.
          </p>
        )}
      </section>
      <section class="card alarms">
        <h2>Open alarms</h2>
        {v.openAlarms.length === 0 && <p class="none">none</p>}
        <ul>
          {v.openAlarms.map((a) => (
            <li class="alarm" data-bit={a.bit} key={a.bit}>
              {ALARM_NAMES[a.bit] ?? `bit ${a.bit}`} since {time(a.startUnixMs)}{' '}
              <button type="button" onClick={() => void confirm((1 << a.bit) >>> 0)}>
                Handled
              </button>
            </li>
          ))}
        </ul>
        {v.openAlarms.length > 1 && (
          <button type="button" onClick={() => void confirm(0)}>
            All handled
          </button>
        )}
        {notice && <p class="notice">{notice}</p>}
        {p && p.alarm !== 0 && (
          <p class="note">
            alarm flags in the last report:{' '}
            {bitsOf(p.alarm)
              .map((b) => ALARM_NAMES[b] ?? b)
              .join(', ')}
          </p>
        )}
      </section>
      <Commands
        id={id}
        commands={commands}
        source={commandsSource}
        more={commandsNext !== ''}
        onOlder={() => void olderCommands().catch(() => undefined)}
        onSent={(c) => {
          setCommands((old) =>
            [c, ...old.filter((x) => x.commandId !== c.commandId)].slice(0, COMMANDS_SHOWN),
          );
          // Then the history as the node's log has it (the sent command with its answer).
          void loadCommands().catch(() => undefined);
        }}
      />
      <LiveLog vehicle={id} />
    </div>
  );
}

function duration(ms: number): string {
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

function pathLength(track: TrackPoint[]): number {
  let m = 0;
  for (let i = 1; i < track.length; i++) {
    const a = track[i - 1]!;
    const b = track[i]!;
    const dy = (b.lat - a.lat) * 110_574;
    const dx = (b.lon - a.lon) * 111_320 * Math.cos((a.lat * Math.PI) / 180);
    m += Math.hypot(dx, dy);
  }
  return m;
}

function Commands({
  id,
  commands,
  source,
  more,
  onOlder,
  onSent,
}: {
  id: string;
  commands: CommandEntry[];
  source: 'store' | 'live feed';
  more: boolean;
  onOlder: () => void;
  onSent: (c: CommandEntry) => void;
}) {
  const [kind, setKind] = useState<'text' | 'location'>('text');
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const send = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const body = kind === 'text' ? { kind, text, flag: 8 } : { kind };
      onSent(await api<CommandEntry>(`/api/vehicles/${id}/commands`, body));
      if (kind === 'text') setText('');
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card commands">
      <h2>
        Commands{' '}
        <small class="commands-source" data-source={source}>
          {source === 'store'
            ? 'history from the node’s command log'
            : 'seen on the live feed (this node keeps no command log)'}
        </small>
      </h2>
      <form onSubmit={send}>
        <select
          name="kind"
          value={kind}
          onChange={(e) => setKind((e.target as HTMLSelectElement).value as 'text' | 'location')}
        >
          <option value="text">text message (0x8300)</option>
          <option value="location">location query (0x8201)</option>
        </select>
        {kind === 'text' && (
          <input
            name="text"
            placeholder="text to show / speak"
            maxLength={400}
            value={text}
            onInput={(e) => setText((e.target as HTMLInputElement).value)}
          />
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Sending…' : 'Send'}
        </button>
      </form>
      {error && <p class="error">{error}</p>}
      <table>
        <thead>
          <tr>
            <th>queued</th>
            <th>command</th>
            <th>kind</th>
            <th>state</th>
            <th>changed</th>
            <th>answer</th>
          </tr>
        </thead>
        <tbody>
          {commands.map((c) => (
            <tr
              class="command-row"
              data-command={c.commandId}
              data-state={c.status?.state ?? ''}
              data-kind={c.status?.kind ?? ''}
              key={c.commandId}
              title={`${c.commandId}${c.status?.attempts ? `, ${c.status.attempts} attempt(s)` : ''}`}
            >
              <td title={time(c.sentUnixMs)}>{time(c.sentUnixMs).slice(5)}</td>
              <td>{c.what || c.status?.kind || c.commandId.slice(0, 8)}</td>
              <td class="kind">
                {c.status?.kind
                  ? `${c.status.kind}${c.status.messageId ? ` 0x${c.status.messageId.toString(16).padStart(4, '0')}` : ''}`
                  : '—'}
              </td>
              <td class="state">{c.status?.state ?? '?'}</td>
              <td>{c.status?.updatedUnixMs ? time(c.status.updatedUnixMs).slice(11) : '—'}</td>
              <td class="answer">{answer(c)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {commands.length === 0 && <p class="none">no commands</p>}
      {more && commands.length < COMMANDS_SHOWN && (
        <button type="button" class="older" onClick={onOlder}>
          Older commands
        </button>
      )}
    </section>
  );
}

function answer(c: CommandEntry): string {
  const s = c.status;
  if (!s || s.state !== 'ANSWERED') return s?.detail ?? '';
  if (s.replyType === 'LocationQueryReply' && s.replyJson) {
    const r = JSON.parse(s.replyJson) as { location?: { latitude: number; longitude: number } };
    if (r.location) return `at ${r.location.latitude}, ${r.location.longitude}`;
  }
  return `${s.replyType}${s.result >= 0 ? ` result ${s.result}` : ''}`;
}

function App() {
  const [authed, setAuthed] = useState<boolean | null>(null);
  const [node, setNode] = useState('');
  const [operator, setOperator] = useState('');
  const hash = useHash();
  const check = useCallback(async () => {
    try {
      const session = await api<{ node: string; operator: string }>('/api/session');
      setNode(session.node);
      setOperator(session.operator);
      setAuthed(true);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) setAuthed(false);
      else throw err;
    }
  }, []);
  useEffect(() => void check(), [check]);
  if (authed === null) return <p>…</p>;
  if (!authed) return <Login onDone={() => void check()} />;
  const m = /^#\/vehicles\/(\d{1,20})$/.exec(hash);
  return (
    <>
      <header>
        <a href="#/" class="brand">
          fleetmesh
        </a>
        <span>dashboard of {node || 'a node'}</span>
        {operator && <span class="operator">operator {operator}</span>}
        <button
          type="button"
          onClick={() => void api('/api/logout', {}).then(() => setAuthed(false))}
        >
          Log out
        </button>
      </header>
      <main>{m ? <VehiclePage id={m[1] as string} key={m[1]} /> : <Overview />}</main>
    </>
  );
}

render(<App />, document.getElementById('app') as HTMLElement);
