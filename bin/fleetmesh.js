#!/usr/bin/env node
// Entry point for the `fleetmesh` command; the code lives in dist/ after `npm run build`.
import '../dist/cli/main.js';
