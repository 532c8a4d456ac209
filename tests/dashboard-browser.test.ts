// The dashboard in Debian's Chromium (playwright-core): the runs table sorts and filters,
// the compare view overlays runs, and a run's page draws its curves live while a worker
// trains it. Set TORCHLET_SCREENSHOTS=DIR to keep screenshots of the pages.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardRoutes } from '../src/dashboard/plugin.js';
import { jobsRoutes } from '../src/jobs/routes.js';
import { runWorker } from '../src/jobs/worker.js';
import { loadMnist, Model, models, train } from '../src/index.js';
import { RunStore } from '../src/store/store.js';
import { ROOT } from './helpers/cli.js';
import { chromiumMissing, launchChromium } from './helpers/browser.js';

const skip = chromiumMissing();
const shots = process.env.TORCHLET_SCREENSHOTS;

let tmp: string;
let store: RunStore;
let app: FastifyInstance;
let base: string;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  if (skip) return;
  tmp = mkdtempSync(join(tmpdir(), 'torchlet-dashboard-'));
  store = await RunStore.open(join(tmp, 'runs.db'));
  const data = await loadMnist({ trainLimit: 512, testLimit: 1000 });
  try {
    for (const [name, lr, epochs, experiment] of [['careful', 0.003, 3, 'lr'], ['bold', 0.03, 3, 'lr'], ['quick', 0.01, 2, 'smoke']] as const) {
      const model = new Model(models.super_light, { seed: 2 });
      await train(model, data, { epochs, lr, maxLr: lr, seed: 2, skipTrainEval: true, store, experiment, runName: name });
      model.dispose();
    }
  } finally {
    data.train.dispose();
    data.test.dispose();
  }
  app = Fastify();
  await app.register(jobsRoutes, { store, dataRoot: join(ROOT, 'data'), pollMs: 200 });
  await app.register(dashboardRoutes);
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  // The dashboard must not reach off this server (no CDN).
  await page.route('**/*', (route) => (route.request().url().startsWith(base) ? route.continue() : route.abort()));
}, 600_000);

afterAll(async () => {
  if (skip) return;
  await browser?.close();
  await app?.close();
  await store?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const names = (): Promise<string[]> => page.$$eval('#runs tbody tr td:nth-child(2)', (cells) => cells.map((c) => c.textContent ?? ''));

describe.skipIf(skip)('the dashboard in Chromium', () => {
  it('lists runs in a table that sorts by a column and filters by text, experiment and status', async () => {
    await page.goto(`${base}/dashboard`);
    await page.waitForSelector('#runs tbody tr');
    expect(await names()).toEqual(['quick', 'bold', 'careful']);
    const best = await store.listRuns();
    const byBest = [...best].sort((a, b) => b.best!.accuracy - a.best!.accuracy).map((r) => r.name);
    await page.click('th[data-key="best"]');
    expect(await names()).toEqual(byBest);
    await page.click('th[data-key="best"]');
    expect(await names()).toEqual([...byBest].reverse());
    await page.click('th[data-key="name"]');
    expect(await names()).toEqual(['bold', 'careful', 'quick']);
    await page.fill('#filter', 'car');
    expect(await names()).toEqual(['careful']);
    await page.fill('#filter', '');
    await page.selectOption('#experiment', 'lr');
    expect(await names()).toEqual(['bold', 'careful']);
    await page.selectOption('#status', 'failed');
    expect(await names()).toEqual([]);
    await page.selectOption('#status', '');
    await page.selectOption('#experiment', '');
    if (shots) await page.screenshot({ path: join(shots, 'dashboard-runs.png') });
  });

  it('compares selected runs with their curves overlaid', async () => {
    await page.goto(`${base}/dashboard`);
    await page.waitForSelector('#runs tbody tr');
    await page.check('#runs tbody tr:nth-child(2) input[type=checkbox]');
    await page.check('#runs tbody tr:nth-child(3) input[type=checkbox]');
    await page.click('#compare');
    await page.waitForURL(/\/dashboard\/compare\?ids=/);
    await page.waitForSelector('#accuracy-chart svg');
    // One line per run in each chart, and both runs in the legend.
    expect(await page.$$eval('#accuracy-chart svg path[aria-roledescription="line mark"]', (p) => p.length)).toBe(2);
    const legend = await page.$$eval('#accuracy-chart svg g[aria-roledescription="legend"] text', (t) => t.map((x) => x.textContent ?? ''));
    expect(legend.join(' ')).toMatch(/bold \(\w{8}\).*careful \(\w{8}\)/);
    const params = await page.$$eval('#params tr td:first-child', (cells) => cells.map((c) => c.textContent));
    expect(params).toEqual(['lr', 'maxLr']);
    if (shots) await page.screenshot({ path: join(shots, 'dashboard-compare.png') });
  });

  it("draws a run's curves live, over server-sent events, while a worker trains it", async () => {
    const res = await fetch(`${base}/runs?experiment=live&name=live`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'super_light', epochs: 3, trainLimit: 1024, seed: 4, threads: 1 }),
    });
    const { id } = (await res.json()) as { id: string };
    await page.goto(`${base}/dashboard/runs/${id}`);
    await page.waitForSelector('#status.queued');
    const worker = runWorker(store, { id: 'browser-test', untilEmpty: true, heartbeatMs: 200, dataRoot: join(ROOT, 'data') });
    // The page updates itself: no reloads from here on.
    await page.waitForSelector('#status.running', { timeout: 120_000 });
    await page.waitForFunction("document.querySelectorAll('#epochs tbody tr').length >= 1", undefined, { timeout: 120_000 });
    expect(await page.$$eval('#loss-chart svg path[aria-roledescription="line mark"]', (p) => p.length)).toBeGreaterThanOrEqual(2);
    await worker;
    await page.waitForSelector('#status.finished', { timeout: 60_000 });
    await page.waitForFunction("document.querySelectorAll('#epochs tbody tr').length === 3");
    await page.waitForFunction("document.querySelectorAll('#artifacts li').length === 5");
    expect(await page.textContent('#facts')).toContain('browser-test');
    if (shots) await page.screenshot({ path: join(shots, 'dashboard-run.png'), fullPage: true });
  });
});
