// Shared by the server tests: real MNIST digits as PNGs, a dark-on-light photo-like
// version of them, and a server over the released weights.
import type { ChildProcess } from 'node:child_process';
import sharp from 'sharp';
import { loadRawDataset, type RawSplit } from '../../src/data/mnist.js';
import type { ModelName } from '../../src/models.js';
import { encodePng } from '../../src/image/index.js';
import { buildServer, startServer, type ServeOptions } from '../../src/serve/server.js';
import { loadServedModel } from '../../src/serve/models.js';
import { ModelRegistry } from '../../src/serve/registry.js';
import type { BatchingOptions } from '../../src/serve/batcher.js';
import { finished, spawnCli, type CliResult } from '../helpers/spawn.js';

export interface Digit {
  index: number;
  label: number;
  pixels: Uint8Array;
}

let test: RawSplit | undefined;

/** MNIST test images by index. */
export async function mnistDigits(indices: number[]): Promise<Digit[]> {
  test ??= (await loadRawDataset()).test;
  const t = test;
  return indices.map((index) => ({ index, label: t.labels[index]!, pixels: t.images.slice(index * 784, (index + 1) * 784) }));
}

/** The first test image of each digit 0-9. */
export async function oneOfEach(): Promise<Digit[]> {
  test ??= (await loadRawDataset()).test;
  const found = new Map<number, number>();
  for (let i = 0; found.size < 10; i++) if (!found.has(test.labels[i]!)) found.set(test.labels[i]!, i);
  return mnistDigits([...found.entries()].sort((a, b) => a[0] - b[0]).map(([, i]) => i));
}

export const mnistPng = (d: Digit): Buffer => encodePng(d.pixels, 28, 28);

/** The digit as a scan would show it: dark ink on light paper, 280x280, off-centre, RGB. */
export async function darkOnLightPng(d: Digit, size = 280): Promise<Buffer> {
  const inverted = Buffer.from(d.pixels.map((v) => 255 - v));
  const digit = await sharp(inverted, { raw: { width: 28, height: 28, channels: 1 } }).resize(Math.round(size * 0.6), Math.round(size * 0.6), { kernel: 'cubic' }).png().toBuffer();
  return sharp({ create: { width: size, height: size, channels: 3, background: { r: 250, g: 248, b: 240 } } })
    .composite([{ input: digit, left: Math.round(size * 0.3), top: Math.round(size * 0.15), blend: 'darken' }])
    .png()
    .toBuffer();
}

/** A server over the released super_light (default) and light weights. */
export async function releasedServer(options: Partial<ServeOptions> = {}, batching: Partial<BatchingOptions> = {}) {
  const registry = new ModelRegistry(batching);
  registry.add(loadServedModel('super_light'));
  registry.add(loadServedModel('light'));
  const app = await buildServer({ registry, rateLimit: false, ...options });
  return {
    app,
    registry,
    close: async (): Promise<void> => {
      await app.close();
      await registry.close();
    },
  };
}

/** The released models served on a loopback port, for tests that need a real socket (a browser). */
export async function listeningServer(names: ModelName[] = ['super_light', 'light']): Promise<{ url: string; close: () => Promise<void> }> {
  const registry = new ModelRegistry();
  for (const name of names) registry.add(loadServedModel(name));
  const server = await startServer({ registry, port: 0, rateLimit: false });
  return {
    url: server.url,
    close: async (): Promise<void> => {
      await server.app.close();
      await registry.close();
    },
  };
}

/** A multipart/form-data body built by hand, so that tests control every byte. */
export function multipart(parts: { name: string; filename?: string; type?: string; data: Buffer | string }[]): { body: Buffer; contentType: string } {
  const boundary = `----torchlet${Math.random().toString(16).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition = `form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}`;
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${p.type ? `Content-Type: ${p.type}\r\n` : ''}\r\n`));
    chunks.push(Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** `torchlet serve` in a child process on a free port; resolves once it is listening. */
export async function spawnServer(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ url: string; child: ChildProcess; result: Promise<CliResult> }> {
  const child = spawnCli(['serve', '--port', '0', '--log-level', 'error', ...args], env);
  const result = finished(child);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on('exit', () => reject(new Error(`torchlet serve exited before listening: ${out}`)));
  });
  return { url, child, result };
}

/** The server's resident memory in MiB, from its own /metrics. */
export async function serverRss(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^torchlet_process_resident_memory_bytes (\d+)/m.exec(text);
  if (!m) throw new Error('no torchlet_process_resident_memory_bytes in /metrics');
  return Number(m[1]) / 2 ** 20;
}
