// The page at /: static files from src/web, read once at startup and served from memory,
// so the page works offline (no CDN) and costs no disk reads per request.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { packageRoot } from '../package-root.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
};

/** The folder of the page's files: src/web in a clone and in the published package. */
export function webRoot(): string {
  const root = packageRoot();
  const dir = root === undefined ? undefined : join(root, 'src', 'web');
  if (dir === undefined || !existsSync(join(dir, 'index.html'))) throw new Error(`the web page's files are missing (looked for ${dir ?? 'src/web'}/index.html)`);
  return dir;
}

function readAssets(dir: string, prefix = ''): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      for (const [k, v] of readAssets(path, `${prefix}${name}/`)) out.set(k, v);
    } else if (TYPES[extname(name)] !== undefined) {
      out.set(`${prefix}${name}`, readFileSync(path));
    }
  }
  return out;
}

export function webRoutes(app: FastifyInstance): void {
  const assets = readAssets(webRoot());
  const send = (name: string) => ({
    type: TYPES[extname(name)] ?? 'application/octet-stream',
    body: assets.get(name),
  });
  app.get('/', { schema: { hide: true } }, async (_req, reply) => {
    const { type, body } = send('index.html');
    return reply.type(type).header('cache-control', 'no-cache').send(body);
  });
  app.get<{ Params: { '*': string } }>('/web/*', { schema: { hide: true } }, async (req, reply) => {
    const name = req.params['*'];
    const { type, body } = send(name);
    if (body === undefined) return reply.code(404).send({ statusCode: 404, error: 'not_found', message: `no file /web/${name}` });
    return reply.type(type).header('cache-control', 'no-cache').send(body);
  });
}
