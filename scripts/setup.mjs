#!/usr/bin/env node
// Brings a fresh clone to a runnable state, and does nothing that is already done:
//   1. npm dependencies (npm ci when node_modules is missing or older than package-lock.json);
//   2. etcd from Debian's etcd-server package, unless ETCD_ENDPOINTS points at servers elsewhere;
//   3. PostgreSQL from Debian's postgresql-15 (the local store's backend), unless MONGODB_URI
//      names a MongoDB elsewhere or FLEETMESH_LOCAL_STORE=sqlite;
//   4. our embedded FerretDB (deps/ferretdb) built with `go build` from a vendored copy with our
//      patches applied, only when its sources or patches changed, unless MONGODB_URI points at a
//      MongoDB elsewhere;
//   5. the TypeScript build (incremental);
//   6. the dashboard's front-end bundle (dashboard/build.mjs), only when its sources changed;
//   7. with --browser-tests (npm test passes it), Debian's chromium for the dashboard's browser
//      tests, when /usr/bin/chromium is missing (as root, like etcd).
// Plain JavaScript on purpose: it runs before anything is compiled.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildDashboard } from '../dashboard/build.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const stateDir = join(root, '.fleetmesh');
const started = Date.now();

function step(name, fn) {
  const t0 = Date.now();
  const did = fn();
  const ms = Date.now() - t0;
  if (did) console.error(`setup: ${name}: ${did} (${(ms / 1000).toFixed(1)} s)`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
}

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function npmDependencies() {
  const lock = join(root, 'package-lock.json');
  const marker = join(root, 'node_modules', '.package-lock.json');
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return null;
  run('npm', ['ci', '--no-audit', '--no-fund']);
  return 'installed npm dependencies';
}

let aptUpdated = false;
function aptInstall(what, pkg) {
  const cmd = `${aptUpdated ? '' : 'apt-get update && '}apt-get install -y --no-install-recommends ${pkg}`;
  if (process.getuid?.() !== 0) {
    throw new Error(`${what} is missing and we are not root; run: sudo sh -c '${cmd}'`);
  }
  run('sh', ['-c', cmd], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  aptUpdated = true;
  return `installed ${pkg}`;
}

function etcd() {
  if (process.env.ETCD_ENDPOINTS) return null;
  if (onPath('etcd')) return null;
  return aptInstall('etcd', 'etcd-server');
}

function postgresql() {
  if (process.env.MONGODB_URI || process.env.FLEETMESH_LOCAL_STORE === 'sqlite') return null;
  const base = '/usr/lib/postgresql';
  const installed =
    existsSync(base) && readdirSync(base).some((v) => existsSync(join(base, v, 'bin', 'postgres')));
  if (installed) return null;
  // The package's own cluster is not used: fleetmesh runs initdb in a directory of its own.
  return aptInstall('PostgreSQL', 'postgresql-15');
}

function ferretdb() {
  if (process.env.MONGODB_URI) return null;
  const src = join(root, 'deps', 'ferretdb');
  const out = join(stateDir, 'bin', 'ferretdb-embedded');
  const stamp = `${out}.sha256`;
  const patchDir = join(src, 'patches');
  const patches = readdirSync(patchDir)
    .filter((f) => f.endsWith('.patch'))
    .sort();
  const hash = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(readFileSync(join(src, f)));
  for (const f of patches) hash.update(f).update(readFileSync(join(patchDir, f)));
  const digest = hash.digest('hex');
  if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) return null;
  if (!onPath('go')) throw new Error('Go is needed to build deps/ferretdb (or set MONGODB_URI)');
  if (!onPath('patch'))
    throw new Error('patch is needed to build deps/ferretdb (apt-get install patch)');
  // Build from a vendored copy so our patches to FerretDB (deps/ferretdb/patches) apply to it
  // and never to the shared Go module cache.
  const build = join(stateDir, 'build', 'ferretdb');
  rmSync(build, { recursive: true, force: true });
  mkdirSync(build, { recursive: true });
  for (const f of ['go.mod', 'go.sum', 'main.go']) {
    writeFileSync(join(build, f), readFileSync(join(src, f)));
  }
  run('go', ['mod', 'vendor'], { cwd: build });
  const ferretSrc = join(build, 'vendor', 'github.com', 'FerretDB', 'FerretDB');
  for (const f of patches) {
    run('patch', ['-p1', '--quiet', '--forward', '-d', ferretSrc, '-i', join(patchDir, f)]);
  }
  mkdirSync(dirname(out), { recursive: true });
  run('go', ['build', '-mod=vendor', '-trimpath', '-o', out, '.'], { cwd: build });
  rmSync(build, { recursive: true, force: true });
  writeFileSync(stamp, digest);
  return `built deps/ferretdb with ${patches.length} patch(es)`;
}

function typescript() {
  execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(root, 'tsconfig.json')], {
    stdio: 'inherit',
    cwd: root,
  });
  // tsc never deletes the output of a source that was removed: a stale test would still run.
  const stale = [];
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) {
        const src = join(root, relative(join(root, 'dist'), p)).replace(/\.js$/, '.ts');
        if (!existsSync(src)) stale.push(p);
      }
    }
  };
  if (existsSync(join(root, 'dist'))) walk(join(root, 'dist'));
  for (const p of stale) {
    rmSync(p, { force: true });
    rmSync(`${p}.map`, { force: true });
  }
  return stale.length ? `removed ${stale.length} stale compiled file(s)` : null;
}

function chromium() {
  // Only the browser tests need it; `npm start` does not.
  if (!process.argv.includes('--browser-tests')) return null;
  if (existsSync('/usr/bin/chromium')) return null;
  return aptInstall('chromium (for the browser tests)', 'chromium');
}

try {
  step('npm', npmDependencies);
  step('etcd', etcd);
  step('postgresql', postgresql);
  step('ferretdb', ferretdb);
  step('typescript', typescript);
  step('dashboard', () => buildDashboard(root));
  step('chromium', chromium);
  const s = ((Date.now() - started) / 1000).toFixed(1);
  console.error(`setup: ready in ${s} s`);
} catch (err) {
  console.error(`setup failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
