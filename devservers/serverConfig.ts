// Where the cluster's MongoDB and etcd are. When the operator names them (environment or CLI
// flags) we use those and start nothing; otherwise the local servers are started for us.

export interface ExternalServers {
  mongodbUri?: string;
  etcdEndpoints?: string[];
}

/** Reads `--mongodb-uri` / `--etcd-endpoints` flags, falling back to MONGODB_URI / ETCD_ENDPOINTS. */
export function externalServers(
  argv: readonly string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
): ExternalServers {
  const flag = (name: string): string | undefined => flagValue(argv, name);
  const mongodbUri = flag('--mongodb-uri') ?? nonEmpty(env.MONGODB_URI);
  const etcd = flag('--etcd-endpoints') ?? nonEmpty(env.ETCD_ENDPOINTS);
  const out: ExternalServers = {};
  if (mongodbUri) out.mongodbUri = mongodbUri;
  if (etcd) {
    out.etcdEndpoints = etcd
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  }
  return out;
}

/** The local store's backends: FerretDB on PostgreSQL (default) or on SQLite. */
export const STORE_BACKENDS = ['postgresql', 'sqlite'] as const;
export type StoreBackend = (typeof STORE_BACKENDS)[number];
export const DEFAULT_STORE_BACKEND: StoreBackend = 'postgresql';

/** Reads `--local-store postgresql|sqlite`, falling back to FLEETMESH_LOCAL_STORE. */
export function localStoreBackend(
  argv: readonly string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
): StoreBackend {
  const v = flagValue(argv, '--local-store') ?? nonEmpty(env.FLEETMESH_LOCAL_STORE);
  if (v === undefined) return DEFAULT_STORE_BACKEND;
  const found = STORE_BACKENDS.find((b) => b === v);
  if (!found) {
    throw new Error(`unknown local store ${JSON.stringify(v)}: ${STORE_BACKENDS.join(' or ')}`);
  }
  return found;
}

function flagValue(argv: readonly string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === name) return argv[i + 1];
    if (a.startsWith(`${name}=`)) return a.slice(name.length + 1);
  }
  return undefined;
}

function nonEmpty(s: string | undefined): string | undefined {
  return s && s.trim() ? s.trim() : undefined;
}
