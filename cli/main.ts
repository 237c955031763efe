// The `fleetmesh` command: `start` runs the local system, `decode` reads JT/T 808 hex dumps,
// `locator` runs a locator, `drain` empties a node of its terminals, `track` prints a track,
// `area` lists the vehicles in an area (now or during a past window).
import { decodeUsage, runDecode } from './decode.js';
import { drainOptions, drainUsage, runDrain } from './drain.js';
import { locatorUsage, runLocator } from './locator.js';
import { runStart, startUsage, UsageError } from './start.js';
import { areaUsage, runArea } from './area.js';
import { runTrack, trackUsage } from './track.js';

const [command, ...args] = process.argv.slice(2);

const usage = `usage: fleetmesh <command> [options]      (fleetmesh <command> --help: its options)
  start [options]       start the local system: etcd and the MongoDB-protocol server unless
                        named, the locator and --nodes nodes (Ctrl-C stops it); options:
${startUsage('    ')}  decode ${decodeUsage}
                        decode JT/T 808 frames to JSON lines (no HEX: one frame per line on stdin)
  locator [options]     the locator: sends each terminal to the least-loaded node (0x8105); options:
${locatorUsage('    ')}  drain ${drainUsage}
                        send a node's terminals to the other nodes (0x8105) until it holds none:
${drainOptions('    ')}  track ${trackUsage}
                        a vehicle's stored track from a node's HistoryService, as CSV or GeoJSON
  area ${areaUsage}
                        the vehicles in an area now, or during a past window with --from/--to,
                        from a node's HistoryService, as CSV or JSON
`;

async function main(): Promise<number> {
  switch (command) {
    case 'start':
      return runStart(args);
    case 'decode':
      return runDecode(args);
    case 'locator':
      return runLocator(args);
    case 'drain':
      return runDrain(args);
    case 'track':
      return runTrack(args);
    case 'area':
      return runArea(args);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(usage);
      return command ? 0 : 2;
    default:
      process.stderr.write(`fleetmesh: unknown command '${command}'\n${usage}`);
      return 2;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`fleetmesh: ${err instanceof Error ? err.message : String(err)}\n`);
    if (err instanceof UsageError) process.stderr.write(`see: fleetmesh ${command} --help\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
