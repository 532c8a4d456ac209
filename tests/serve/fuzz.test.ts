// A quick fuzz of POST /predict and /predict/batch (the long one, against a server
// process with memory sampling, is tests/faults/serve-fuzz.test.ts): every answer is a
// 4xx JSON error naming a problem (or a 200 where a mutation left a decodable image),
// never a 500, and the server goes on answering.
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzCase } from './fuzz.js';
import { darkOnLightPng, mnistDigits, mnistPng, releasedServer } from './helpers.js';

const CASES = 400;
let app: FastifyInstance;
let close: () => Promise<void>;
let samples: { png: Buffer; jpeg: Buffer };

beforeAll(async () => {
  const [d] = await mnistDigits([0]);
  samples = { png: mnistPng(d!), jpeg: await sharp(await darkOnLightPng(d!, 96)).jpeg().toBuffer() };
  ({ app, close } = await releasedServer({ bodyLimit: 256 * 1024 }));
});
afterAll(async () => close?.());

describe('fuzzed bodies', () => {
  it(`answers ${CASES} fuzzed requests with 4xx JSON errors, never a 5xx`, async () => {
    const kinds = new Map<string, number>();
    for (let seed = 1; seed <= CASES; seed++) {
      const c = fuzzCase(seed, samples);
      const url = seed % 5 === 0 ? '/predict/batch' : '/predict';
      const r = await app.inject({ method: 'POST', url, headers: c.contentType === undefined ? {} : { 'content-type': c.contentType }, payload: c.body });
      const what = `seed ${seed}, ${c.kind} -> ${url}: ${r.statusCode} ${r.body.slice(0, 200)}`;
      expect(r.statusCode, what).toBeLessThan(500);
      if (c.mustRefuse) expect(r.statusCode, what).toBeGreaterThanOrEqual(400);
      if (r.statusCode >= 400) {
        const body = r.json<{ statusCode: number; error: string; message: string }>();
        expect(body.statusCode, what).toBe(r.statusCode);
        expect(body.error, what).toMatch(/^[a-z_]+$/);
        expect(body.message.length, what).toBeGreaterThan(10);
      }
      const key = c.kind.replace(/ at \d+\/\d+|'[^']*'/g, '').replace(/ (IHDR|IDAT|IEND)/, ' chunk');
      kinds.set(key, (kinds.get(key) ?? 0) + 1);
    }
    // Every kind of mutation was tried.
    expect([...kinds.keys()].length).toBeGreaterThanOrEqual(10);
    const ok = await app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': 'image/png' }, payload: samples.png });
    expect(ok.statusCode).toBe(200);
    expect(ok.json<{ digit: number }>().digit).toBe(7);
  });
});
