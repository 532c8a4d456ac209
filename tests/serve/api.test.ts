// Every route of the API through Fastify's inject (the real app, no socket): answers for
// good input, and a 4xx JSON error naming the problem for every kind of bad input.
import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng } from '../../src/image/index.js';
import { darkOnLightPng, mnistPng, multipart, oneOfEach, releasedServer, type Digit } from './helpers.js';

let app: FastifyInstance;
let close: () => Promise<void>;
let digits: Digit[];

beforeAll(async () => {
  digits = await oneOfEach();
  ({ app, close } = await releasedServer({ maxFiles: 12, bodyLimit: 1024 * 1024 }));
});
afterAll(async () => close());

const png = (d: Digit): Buffer => mnistPng(d);
const json = (r: LightMyRequestResponse): Record<string, unknown> => r.json<Record<string, unknown>>();

/** Every refusal: the status, the JSON error shape, the code, and a message naming the problem. */
function expectError(r: LightMyRequestResponse, status: number, code: string, message: RegExp): void {
  expect(r.statusCode, r.body).toBe(status);
  expect(r.headers['content-type']).toMatch(/^application\/json/);
  const body = json(r);
  expect(body).toMatchObject({ statusCode: status, error: code });
  expect(body.message).toMatch(message);
}

function postImage(body: Buffer | string, type = 'image/png', url = '/predict') {
  return app.inject({ method: 'POST', url, headers: { 'content-type': type }, payload: body });
}

describe('POST /predict', () => {
  it('classifies every digit of MNIST sent as a multipart upload, with everything the answer promises', async () => {
    for (const d of digits) {
      const form = multipart([{ name: 'file', filename: `${d.label}.png`, type: 'image/png', data: png(d) }]);
      const r = await app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': form.contentType }, payload: form.body });
      expect(r.statusCode, r.body).toBe(200);
      const body = json(r) as { digit: number; confidence: number; probabilities: number[]; model: string; preprocessing: Record<string, unknown>; image: string; timeMs: number; timings: Record<string, number> };
      expect(body.digit).toBe(d.label);
      expect(body.model).toBe('super_light');
      expect(body.probabilities).toHaveLength(10);
      expect(body.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
      expect(body.confidence).toBe(Math.max(...body.probabilities));
      expect(body.preprocessing).toMatchObject({ source: 'image', format: 'png', width: 28, height: 28, inverted: false });
      expect(body.timeMs).toBeGreaterThan(0);
      expect(body.timings.preprocessMs).toBeGreaterThanOrEqual(0);
      expect(body.timings.inferenceMs).toBeGreaterThan(0);
      // The 28x28 image is a PNG of what the model saw: an MNIST digit passes through unchanged.
      const seen = Buffer.from(body.image, 'base64');
      const meta = await sharp(seen).metadata();
      expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['png', 28, 28, 1]);
      const data = await sharp(seen).extractChannel(0).raw().toBuffer();
      expect(Buffer.compare(data, Buffer.from(d.pixels))).toBe(0);
    }
  });

  it('takes a raw image/* body: a 280x280 dark-on-light RGB image is inverted and read right', async () => {
    for (const d of digits.slice(0, 4)) {
      const r = await postImage(await darkOnLightPng(d));
      expect(r.statusCode, r.body).toBe(200);
      expect(json(r)).toMatchObject({ digit: d.label, preprocessing: { inverted: true, width: 280, height: 280, format: 'png' } });
      expect((json(r).preprocessing as { bbox: { width: number } }).bbox.width).toBeGreaterThan(20);
    }
  });

  it('takes JPEG and WebP bodies and application/octet-stream', async () => {
    const d = digits[3]!;
    const source = await darkOnLightPng(d);
    for (const [type, body] of [
      ['image/jpeg', await sharp(source).jpeg({ quality: 85 }).toBuffer()],
      ['image/webp', await sharp(source).webp().toBuffer()],
      ['application/octet-stream', source],
    ] as const) {
      const r = await postImage(body, type);
      expect(r.statusCode, `${type}: ${r.body}`).toBe(200);
      expect(json(r).digit).toBe(d.label);
    }
  });

  it('takes JSON pixels (0-255, or 0-1 with scale 1) as the model input, unchanged', async () => {
    const d = digits[7]!;
    const r = await app.inject({ method: 'POST', url: '/predict', payload: { pixels: Array.from(d.pixels) } });
    expect(r.statusCode, r.body).toBe(200);
    expect(json(r)).toMatchObject({ digit: 7, preprocessing: { source: 'pixels', format: 'raw', inverted: false, bbox: null } });
    const unit = await app.inject({ method: 'POST', url: '/predict', payload: { pixels: Array.from(d.pixels, (v) => v / 255), scale: 1 } });
    expect(json(unit).probabilities).toEqual(json(r).probabilities);
  });

  it('picks the model with ?model= and leaves the image out with ?image=false', async () => {
    const r = await postImage(png(digits[2]!), 'image/png', '/predict?model=light&image=false');
    expect(r.statusCode, r.body).toBe(200);
    expect(json(r)).toMatchObject({ model: 'light', digit: 2 });
    expect(json(r).image).toBeUndefined();
  });

  it('batches concurrent requests into shared forward passes and answers each with its own digit', async () => {
    const many = Array.from({ length: 40 }, (_, i) => digits[i % 10]!);
    const answers = await Promise.all(many.map((d) => postImage(png(d))));
    expect(answers.map((r) => json(r).digit)).toEqual(many.map((d) => d.label));
    const metrics = (await app.inject('/metrics')).body;
    const count = Number(/^torchlet_batch_size_count\{model="super_light"\} (\d+)/m.exec(metrics)?.[1]);
    const sum = Number(/^torchlet_batch_size_sum\{model="super_light"\} (\d+)/m.exec(metrics)?.[1]);
    expect(sum / count).toBeGreaterThan(1); // some passes held more than one image
  });
});

describe('POST /predict refuses bad input with a 4xx naming the problem', () => {
  it('an unknown model, naming the ones served', async () => {
    expectError(await postImage(png(digits[0]!), 'image/png', '/predict?model=resnet'), 404, 'unknown_model', /unknown model 'resnet'.*'super_light', 'light'/);
  });
  it('not an image', async () => {
    expectError(await postImage('hello, this is text'), 415, 'unsupported_format', /not a PNG, JPEG, WebP or GIF/);
    expectError(await postImage(Buffer.from('BM\x36\x00\x00\x00'), 'image/bmp'), 415, 'unsupported_format', /BMP/);
  });
  it('a truncated or corrupt image', async () => {
    const good = await darkOnLightPng(digits[1]!);
    expectError(await postImage(good.subarray(0, good.length >> 1)), 400, 'corrupt', /truncated|corrupt/i);
    const jpeg = await sharp(good).jpeg().toBuffer();
    expectError(await postImage(jpeg.subarray(0, 200), 'image/jpeg'), 400, 'corrupt', /truncated|corrupt/i);
  });
  it('an empty body, and no body at all', async () => {
    expectError(await postImage(Buffer.alloc(0)), 400, 'empty', /empty/);
    expectError(await app.inject({ method: 'POST', url: '/predict' }), 400, 'empty', /no body|empty/);
    expectError(await app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': 'application/json' }, payload: '' }), 400, 'empty', /empty/i);
  });
  it('a content type it does not take', async () => {
    expectError(await postImage('x', 'text/plain'), 415, 'unsupported_media_type', /text\/plain.*multipart\/form-data/s);
  });
  it('the wrong multipart field, a form with no file, two files', async () => {
    const wrong = multipart([{ name: 'image', filename: 'a.png', type: 'image/png', data: png(digits[0]!) }]);
    expectError(await app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': wrong.contentType }, payload: wrong.body }), 400, 'wrong_field', /named 'file', got a file in 'image'/);
    const none = multipart([{ name: 'note', data: 'no file here' }]);
    expectError(await app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': none.contentType }, payload: none.body }), 400, 'missing_file', /no file/);
    const two = multipart([0, 1].map((i) => ({ name: 'file', filename: `${i}.png`, type: 'image/png', data: png(digits[i]!) })));
    expectError(await app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': two.contentType }, payload: two.body }), 413, 'too_many_files', /one file.*\/predict\/batch/);
  });
  it('a malformed multipart body', async () => {
    const r = await app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': 'multipart/form-data; boundary=xyz' }, payload: '--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n\x89PNG' });
    expect(r.statusCode).toBeGreaterThanOrEqual(400);
    expect(r.statusCode).toBeLessThan(500);
    expect(json(r).message).toEqual(expect.any(String));
    expectError(await app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': 'multipart/form-data' }, payload: 'x' }), 400, 'malformed_multipart', /boundary/i);
  });
  it('a body over the size limit, raw or multipart', async () => {
    const big = Buffer.alloc(1024 * 1024 + 10, 1);
    expectError(await postImage(big), 413, 'too_large', /too large|limit/i);
    const form = multipart([{ name: 'file', filename: 'big.png', type: 'image/png', data: big }]);
    expectError(await app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': form.contentType }, payload: form.body }), 413, 'too_large', /limit|large/i);
  });
  it('a decompression bomb: a small PNG declaring 50,000 x 50,000 pixels', async () => {
    const bomb = encodePng(new Uint8Array(1), 1, 1);
    bomb.writeUInt32BE(50_000, 16);
    bomb.writeUInt32BE(50_000, 20);
    expect(bomb.length).toBeLessThan(100);
    expectError(await postImage(bomb), 413, 'too_many_pixels', /50000 ?x ?50000|2,?500,?000,?000|pixel/i);
  });
  it('a blank image', async () => {
    const white = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#fff' } }).png().toBuffer();
    expectError(await postImage(white), 422, 'blank', /blank|no digit|contrast/i);
  });
  it('JSON of the wrong shape', async () => {
    const post = (payload: unknown) => app.inject({ method: 'POST', url: '/predict', payload: payload as Record<string, unknown> });
    expectError(await post({ pixel: [1, 2] }), 400, 'invalid_request', /pixels/);
    expectError(await post({ pixels: Array(783).fill(0) }), 400, 'invalid_request', /fewer than 784/);
    expectError(await post({ pixels: Array(784).fill(300) }), 400, 'invalid_request', /<= 255/);
    expectError(await post({ pixels: Array(784).fill('a') }), 400, 'invalid_request', /number/);
    expectError(await post({ pixels: Array(784).fill(2), scale: 1 }), 400, 'invalid_request', /above 1/);
    expectError(await app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': 'application/json' }, payload: '{"pixels": [1,' }), 400, 'invalid_json', /JSON/i);
  });
  it('an unknown query parameter', async () => {
    expectError(await postImage(png(digits[0]!), 'image/png', '/predict?modle=light'), 400, 'invalid_request', /additional properties/);
  });
});

describe('POST /predict/batch', () => {
  it('classifies many files in one request, in order, with their names', async () => {
    const form = multipart(digits.map((d) => ({ name: 'file', filename: `digit-${d.label}.png`, type: 'image/png', data: png(d) })));
    const r = await app.inject({ method: 'POST', url: '/predict/batch?model=light', headers: { 'content-type': form.contentType }, payload: form.body });
    expect(r.statusCode, r.body).toBe(200);
    const body = json(r) as { model: string; count: number; results: { digit: number; filename: string; model: string }[] };
    expect(body.model).toBe('light');
    expect(body.count).toBe(10);
    expect(body.results.map((x) => x.digit)).toEqual(digits.map((d) => d.label));
    expect(body.results.map((x) => x.filename)).toEqual(digits.map((d) => `digit-${d.label}.png`));
  });
  it('refuses too many files, a bad file (naming it), and a body that is not multipart', async () => {
    const many = multipart(Array.from({ length: 13 }, (_, i) => ({ name: 'file', filename: `${i}.png`, type: 'image/png', data: png(digits[i % 10]!) })));
    expectError(await app.inject({ method: 'POST', url: '/predict/batch', headers: { 'content-type': many.contentType }, payload: many.body }), 413, 'too_many_files', /at most 12 files/);
    const bad = multipart([
      { name: 'file', filename: 'ok.png', type: 'image/png', data: png(digits[0]!) },
      { name: 'file', filename: 'notes.txt', type: 'text/plain', data: 'not an image' },
    ]);
    expectError(await app.inject({ method: 'POST', url: '/predict/batch', headers: { 'content-type': bad.contentType }, payload: bad.body }), 415, 'unsupported_format', /file 2 \('notes.txt'\)/);
    expectError(await postImage(png(digits[0]!), 'image/png', '/predict/batch'), 415, 'unsupported_media_type', /multipart/);
  });
});

describe('the other routes', () => {
  it('GET /models lists the models with parameter counts and test accuracy', async () => {
    const r = await app.inject('/models');
    expect(r.statusCode).toBe(200);
    expect(json(r)).toEqual({
      default: 'super_light',
      models: [
        { name: 'super_light', description: expect.any(String), params: 4842, accuracy: 0.9959, source: 'released weights/super_light.pt', default: true },
        { name: 'light', description: expect.any(String), params: 4738, accuracy: 0.993, source: 'released weights/light.pt', default: false },
      ],
    });
  });

  it('GET /healthz', async () => {
    const r = await app.inject('/healthz');
    expect(r.statusCode).toBe(200);
    expect(json(r)).toMatchObject({ status: 'ok', models: 2, auth: false });
  });

  it('GET /metrics speaks Prometheus: requests, latency, batch sizes, queue, model load, RSS', async () => {
    await postImage(png(digits[5]!));
    const r = await app.inject('/metrics');
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const name of [
      /^torchlet_http_requests_total\{method="POST",route="\/predict",status="200"\} \d+/m,
      /^torchlet_http_requests_total\{method="POST",route="\/predict",status="415"\} \d+/m,
      /^torchlet_http_request_duration_seconds_bucket\{le="0\.005",method="POST",route="\/predict"\} \d+/m,
      /^torchlet_batch_size_bucket\{le="1",model="super_light"\} \d+/m,
      /^torchlet_inference_duration_seconds_count\{model="super_light"\} \d+/m,
      /^torchlet_queue_depth\{model="super_light"\} 0/m,
      /^torchlet_batches_in_flight\{model="super_light"\} 0/m,
      /^torchlet_model_load_seconds\{model="light"\} \d/m,
      /^torchlet_models_loaded 2/m,
      /^torchlet_process_resident_memory_bytes \d+/m,
    ]) {
      expect(r.body).toMatch(name);
    }
  });

  it('an unknown route is a JSON 404', async () => {
    expectError(await app.inject('/nope'), 404, 'not_found', /no route GET \/nope/);
  });

  it('serves the page and its assets, with nothing from another host', async () => {
    const page = await app.inject('/');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toMatch(/<canvas id="canvas"/);
    for (const asset of ['/web/app.js', '/web/style.css']) {
      const r = await app.inject(asset);
      expect(r.statusCode, asset).toBe(200);
      expect(r.body).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
    }
    expect(page.body).not.toMatch(/(src|href)="https?:/);
    expectError(await app.inject('/web/missing.js'), 404, 'not_found', /missing\.js/);
  });

  it('serves Swagger UI at /docs, offline', async () => {
    const r = await app.inject('/docs/');
    expect(r.statusCode).toBe(200);
    expect(r.body).toMatch(/swagger/i);
    expect(r.body).not.toMatch(/(src|href)="https?:/);
  });

  it('serves an OpenAPI 3 document that a real validator accepts, describing every route and body', async () => {
    const r = await app.inject('/openapi.json');
    expect(r.statusCode).toBe(200);
    const doc = json(r) as { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, unknown> }; responses: Record<string, unknown> }>> };
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors, JSON.stringify(result.errors, null, 2)).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths).sort()).toEqual(['/healthz', '/metrics', '/models', '/models/{name}/model.onnx', '/predict', '/predict/batch']);
    expect(Object.keys(doc.paths['/predict']!.post!.requestBody!.content).sort()).toEqual(['application/json', 'image/*', 'multipart/form-data']);
    expect(Object.keys(doc.paths['/predict/batch']!.post!.requestBody!.content)).toEqual(['multipart/form-data']);
    expect(Object.keys(doc.paths['/predict']!.post!.responses)).toEqual(expect.arrayContaining(['200', '400', '413', '415', '422', '503']));
  });
});
