// The `fleetmesh` command: `start` runs the local system, `decode` reads JT/T 808 hex dumps.
import { runDecode } from './decode.js';
import { runStart } from './start.js';

const [command, ...args] = process.argv.slice(2);

const usage = `usage: fleetmesh <command> [options]
  start [--port 8808] [--grpc-port 9808] [--grpc-token T] [--host 0.0.0.0] [--sim N]
        [--interval-ms MS] [--ack durable|receive] [--data-dir DIR]
        [--mongodb-uri URI | --local-store postgresql|sqlite] [--etcd-endpoints URL,URL]
                                                        start the local system (Ctrl-C stops it)
  decode [--lenient] [--edition 2011|2013|2019] HEX…     decode JT/T 808 frames to JSON lines
                                                        (no HEX: one frame per line on stdin)
`;

async function main(): Promise<number> {
  switch (command) {
    case 'start':
      return runStart(args);
    case 'decode':
      return runDecode(args);
    case undefined:
    case '-h':
    case '--help':
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
    process.exitCode = 1;
  },
);
