#!/usr/bin/env node
// Locates libtorch for binding.gyp, in the order tch-rs uses:
//   1. LIBTORCH=/path            an unpacked official archive (CPU or CUDA)
//   2. LIBTORCH_USE_PYTORCH=1    the libtorch inside an installed PyTorch
//   3. the system's              Debian/Ubuntu libtorch-dev
// Run as `node scripts/libtorch.mjs <include|libdir|ldflags|describe>`; binding.gyp
// expands its output, so one search serves every build setting.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const SYSTEM_INCLUDE = '/usr/include';
const SYSTEM_LIBDIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];

export class LibtorchNotFound extends Error {}

function hasLib(dir, name) {
  return existsSync(dir) && readdirSync(dir).some((f) => f === `lib${name}.so` || f.startsWith(`lib${name}.so.`) || f === `lib${name}.dylib`);
}

function fromPrefix(prefix, source) {
  const include = join(prefix, 'include');
  const libdir = join(prefix, 'lib');
  if (!existsSync(join(include, 'torch', 'csrc', 'api', 'include', 'torch', 'torch.h')) || !hasLib(libdir, 'torch')) {
    throw new LibtorchNotFound(`${source} points at ${prefix}, which has no include/torch/csrc/api/include/torch/torch.h and lib/libtorch.so`);
  }
  return { source, includes: [include, join(include, 'torch', 'csrc', 'api', 'include')], libdir };
}

function fromPytorch() {
  const python = process.env.PYTHON ?? 'python3';
  let prefix;
  try {
    prefix = execFileSync(python, ['-c', 'import torch.utils, os; print(os.path.dirname(os.path.dirname(torch.utils.cmake_prefix_path)))'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (err) {
    throw new LibtorchNotFound(`LIBTORCH_USE_PYTORCH=1 but '${python} -c "import torch"' failed: ${err.message.split('\n')[0]}`);
  }
  return fromPrefix(prefix, 'LIBTORCH_USE_PYTORCH');
}

function fromSystem() {
  const header = join(SYSTEM_INCLUDE, 'torch', 'csrc', 'api', 'include', 'torch', 'torch.h');
  const libdir = SYSTEM_LIBDIRS.find((d) => hasLib(d, 'torch'));
  if (!existsSync(header) || !libdir) return undefined;
  return { source: 'system', includes: [SYSTEM_INCLUDE, join(SYSTEM_INCLUDE, 'torch', 'csrc', 'api', 'include')], libdir };
}

export const HELP = `torchlet needs libtorch (the C++ distribution of PyTorch). Give it one of:
  LIBTORCH=/path/to/libtorch     an unpacked archive from pytorch.org (CPU or CUDA)
  LIBTORCH_USE_PYTORCH=1         use the libtorch inside an installed PyTorch (PYTHON picks the interpreter)
  apt-get install libtorch-dev   Debian/Ubuntu's package (npm install does this itself when run as root,
                                 unless TORCHLET_NO_APT=1)`;

/** Returns where libtorch is, or undefined when no option finds one. Throws when an explicit option is broken. */
export function findLibtorch(env = process.env) {
  if (env.LIBTORCH) return fromPrefix(env.LIBTORCH, 'LIBTORCH');
  if (env.LIBTORCH_USE_PYTORCH === '1') return fromPytorch();
  return fromSystem();
}

export function ldflags(found) {
  const flags = [`-L${found.libdir}`, `-Wl,-rpath,${found.libdir}`];
  // torch_cuda registers its kernels from static initialisers and is never referenced
  // by symbol, so --as-needed would silently drop it and leave a CPU-only build.
  if (hasLib(found.libdir, 'torch_cuda')) flags.push('-Wl,--no-as-needed', '-ltorch_cuda', '-Wl,--as-needed');
  flags.push('-ltorch', '-ltorch_cpu', '-lc10');
  // ATen's parallel_for is inlined into the addon (compiled with -fopenmp), so the addon
  // must link the same OpenMP runtime as libtorch: the one bundled in official archives,
  // else the system's libgomp.
  const gomp = readdirSync(found.libdir).find((f) => /^libgomp-.*\.so/.test(f));
  flags.push(gomp ? join(found.libdir, gomp) : '-lgomp');
  return flags;
}

/**
 * The BLAS that libtorch resolves at run time, when it links one dynamically (Debian's does,
 * through the libblas.so.3 alternative; pytorch.org's archives carry MKL inside). Debian's
 * default alternative is the reference BLAS, which runs libtorch's fully connected layers
 * and attention matrix products some 40 times slower than OpenBLAS.
 */
export function blasOf(found) {
  const lib = readdirSync(found.libdir).find((f) => /^libtorch_cpu\.so/.test(f));
  if (!lib) return undefined;
  let out;
  try {
    out = execFileSync('ldd', [join(found.libdir, lib)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
  const linked = /^\s*libblas\.so\.\d+ => (\S+)/m.exec(out)?.[1];
  if (!linked) return undefined;
  const path = realpathSync(linked);
  return { path, reference: isReferenceBlas(path) };
}

/** Debian installs the reference BLAS as <multiarch>/blas/libblas.so.3; OpenBLAS lives in openblas-<variant>/. */
export function isReferenceBlas(path) {
  return /\/blas\/libblas\.so[.\d]*$/.test(path);
}

export const REFERENCE_BLAS_HINT =
  "libtorch is using Debian's reference BLAS, which makes fully connected layers and attention about 40x slower; " +
  'as root: apt-get install libopenblas0-openmp (it takes over the libblas.so.3 alternative)';

function main(what) {
  const found = findLibtorch();
  if (!found) {
    process.stderr.write(`${HELP}\n`);
    process.exit(1);
  }
  switch (what) {
    case 'include':
      console.log(found.includes.join(' '));
      break;
    case 'libdir':
      console.log(found.libdir);
      break;
    case 'ldflags':
      console.log(ldflags(found).join(' '));
      break;
    case 'describe':
    {
      console.log(`libtorch from ${found.source}: ${found.libdir}${hasLib(found.libdir, 'torch_cuda') ? ' (with CUDA)' : ''}`);
      const blas = blasOf(found);
      if (blas) console.log(`BLAS: ${blas.path}${blas.reference ? ` (the reference BLAS: ${REFERENCE_BLAS_HINT})` : ''}`);
      break;
    }
    default:
      process.stderr.write('usage: libtorch.mjs <include|libdir|ldflags|describe>\n');
      process.exit(2);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    main(process.argv[2]);
  } catch (err) {
    process.stderr.write(`${err.message}\n\n${HELP}\n`);
    process.exit(1);
  }
}
