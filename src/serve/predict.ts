// POST /predict and POST /predict/batch: an image in (multipart, raw image/* or JSON
// pixels), MNIST preprocessing, one trip through the model's batcher, the digit out.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { encodePng, ImageError, preprocessImage, type BBox, type ImageFormat } from '../image/index.js';
import { ApiError } from './errors.js';
import { IMAGE_PIXELS, readOutput, type HeldModel } from './registry.js';
import { batchBodies, batchResponse, imageBodies, pixelsBody, predictionSchema, predictQuery, type PixelsRequest } from './schemas.js';
import { isMultipart, readUploads } from './multipart.js';
import { MEDIA_HINT, type ServeContext } from './server.js';

interface Prepared {
  pixels: Uint8Array;
  source: 'image' | 'pixels';
  format: ImageFormat;
  width: number;
  height: number;
  inverted: boolean;
  bbox: BBox | null;
  preprocessMs: number;
}

export interface Prediction {
  digit: number;
  confidence: number;
  probabilities: number[];
  model: string;
  /** An ensemble's: how it voted, and each member's digit. */
  vote?: 'hard' | 'soft';
  votes?: { member: string; digit: number }[];
  preprocessing: Omit<Prepared, 'pixels' | 'preprocessMs'>;
  image?: string;
  timeMs: number;
  timings: { preprocessMs: number; inferenceMs: number };
  filename?: string;
}

interface Query {
  model?: string;
  run?: string;
  image: boolean;
}

/** The model a request names: ?model=NAME, ?run=ID (a run's weights), or the default; held until the request releases it. */
async function modelFor(ctx: ServeContext, query: Query): Promise<HeldModel> {
  if (query.run === undefined) return ctx.registry.hold(query.model);
  if (query.model !== undefined) throw new ApiError(400, 'bad_request', 'give model or run, not both');
  if (ctx.runModel === undefined) throw new ApiError(404, 'no_run_store', 'this server has no run store: start it with --store to serve the weights of runs');
  return ctx.registry.hold(await ctx.runModel(query.run));
}

const IMAGE_STATUS: Record<ImageError['code'], [number, string]> = {
  empty: [400, 'empty'],
  unsupported_format: [415, 'unsupported_format'],
  corrupt: [400, 'corrupt'],
  too_large: [413, 'too_many_pixels'],
  blank: [422, 'blank'],
};

/** An ImageError as the API's 4xx, prefixed with which upload it was. */
function imageError(err: unknown, what?: string): unknown {
  if (!(err instanceof ImageError)) return err;
  const [status, code] = IMAGE_STATUS[err.code];
  return new ApiError(status, code, what === undefined ? err.message : `${what}: ${err.message}`);
}

async function prepareImage(bytes: Buffer, maxPixels: number, what?: string): Promise<Prepared> {
  const t0 = performance.now();
  try {
    const r = await preprocessImage(bytes, { maxPixels });
    return {
      pixels: r.pixels,
      source: 'image',
      format: r.format,
      width: r.width,
      height: r.height,
      inverted: r.inverted,
      bbox: r.bbox,
      preprocessMs: performance.now() - t0,
    };
  } catch (err) {
    throw imageError(err, what);
  }
}

function preparePixels(body: PixelsRequest): Prepared {
  const pixels = new Uint8Array(IMAGE_PIXELS);
  const k = 255 / body.scale;
  if (body.scale === 1 && body.pixels.some((v) => v > 1)) {
    throw new ApiError(400, 'invalid_request', 'body/pixels has values above 1 with "scale": 1; send 0-1 values, or 0-255 without scale');
  }
  body.pixels.forEach((v, i) => (pixels[i] = Math.round(v * k)));
  return { pixels, source: 'pixels', format: 'raw', width: 28, height: 28, inverted: false, bbox: null, preprocessMs: 0 };
}

function rawBody(req: FastifyRequest): Buffer {
  const body = req.body;
  if (typeof body === 'string') {
    // Fastify parses text/plain itself; an image never comes as text.
    throw new ApiError(415, 'unsupported_media_type', `an image cannot be sent as ${req.headers['content-type'] ?? 'text'}${MEDIA_HINT}`);
  }
  if (Buffer.isBuffer(body)) {
    if (body.length === 0) throw new ApiError(400, 'empty', 'the request body is empty; send an image');
    return body;
  }
  throw new ApiError(400, 'empty', "the request has no body; send a multipart upload (field 'file'), a raw image/* body, or JSON {\"pixels\": [784 values]}");
}

async function prepare(req: FastifyRequest, ctx: ServeContext): Promise<Prepared> {
  const contentType = req.headers['content-type'];
  if (isMultipart(contentType)) {
    const [file] = await readUploads(rawBody(req), contentType ?? '', 1);
    if (file === undefined) throw new ApiError(400, 'missing_file', "the multipart body has no file; send the image in a field named 'file'");
    return prepareImage(file.bytes, ctx.options.maxPixels);
  }
  const body = req.body;
  if (body !== null && typeof body === 'object' && !Buffer.isBuffer(body)) return preparePixels(body as PixelsRequest);
  return prepareImage(rawBody(req), ctx.options.maxPixels);
}

async function classify({ model, batcher }: HeldModel, prepared: Prepared, withImage: boolean, started: number): Promise<Prediction> {
  const t0 = performance.now();
  const { scores, digit, votes } = readOutput(model, await batcher.submit(prepared.pixels));
  const inferenceMs = performance.now() - t0;
  const { pixels, preprocessMs, ...preprocessing } = prepared;
  return {
    digit,
    confidence: scores[digit] ?? 0,
    probabilities: Array.from(scores),
    model: model.name,
    ...(model.ensemble !== undefined && { vote: model.ensemble.vote, votes }),
    preprocessing,
    ...(withImage && { image: encodePng(pixels, 28, 28, { compress: false }).toString('base64') }),
    timeMs: performance.now() - started,
    timings: { preprocessMs, inferenceMs },
  };
}

export function predictRoutes(app: FastifyInstance, ctx: ServeContext): void {
  const errors = { 400: { $ref: 'Error#' }, 404: { $ref: 'Error#' }, 413: { $ref: 'Error#' }, 415: { $ref: 'Error#' }, 422: { $ref: 'Error#' }, 429: { $ref: 'Error#' }, 503: { $ref: 'Error#' } };

  app.post<{ Querystring: Query }>(
    '/predict',
    {
      schema: {
        summary: 'Classify one image',
        description:
          "Send a PNG, JPEG, WebP or GIF as a multipart upload (field `file`) or as the raw body with an `image/*` content type, or an MNIST-like image as JSON `{\"pixels\": [784 values]}`. Images are preprocessed as MNIST was made (grayscale, inverted when the background is light, cropped to the ink, scaled to 20 px, centred by mass in 28x28).",
        tags: ['predict'],
        querystring: predictQuery,
        body: { content: { 'application/json': { schema: { $ref: 'PixelsRequest#' } } } },
        response: { 200: { $ref: 'Prediction#' }, ...errors },
      },
      config: { openapiBody: imageBodies },
    },
    async (req) => {
      const started = performance.now();
      const held = await modelFor(ctx, req.query);
      try {
        return await classify(held, await prepare(req, ctx), req.query.image, started);
      } finally {
        held.release();
      }
    },
  );

  app.post<{ Querystring: Query }>(
    '/predict/batch',
    {
      schema: {
        summary: 'Classify many images in one request',
        description: `A multipart upload with one image per part, each in a field named \`file\` (at most ${ctx.options.maxFiles}). Any bad image fails the whole request, naming the file.`,
        tags: ['predict'],
        querystring: predictQuery,
        response: { 200: batchResponse, ...errors },
      },
      config: { openapiBody: batchBodies },
    },
    async (req) => {
      const started = performance.now();
      const held = await modelFor(ctx, req.query);
      try {
        const contentType = req.headers['content-type'];
        if (!isMultipart(contentType)) {
          throw new ApiError(415, 'unsupported_media_type', "send the images as multipart/form-data, each in a field named 'file'");
        }
        const files = await readUploads(rawBody(req), contentType ?? '', ctx.options.maxFiles);
        const prepared = await Promise.all(
          files.map(async (f, i) => ({ name: f.filename, image: await prepareImage(f.bytes, ctx.options.maxPixels, `file ${i + 1} ('${f.filename}')`) })),
        );
        const results = await Promise.all(prepared.map(async (p) => ({ ...(await classify(held, p.image, req.query.image, started)), filename: p.name })));
        return { model: held.model.name, count: results.length, results, timeMs: performance.now() - started };
      } finally {
        held.release();
      }
    },
  );
}

export const predictSchemas = [pixelsBody, predictionSchema];
