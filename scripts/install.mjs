#!/usr/bin/env node
// npm's install hook: make sure libtorch is present (installing Debian's libtorch-dev
// when we are root on Debian/Ubuntu), then load a prebuilt addon or compile one.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { HELP, REFERENCE_BLAS_HINT, blasOf, findLibtorch } from './libtorch.mjs';

function fail(message) {
  process.stderr.write(`\ntorchlet: ${message}\n\n${HELP}\n\n`);
  process.exit(1);
}

function isDebianLike() {
  if (!existsSync('/etc/os-release')) return false;
  return /^(ID|ID_LIKE)=.*\b(debian|ubuntu)\b/m.test(readFileSync('/etc/os-release', 'utf8'));
}

function aptInstall() {
  process.stderr.write('torchlet: libtorch not found; installing Debian\'s libtorch-dev and OpenBLAS with apt-get (TORCHLET_NO_APT=1 skips this)\n');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', 'libtorch-dev', 'libopenblas0-openmp']]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (r.status !== 0) fail(`'apt-get ${args.join(' ')}' failed (exit ${r.status ?? r.signal})`);
  }
}

let found;
try {
  found = findLibtorch();
} catch (err) {
  fail(err.message);
}
if (!found) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (process.env.TORCHLET_NO_APT === '1') fail('libtorch not found, and TORCHLET_NO_APT=1 forbids installing it.');
  if (!isDebianLike()) fail('libtorch not found.');
  if (!isRoot) fail('libtorch not found, and apt-get needs root to install libtorch-dev.');
  aptInstall();
  found = findLibtorch();
  if (!found) fail('apt-get installed libtorch-dev, but its headers and libraries are still not where expected.');
}
process.stderr.write(`torchlet: using libtorch from ${found.source} (${found.libdir})\n`);
if (blasOf(found)?.reference) process.stderr.write(`torchlet: note: ${REFERENCE_BLAS_HINT}\n`);
try {
  // One compiler per core: each libtorch translation unit takes a minute to compile.
  const env = { ...process.env, JOBS: process.env.JOBS ?? 'max' };
  execFileSync(process.execPath, [createRequire(import.meta.url).resolve('node-gyp-build/bin.js')], { stdio: 'inherit', env });
} catch {
  fail('building the native addon failed; the compiler output is above.');
}
