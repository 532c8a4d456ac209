import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DataError } from '../../src/data/errors.js';
import { FILE_NAMES, cacheDir, loadRawDataset, mirrorList, searchDirs } from '../../src/data/mnist.js';

const VENDORED = resolve(import.meta.dirname, '../../data/mnist');
const NAMES = Object.values(FILE_NAMES);

// Each mirror is a path prefix on one local server: /good serves the real files, the
// others fail in the ways real mirrors do.
type Mirror = 'good' | 'broken' | 'wrong' | 'truncated' | 'hang' | 'slow';
const requests: Record<Mirror, number> = { good: 0, broken: 0, wrong: 0, truncated: 0, hang: 0, slow: 0 };
const files = new Map<string, Buffer>();
let server: Server;
let base: string;
let tmp: string;
// The 'slow' mirror sends half a body, then waits for the test to send the rest.
let slowHalfSent: () => void = () => undefined;
let slowRest: () => void = () => undefined;

const mirror = (name: Mirror): string => `${base}/${name}`;
const totalRequests = (): number => Object.values(requests).reduce((a, b) => a + b, 0);

beforeAll(async () => {
  for (const name of NAMES) files.set(name, await readFile(join(VENDORED, name)));
  server = createServer((req, res) => {
    const [, kind, name = ''] = (req.url ?? '').split('/') as [string, Mirror, string | undefined];
    requests[kind] += 1;
    const body = files.get(name);
    if (!body || kind === 'broken') {
      res.writeHead(body ? 500 : 404).end();
    } else if (kind === 'wrong') {
      res.end(gzipSync(Buffer.from('not mnist')));
    } else if (kind === 'truncated') {
      res.end(body.subarray(0, body.length >> 1));
    } else if (kind === 'slow') {
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, body.length >> 1), () => slowHalfSent());
      slowRest = () => res.end(body.subarray(body.length >> 1));
    } else if (kind !== 'hang') {
      res.end(body);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  tmp = await mkdtemp(join(tmpdir(), 'torchlet-dl-'));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(tmp, { recursive: true, force: true });
});

async function freshDir(name: string): Promise<string> {
  return join(await mkdtemp(join(tmp, `${name}-`)), 'cache', 'mnist');
}

/** A download folder already holding every file except `missing`. */
async function withAllBut(missing: string, name: string): Promise<string> {
  const dir = await freshDir(name);
  await mkdir(dir, { recursive: true });
  for (const file of NAMES.filter((n) => n !== missing)) await copyFile(join(VENDORED, file), join(dir, file));
  return dir;
}

async function listing(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [])).sort();
}

describe('downloading', () => {
  it('falls back to the next mirror, then serves later loads from the cache', async () => {
    const dir = await freshDir('fallback');
    const before = { ...requests };
    const raw = await loadRawDataset({ dataDir: dir, mirrors: [mirror('broken'), mirror('good')] });
    expect(raw.dir).toBe(dir);
    expect(raw.train.count).toBe(60000);
    expect(requests.broken - before.broken).toBe(4);
    expect(requests.good - before.good).toBe(4);
    expect(await listing(dir)).toEqual([...NAMES].sort());
    for (const name of NAMES) expect((await readFile(join(dir, name))).equals(files.get(name) ?? Buffer.alloc(0))).toBe(true);

    const total = totalRequests();
    const again = await loadRawDataset({ dataDir: dir, mirrors: [mirror('good')] });
    expect(totalRequests()).toBe(total);
    expect(again.test.count).toBe(10000);
  });

  it('rejects bad bodies without leaving anything under the final name', async () => {
    const dir = await freshDir('reject');
    const mirrors = [mirror('wrong'), mirror('truncated'), mirror('broken')];
    const err = await loadRawDataset({ dataDir: dir, mirrors }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataError);
    const { code, message, file } = err as DataError;
    expect(code).toBe('DOWNLOAD_FAILED');
    expect(file).toBe(join(dir, FILE_NAMES.trainImages));
    expect(message).toContain(`${mirror('wrong')}/${FILE_NAMES.trainImages}: `);
    expect(message).toMatch(/md5 of the decompressed data is [0-9a-f]{32}, expected 6bbc9ace898e44ae57da46a324031adb/);
    expect(message).toContain('truncated gzip stream');
    expect(message).toContain('HTTP 500');
    expect(message).toContain('--data-dir or TORCHLET_DATA');
    expect(await listing(dir)).toEqual([]);
  });

  it('gives up on a mirror that does not answer in time', async () => {
    const dir = await withAllBut(FILE_NAMES.testLabels, 'timeout');
    const before = { ...requests };
    await loadRawDataset({ dataDir: dir, mirrors: [mirror('hang'), mirror('good')], timeoutMs: 500 });
    expect(requests.hang - before.hang).toBe(1);
    expect(requests.good - before.good).toBe(1);
    expect(await listing(dir)).toEqual([...NAMES].sort());
  });

  it('fetches only missing files and never shows a partial one under the final name', async () => {
    const dir = await withAllBut(FILE_NAMES.testLabels, 'atomic');
    const before = requests.slow;
    const halfSent = new Promise<void>((r) => (slowHalfSent = r));
    const loading = loadRawDataset({ dataDir: dir, mirrors: [mirror('slow')] });
    await halfSent;
    expect(await listing(dir)).not.toContain(FILE_NAMES.testLabels);
    slowRest();
    expect((await loading).test.count).toBe(10000);
    expect(requests.slow - before).toBe(1);
    // Only the four final names remain: the temporary file was renamed away.
    expect(await listing(dir)).toEqual([...NAMES].sort());
  });
});

describe('where data is looked for', () => {
  it('uses the mirrors option, else TORCHLET_MIRRORS, else the defaults', () => {
    expect(mirrorList('mnist', ['http://a/x'], { TORCHLET_MIRRORS: 'http://b/' })).toEqual(['http://a/x/']);
    expect(mirrorList('mnist', undefined, { TORCHLET_MIRRORS: ' http://b/ ,http://c' })).toEqual(['http://b/', 'http://c/']);
    expect(mirrorList('mnist', undefined, {})[0]).toBe('https://ossci-datasets.s3.amazonaws.com/mnist/');
  });

  it('caches under XDG_CACHE_HOME', () => {
    expect(cacheDir('fashion-mnist', { XDG_CACHE_HOME: '/x/cache' })).toBe('/x/cache/torchlet/fashion-mnist');
    expect(cacheDir('mnist', { XDG_CACHE_HOME: 'relative' })).toMatch(/\.cache\/torchlet\/mnist$/);
    expect(searchDirs('fashion-mnist', undefined, { XDG_CACHE_HOME: '/x/cache' })).toEqual([
      '/usr/share/datasets/fashion-mnist',
      '/x/cache/torchlet/fashion-mnist',
    ]);
  });

  it('dataDir wins, then TORCHLET_DATA (its <dataset> subfolder if present)', async () => {
    const root = await mkdtemp(join(tmp, 'env-'));
    await mkdir(join(root, 'fashion-mnist'));
    const env = { TORCHLET_DATA: root };
    expect(searchDirs('mnist', '/explicit', env)).toEqual(['/explicit']);
    expect(searchDirs('mnist', undefined, env)).toEqual([root]);
    expect(searchDirs('fashion-mnist', undefined, env)).toEqual([join(root, 'fashion-mnist')]);
  });
});
