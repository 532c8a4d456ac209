// Debian's /usr/bin/python3 with python3-torch, as the PyTorch peer of interop tests,
// and the real MNIST test images they feed both sides.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const PYTHON = '/usr/bin/python3';

export function pythonHas(module: string): boolean {
  if (!existsSync(PYTHON)) return false;
  return spawnSync(PYTHON, ['-c', `import ${module}`], { encoding: 'utf8', timeout: 120_000 }).status === 0;
}

/** Runs a Python file or `-c` code with python/ and tests/helpers/ on sys.path; JSON in on stdin, JSON out. */
export function runPythonJson<T>(args: string[], request: unknown, timeoutMs = 300_000): T {
  const r = spawnSync(PYTHON, args, {
    cwd: ROOT,
    encoding: 'utf8',
    input: JSON.stringify(request),
    timeout: timeoutMs,
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, PYTHONPATH: [join(ROOT, 'python'), join(ROOT, 'tests', 'helpers')].join(':'), PYTHONDONTWRITEBYTECODE: '1', OMP_NUM_THREADS: '1' },
  });
  if (r.status !== 0) throw new Error(`${PYTHON} ${args.join(' ')} exited with ${r.status ?? r.signal}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** A folder holding the MNIST test set: TORCHLET_DATA, data/mnist, ../shared/datasets/mnist or the download cache. */
export const mnistDir = [
  ...(process.env.TORCHLET_DATA ? [join(process.env.TORCHLET_DATA, 'mnist'), process.env.TORCHLET_DATA] : []),
  join(ROOT, 'data', 'mnist'),
  join(ROOT, '..', 'shared', 'datasets', 'mnist'),
  join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'torchlet', 'mnist'),
].find((d) => existsSync(join(d, 't10k-images-idx3-ubyte.gz')) && existsSync(join(d, 't10k-labels-idx1-ubyte.gz')));

/** The first `count` MNIST test images (28x28 bytes each) and labels. */
export function mnistTest(count: number, skip = 0): { pixels: Uint8Array; labels: Uint8Array } {
  if (mnistDir === undefined) throw new Error('the MNIST test set was not found');
  const images = gunzipSync(readFileSync(join(mnistDir, 't10k-images-idx3-ubyte.gz')));
  const labels = gunzipSync(readFileSync(join(mnistDir, 't10k-labels-idx1-ubyte.gz')));
  return {
    pixels: Uint8Array.from(images.subarray(16 + skip * 784, 16 + (skip + count) * 784)),
    labels: Uint8Array.from(labels.subarray(8 + skip, 8 + skip + count)),
  };
}
