#!/usr/bin/env node
// npm 11's `npm ci` insists that every optional platform package a dependency names
// (rollup's @rollup/rollup-<platform> binaries) has an entry in package-lock.json. A
// registry that serves only this platform's binaries (as this project's build machines
// do) leaves the others out when the lock is written, and `npm ci` then refuses it.
// This adds the missing entries with their os/cpu/libc constraints, so npm skips them on
// other platforms exactly as it would with a full lock. Run after changing dependencies:
//   npm install && node scripts/complete-lock.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const LOCK = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(LOCK, 'utf8'));
const CPUS = { arm: 'arm', 'arm-eabi': 'arm', arm64: 'arm64', x64: 'x64', ia32: 'ia32', loong64: 'loong64', ppc64: 'ppc64', riscv64: 'riscv64', s390x: 's390x' };

/** @rollup/rollup-linux-arm64-musl -> { os: linux, cpu: arm64, libc: musl } */
function platformOf(name) {
  const m = /^@rollup\/rollup-([a-z0-9]+)-([a-z0-9]+)(?:-(gnueabihf|musleabihf|gnu|musl|msvc|eabi))?$/.exec(name);
  if (!m) throw new Error(`cannot tell the platform of ${name}`);
  const [, os, arch, abi] = m;
  const cpu = CPUS[abi === 'eabi' ? 'arm-eabi' : arch];
  if (!cpu) throw new Error(`unknown cpu in ${name}`);
  const libc = abi?.startsWith('gnu') ? 'glibc' : abi?.startsWith('musl') ? 'musl' : undefined;
  return { os, cpu, libc };
}

let added = 0;
for (const [path, pkg] of Object.entries(lock.packages)) {
  if (!path.endsWith('node_modules/rollup')) continue;
  for (const [dep, version] of Object.entries(pkg.optionalDependencies ?? {})) {
    const key = `${path.slice(0, -'rollup'.length)}${dep}`;
    if (lock.packages[key]) continue;
    const { os, cpu, libc } = platformOf(dep);
    lock.packages[key] = {
      version,
      cpu: [cpu],
      ...(pkg.dev && { dev: true }),
      license: 'MIT',
      ...(libc && { libc: [libc] }),
      optional: true,
      os: [os],
    };
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))));
writeFileSync(LOCK, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: added ${added} optional platform entries`);
