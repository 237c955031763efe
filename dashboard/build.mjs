// Builds the dashboard's front-end (dashboard/web) into .fleetmesh/dashboard: type-checks it
// (its own tsconfig: DOM, Preact's JSX), bundles it with esbuild (Preact, uPlot and the CSS
// inside, so nothing is fetched from a CDN at run time) and copies index.html. Not in dist/:
// setup's sweep of compiled files without a source would delete the bundle. Does nothing when
// the sources and the lock file are as at the last build. Plain JavaScript: setup runs it
// before anything is compiled. `node dashboard/build.mjs` runs it alone.
/* global process, console */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Builds when needed; returns what it did, or null when the bundle was up to date. */
export function buildDashboard(root) {
  const web = join(root, 'dashboard', 'web');
  const out = join(root, '.fleetmesh', 'dashboard');
  const stamp = join(out, '.sha256');
  const hash = createHash('sha256');
  for (const f of readdirSync(web).sort()) hash.update(f).update(readFileSync(join(web, f)));
  hash.update(readFileSync(join(root, 'package-lock.json')));
  const digest = hash.digest('hex');
  const built = ['app.js', 'app.css', 'index.html'].every((f) => existsSync(join(out, f)));
  if (built && existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) return null;
  execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(web, 'tsconfig.json')], {
    stdio: 'inherit',
    cwd: root,
  });
  // Loaded only now: setup imports this file before npm ci has installed esbuild.
  const { buildSync } = createRequire(import.meta.url)('esbuild');
  mkdirSync(out, { recursive: true });
  buildSync({
    entryPoints: { app: join(web, 'main.tsx') },
    outdir: out,
    bundle: true,
    format: 'esm',
    target: 'es2022',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    sourcemap: true,
    logLevel: 'warning',
  });
  copyFileSync(join(web, 'index.html'), join(out, 'index.html'));
  writeFileSync(stamp, digest);
  return 'bundled dashboard/web into .fleetmesh/dashboard';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = dirname(dirname(fileURLToPath(import.meta.url)));
  try {
    console.error(`dashboard: ${buildDashboard(root) ?? 'up to date'}`);
  } catch (err) {
    console.error(`dashboard build failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}
