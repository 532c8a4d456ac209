// The page's "in this browser" mode (issue 14) in a real browser (Debian's chromium through
// playwright-core), and the server side of it: the model's ONNX file, onnxruntime-web's
// WebAssembly files and the bundled module, all from torchlet itself.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/spawn.js';
import { chromiumMissing, launchChromium } from '../helpers/browser.js';
import { draw, STROKES } from './draw.js';
import { listeningServer, mnistDigits, mnistPng } from './helpers.js';

const ARTIFACTS = join(ROOT, 'artifacts', 'browser');
/**
 * Largest difference allowed between a probability computed on the server (libtorch,
 * batch norm as a layer) and in the browser (onnxruntime-web, batch norm folded into the
 * convolution): float32 rounding in a different order. Measured: under 1e-5.
 */
const PROBABILITY_TOLERANCE = 1e-4;

interface Shown {
  digit: string;
  details: string;
  probabilities: number[];
}

/** Waits for a prediction whose details line matches `place`, then reads it off the page. */
async function shown(page: Page, place: RegExp): Promise<Shown> {
  await expect.poll(() => page.locator('#details').textContent(), { timeout: 30_000 }).toMatch(place);
  const probabilities = await page.locator('#bars li').evaluateAll((lis) => lis.map((li) => Number(li.getAttribute('data-probability'))));
  return { digit: (await page.locator('#digit').textContent())?.trim() ?? '', details: (await page.locator('#details').textContent()) ?? '', probabilities };
}

const HERE = /super_light in this browser, [\d.]+ ms/;
const SERVER = /super_light, [\d.]+ ms/;

const canRun = !chromiumMissing();

describe('the in-browser mode, server side', () => {
  let url: string;
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ url, close } = await listeningServer(['super_light']));
  });
  afterAll(async () => close?.());

  it('serves each model as ONNX, exported once, with an ETag, and described in the OpenAPI document', async () => {
    const first = await fetch(`${url}/models/super_light/model.onnx`);
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('application/octet-stream');
    const bytes = Buffer.from(await first.arrayBuffer());
    expect(bytes.length).toBeGreaterThan(20_000);
    const etag = first.headers.get('etag');
    expect(etag).toMatch(/^"[\w-]+"$/);
    // Exported once: the same bytes again, and a conditional request is answered 304.
    const again = await fetch(`${url}/models/super_light/model.onnx`);
    expect(Buffer.from(await again.arrayBuffer()).equals(bytes)).toBe(true);
    expect((await fetch(`${url}/models/super_light/model.onnx`, { headers: { 'if-none-match': etag! } })).status).toBe(304);
    // It is the served model: onnxruntime-web (in Node) on its file agrees with POST /predict.
    const ort = await import('onnxruntime-web');
    const session = await ort.InferenceSession.create(bytes);
    expect(session.inputNames).toEqual(['pixels']);
    for (const d of await mnistDigits([0, 1, 2])) {
      const out = await session.run({ pixels: new ort.Tensor('uint8', d.pixels, [1, 1, 28, 28]) });
      const local = Array.from(out.log_probs!.data as Float32Array, Math.exp);
      const res = await fetch(`${url}/predict?image=false`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pixels: Array.from(d.pixels) }) });
      const served = (await res.json()) as { digit: number; probabilities: number[] };
      expect(local.indexOf(Math.max(...local))).toBe(served.digit);
      for (const [i, p] of local.entries()) expect(Math.abs(p - served.probabilities[i]!)).toBeLessThanOrEqual(PROBABILITY_TOLERANCE);
    }
    await session.release();

    const unknown = await fetch(`${url}/models/nope/model.onnx`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: 'unknown_model', message: expect.stringContaining("'super_light'") });

    const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { paths: Record<string, { get?: { responses?: Record<string, { content?: object }> } }> };
    expect(doc.paths['/models/{name}/model.onnx']?.get?.responses?.['200']?.content).toHaveProperty('application/octet-stream');
  });

  it("serves onnxruntime-web's WebAssembly files and the page's module, which bundles the server's preprocessing", async () => {
    const wasm = await fetch(`${url}/web/ort/ort-wasm-simd-threaded.wasm`);
    expect(wasm.status).toBe(200);
    expect(wasm.headers.get('content-type')).toBe('application/wasm');
    expect((await wasm.arrayBuffer()).byteLength).toBeGreaterThan(1_000_000);
    expect((await fetch(`${url}/web/ort/ort-wasm-simd-threaded.mjs`)).headers.get('content-type')).toMatch(/^text\/javascript/);
    const other = await fetch(`${url}/web/ort/ort.webgpu.min.mjs`);
    expect(other.status).toBe(404);
    expect(((await other.json()) as { message: string }).message).toMatch(/ort-wasm-simd-threaded\.wasm/);

    const script = await fetch(`${url}/web/inbrowser.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
    const text = await script.text();
    // src/image/mnistify.ts is in the bundle (its own error messages), not fetched from elsewhere.
    expect(text).toContain('the image has no pixels');
  });
});

describe.skipIf(!canRun)('the in-browser mode in chromium', () => {
  let browser: Browser;
  let context: BrowserContext;
  let url: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ url, close } = await listeningServer());
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    mkdirSync(ARTIFACTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await close?.();
  });

  it('predicts drawn digits in the browser, offline, with no request per prediction, as the server does', async () => {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(url);
    await expect.poll(() => page.locator('#model option').count()).toBe(2);

    await page.getByLabel('in this browser').check();
    await expect.poll(() => page.locator('#where-info').textContent(), { timeout: 60_000 }).toMatch(/super_light runs in this browser/);
    // Everything came from torchlet itself: the module, onnxruntime-web's files, the model.
    for (const r of requests) expect(r.startsWith(`${url}/`), r).toBe(true);
    const paths = requests.map((r) => new URL(r).pathname);
    expect(paths).toEqual(expect.arrayContaining(['/web/inbrowser.js', '/web/ort/ort-wasm-simd-threaded.mjs', '/web/ort/ort-wasm-simd-threaded.wasm', '/models/super_light/model.onnx']));

    for (const digit of [1, 7, 0]) {
      // Offline, and counting: predictions in this browser must not touch the network.
      await context.setOffline(true);
      requests.length = 0;
      await page.getByRole('button', { name: 'Clear' }).click();
      await draw(page, STROKES[digit]!);
      const here = await shown(page, HERE);
      expect(here.digit, `drew a ${digit}, predicted in the browser`).toBe(String(digit));
      expect(await page.locator('#seen').isVisible()).toBe(true);
      expect(requests, 'requests made by a prediction in the browser').toEqual([]);

      // The same drawing on the server: the page sends it again when the switch moves.
      await context.setOffline(false);
      const answered = page.waitForResponse((r) => r.url().startsWith(`${url}/predict`));
      await page.getByLabel('on the server').check();
      expect((await answered).status()).toBe(200);
      const server = await shown(page, SERVER);
      expect(server.digit).toBe(String(digit));
      expect(here.probabilities).toHaveLength(10);
      const delta = Math.max(...here.probabilities.map((p, i) => Math.abs(p - server.probabilities[i]!)));
      console.log(`drew a ${digit}: both modes say ${digit}, max |probability difference| ${delta.toExponential(2)}`);
      expect(delta).toBeLessThanOrEqual(PROBABILITY_TOLERANCE);

      await page.getByLabel('in this browser').check();
      await shown(page, HERE);
    }
    await page.screenshot({ path: join(ARTIFACTS, 'in-browser.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it("preprocesses a drawing exactly as the server does (the same module), and switches models in the browser", async () => {
    const page = await context.newPage();
    await page.goto(url);
    await expect.poll(() => page.locator('#model option').count()).toBe(2);
    await page.getByLabel('in this browser').check();
    await expect.poll(() => page.locator('#where-info').textContent(), { timeout: 60_000 }).toMatch(/super_light runs in this browser/);
    await draw(page, STROKES[7]!);
    await shown(page, HERE);

    // The browser's preprocessing of the canvas, from the module the page runs, and the
    // canvas as the PNG the server mode would upload.
    const browserSide = await page.evaluate<{ pixels: number[]; inverted: boolean; bbox: unknown; png: string }>(`(async () => {
      const m = await import('/web/inbrowser.js');
      const canvas = document.getElementById('canvas');
      const r = m.preprocess(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height));
      return { pixels: Array.from(r.pixels), inverted: r.inverted, bbox: r.bbox, png: canvas.toDataURL('image/png').split(',')[1] };
    })()`);
    const res = await fetch(`${url}/predict`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: Buffer.from(browserSide.png, 'base64') });
    expect(res.status).toBe(200);
    const server = (await res.json()) as { image: string; preprocessing: { inverted: boolean; bbox: unknown } };
    const seen = PNG.sync.read(Buffer.from(server.image, 'base64'), { skipRescale: true });
    const serverPixels = Array.from({ length: 784 }, (_, i) => seen.data[4 * i]!);
    expect(browserSide.pixels).toHaveLength(784);
    expect(browserSide.pixels.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(browserSide.pixels).toEqual(serverPixels);
    expect(browserSide.inverted).toBe(server.preprocessing.inverted);
    expect(browserSide.bbox).toEqual(server.preprocessing.bbox);

    // Another model: its ONNX file is fetched once, then it predicts here too.
    const fetched = page.waitForResponse((r) => r.url().endsWith('/models/light/model.onnx'));
    await page.getByLabel('Model').selectOption('light');
    expect((await fetched).status()).toBe(200);
    await expect.poll(() => page.locator('#details').textContent(), { timeout: 30_000 }).toMatch(/light in this browser, [\d.]+ ms/);
    expect((await page.locator('#digit').textContent())?.trim()).toBe('7');

    // A chosen file is decoded and read in the browser too, with no request.
    const [two] = await mnistDigits([1]); // a 2
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.locator('#file').setInputFiles({ name: 'mnist-2.png', mimeType: 'image/png', buffer: mnistPng(two!) });
    await expect.poll(() => page.locator('#details').textContent(), { timeout: 30_000 }).toMatch(/^mnist-2\.png: 28×28 png · light in this browser/);
    expect((await page.locator('#digit').textContent())?.trim()).toBe(String(two!.label));
    expect(requests).toEqual([]);
    await page.close();
  });
});
