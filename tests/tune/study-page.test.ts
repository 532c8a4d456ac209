// The dashboard's study page in Debian's Chromium (playwright-core): the trials table, the
// optimization history, the intermediate values with pruned trials marked, parallel
// coordinates and the parameter importances (with their method stated) of a real study.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardRoutes } from '../../src/dashboard/plugin.js';
import { RunStore } from '../../src/store/store.js';
import { createStudy, MedianPruner, SqlTuneStorage, TPESampler, TrialPruned } from '../../src/tune/index.js';
import { studyRoutes } from '../../src/tune/web.js';
import { chromiumMissing, launchChromium } from '../helpers/browser.js';

const skip = chromiumMissing();

let tmp: string;
let store: RunStore;
let app: FastifyInstance;
let base: string;
let browser: Browser;

beforeAll(async () => {
  if (skip) return;
  tmp = mkdtempSync(join(tmpdir(), 'torchlet-study-page-'));
  store = await RunStore.open(join(tmp, 'runs.db'));
  const study = await createStudy({ name: 'quad', direction: 'maximize', store: new SqlTuneStorage(store), sampler: new TPESampler({ seed: 4, nStartupTrials: 4 }), pruner: new MedianPruner({ nStartupTrials: 3 }) });
  await study.optimize(
    async (t) => {
      const lr = t.suggestFloat('lr', 1e-4, 1e-1, { log: true });
      const width = t.suggestInt('width', 4, 32);
      const opt = t.suggestCategorical('optimizer', ['adamw', 'sgd']);
      const peak = 1 - (Math.log10(lr) + 2) ** 2 / 10 - (opt === 'sgd' ? 0.1 : 0) + width / 1000;
      for (let step = 1; step <= 4; step++) {
        await t.report(peak * (1 - 0.5 ** step), step);
        if (await t.shouldPrune()) throw new TrialPruned();
      }
      return peak * (1 - 0.5 ** 4);
    },
    { trials: 14 },
  );
  app = Fastify();
  await app.register(dashboardRoutes);
  await app.register(studyRoutes, { store });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  browser = await launchChromium();
}, 300_000);

afterAll(async () => {
  if (skip) return;
  await browser?.close();
  await app?.close();
  await store?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe.skipIf(skip)('the study page', () => {
  it('serves the study as JSON, 404 for an unknown one', async () => {
    const res = await app.inject({ method: 'GET', url: '/studies/quad' });
    expect(res.statusCode).toBe(200);
    const body = res.json<{ trials: { state: string }[]; importance: { method: string; values: Record<string, number> } }>();
    expect(body.trials).toHaveLength(14);
    expect(body.trials.some((t) => t.state === 'pruned')).toBe(true);
    expect(Object.keys(body.importance.values).sort()).toEqual(['lr', 'optimizer', 'width']);
    expect(Object.values(body.importance.values).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    expect(body.importance.method).toMatch(/eta squared/);
    const missingStudy = await app.inject({ method: 'GET', url: '/studies/nope' });
    expect(missingStudy.statusCode).toBe(404);
    expect(missingStudy.json<{ message: string }>().message).toBe("no study named 'nope'");
  });

  it('draws the history, intermediate values, parallel coordinates and importances, and lists every trial', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.route('**/*', (route) => (route.request().url().startsWith(base) ? route.continue() : route.abort()));
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${base}/dashboard/studies/quad`);
    for (const id of ['history-chart', 'intermediate-chart', 'parallel-chart', 'importance-chart']) {
      await page.waitForSelector(`#${id} svg`, { timeout: 60_000 });
    }
    expect(await page.locator('#trials tbody tr').count()).toBe(14);
    expect(await page.locator('#trials tbody tr.state-pruned').count()).toBeGreaterThan(0);
    expect(await page.locator('#trials thead th').allTextContents()).toEqual(['#', 'state', 'value', 'epochs', 'lr', 'optimizer', 'width', 'run']);
    expect(await page.locator('#summary').textContent()).toMatch(/maximize · 14 trials .*best: trial #\d+/);
    expect(await page.locator('#importance-method').textContent()).toMatch(/eta squared/);
    expect(await page.locator('#intermediate-chart').textContent()).toMatch(/pruned/);
    expect(errors).toEqual([]);
    await page.goto(`${base}/dashboard/studies`);
    await page.waitForSelector('#studies tbody tr');
    expect(await page.locator('#studies tbody tr a').textContent()).toBe('quad');
    await page.close();
  });
});
