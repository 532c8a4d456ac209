// The page's "in this browser" mode, server side. The browser needs three things, all
// served by torchlet itself (no CDN, so the page works offline):
//   - GET /models/{name}/model.onnx: the served model exported to ONNX, once per model;
//   - GET /web/ort/*: onnxruntime-web's WebAssembly runtime, from node_modules;
//   - GET /web/inbrowser.js: src/web/inbrowser.ts bundled by esbuild with the server's own
//     preprocessing (src/image/mnistify.ts: the same code, not a copy) and onnxruntime-web's
//     WebAssembly-only build. Bundled on first request and kept in memory.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';
import type { ServedModel } from './registry.js';
import type { ServeContext } from './server.js';
import { webRoot } from './web.js';

/** The files onnxruntime-web's WebAssembly build loads, relative to ort.env.wasm.wasmPaths. */
const ORT_FILES: Record<string, string> = {
  'ort-wasm-simd-threaded.mjs': 'text/javascript; charset=utf-8',
  'ort-wasm-simd-threaded.wasm': 'application/wasm',
};

/** onnxruntime-web's dist/ folder, wherever npm put the package. */
function ortDist(): string {
  const require = createRequire(import.meta.url);
  // The package's exports map "." to dist/ for Node, so its entry point locates the folder.
  return dirname(require.resolve('onnxruntime-web'));
}

interface Asset {
  body: Buffer;
  etag: string;
}

const asset = (body: Buffer): Asset => ({ body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` });

/** Sends an asset with an ETag, answering 304 when the browser already has it. */
function sendAsset(req: FastifyRequest, reply: FastifyReply, type: string, a: Asset): FastifyReply {
  void reply.header('etag', a.etag).header('cache-control', 'no-cache');
  if (req.headers['if-none-match'] === a.etag) return reply.code(304).send();
  return reply.type(type).send(a.body);
}

/** Memoises an async build; a failed one is retried on the next request. */
function once<T>(build: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= build().catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}

async function bundle(): Promise<Asset> {
  const esbuild = await import('esbuild');
  const wasmBuild = join(ortDist(), 'ort.wasm.min.mjs');
  const result = await esbuild.build({
    entryPoints: [join(webRoot(), 'inbrowser.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    logLevel: 'silent',
    legalComments: 'none',
    plugins: [
      {
        // The page only runs the WebAssembly backend: its build is 49 KB against 400+ KB
        // for the package's default bundle with WebGL and WebGPU.
        name: 'onnxruntime-web-wasm',
        setup(build) {
          build.onResolve({ filter: /^onnxruntime-web$/ }, () => ({ path: wasmBuild }));
        },
      },
    ],
  });
  const out = result.outputFiles[0];
  if (out === undefined) throw new Error('esbuild produced no bundle for src/web/inbrowser.ts');
  return asset(Buffer.from(out.contents));
}

/** The module, the runtime's files: GET /web/inbrowser.js and GET /web/ort/*. */
export function inBrowserAssets(app: FastifyInstance): void {
  const script = once(bundle);
  app.get('/web/inbrowser.js', { schema: { hide: true } }, async (req, reply) => sendAsset(req, reply, 'text/javascript; charset=utf-8', await script()));

  const files = new Map<string, () => Promise<Asset>>();
  for (const name of Object.keys(ORT_FILES)) files.set(name, once(async () => asset(await readFile(join(ortDist(), name)))));
  app.get<{ Params: { file: string } }>('/web/ort/:file', { schema: { hide: true } }, async (req, reply) => {
    const { file } = req.params;
    const load = files.get(file);
    const type = ORT_FILES[file];
    if (load === undefined || type === undefined) {
      return reply.code(404).send({ statusCode: 404, error: 'not_found', message: `no file /web/ort/${file}; onnxruntime-web's files here are ${Object.keys(ORT_FILES).join(', ')}` });
    }
    return sendAsset(req, reply, type, await load());
  });
}

/** GET /models/{name}/model.onnx: each served model exported once, on first request. */
export function onnxRoute(app: FastifyInstance, ctx: ServeContext): void {
  // Keyed by the served object, so a model removed and re-added under the same name is exported anew.
  const exported = new WeakMap<ServedModel, Asset>();
  app.get<{ Params: { name: string } }>(
    '/models/:name/model.onnx',
    {
      schema: {
        summary: "The model as ONNX (IR 8, opset 17), as the page's in-browser mode runs it",
        description:
          'Batch norm folded, dynamic batch dimension; input `pixels` is uint8 [batch, 1, 28, 28] (0-255, light ink on black, ' +
          'as MNIST and POST /predict\'s preprocessing make them), normalised inside the graph as the weights were trained ' +
          '(also recorded in the metadata as `torchlet.normalisation`); output `log_probs` [batch, 10]. ' +
          'Exported once per served model and kept in memory; the ETag allows conditional requests.',
        tags: ['server'],
        params: { type: 'object', properties: { name: { type: 'string', maxLength: 64 } }, required: ['name'] },
        response: {
          200: { description: 'The ONNX file', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
          404: { $ref: 'Error#' },
        },
      },
    },
    async (req, reply) => {
      const model = ctx.registry.get(req.params.name);
      let a = exported.get(model);
      if (a === undefined) {
        if (model.onnx === undefined) throw new ApiError(404, 'not_exportable', `model '${model.name}' cannot be exported to ONNX: it is not a single torchlet network`);
        try {
          a = asset(Buffer.from(model.onnx()));
        } catch (err) {
          throw new ApiError(404, 'not_exportable', `model '${model.name}' cannot be exported to ONNX: ${err instanceof Error ? err.message : String(err)}`);
        }
        exported.set(model, a);
      }
      void reply.header('content-disposition', `attachment; filename="${model.name}.onnx"`);
      return sendAsset(req, reply, 'application/octet-stream', a);
    },
  );
}
