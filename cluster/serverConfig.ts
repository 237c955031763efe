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
  const flag = (name: string): string | undefined => {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i] as string;
      if (a === name) return argv[i + 1];
      if (a.startsWith(`${name}=`)) return a.slice(name.length + 1);
    }
    return undefined;
  };
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

function nonEmpty(s: string | undefined): string | undefined {
  return s && s.trim() ? s.trim() : undefined;
}
