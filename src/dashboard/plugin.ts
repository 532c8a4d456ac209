// The dashboard: a runs table, a run page with live curves, and a compare view, as static
// pages over the JSON API of src/jobs/routes.ts. Vega, Vega-Lite and vega-embed come from
// node_modules, read once at startup: no CDN, so the dashboard works offline.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
// `hide` in a route schema keeps it out of @fastify/swagger's OpenAPI document.
import type {} from '@fastify/swagger';
import { packageRoot } from '../package-root.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

const VENDOR: Record<string, [pkg: string, file: string]> = {
  'vega.min.js': ['vega', 'build/vega.min.js'],
  'vega-lite.min.js': ['vega-lite', 'build/vega-lite.min.js'],
  'vega-embed.min.js': ['vega-embed', 'build/vega-embed.min.js'],
};

function assetsDir(): string {
  const root = packageRoot();
  const dir = root === undefined ? undefined : join(root, 'src', 'dashboard', 'assets');
  if (dir === undefined || !existsSync(join(dir, 'index.html'))) throw new Error(`the dashboard's files are missing (looked for ${dir ?? 'src/dashboard/assets'}/index.html)`);
  return dir;
}

function vendorFile(pkg: string, file: string): Buffer {
  const require = createRequire(import.meta.url);
  // Each package's main file sits in its build/ folder; its package.json may not be exported.
  const main = require.resolve(pkg);
  let dir = dirname(main);
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return readFileSync(join(dir, file));
}

export const dashboardRoutes: FastifyPluginAsync = async (app) => {
  const dir = assetsDir();
  const assets = new Map<string, Buffer>();
  for (const name of readdirSync(dir)) if (TYPES[extname(name)] !== undefined) assets.set(name, readFileSync(join(dir, name)));
  for (const [name, [pkg, file]] of Object.entries(VENDOR)) assets.set(name, vendorFile(pkg, file));

  const page = (name: string) => async (_req: unknown, reply: FastifyReply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(assets.get(name));
  app.get('/dashboard', { schema: { hide: true } }, page('index.html'));
  app.get('/dashboard/runs/:id', { schema: { hide: true } }, page('run.html'));
  app.get('/dashboard/compare', { schema: { hide: true } }, page('compare.html'));
  app.get<{ Params: { file: string } }>('/dashboard/assets/:file', { schema: { hide: true } }, async (req, reply) => {
    const body = assets.get(req.params.file);
    if (body === undefined || extname(req.params.file) === '.html') return reply.code(404).send({ statusCode: 404, error: 'not_found', message: `no file /dashboard/assets/${req.params.file}` });
    // The vendored libraries change only with an upgrade; the dashboard's own files with every edit.
    const cache = req.params.file in VENDOR ? 'public, max-age=86400' : 'no-cache';
    return reply.type(TYPES[extname(req.params.file)] ?? 'application/octet-stream').header('cache-control', cache).send(body);
  });
};
