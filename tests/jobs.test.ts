// Training over HTTP: the run routes and the dashboard on their own Fastify instance over
// an SQLite store, with a worker in this process training what POST /runs queued.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardRoutes } from '../src/dashboard/plugin.js';
import { jobsRoutes } from '../src/jobs/routes.js';
import { runWorker } from '../src/jobs/worker.js';
import { RunStore } from '../src/store/store.js';
import { ROOT, cli } from './helpers/cli.js';

let tmp: string;
let store: RunStore;
let app: FastifyInstance;
let base: string;
const dataRoot = join(ROOT, 'data');

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'torchlet-jobs-'));
  store = await RunStore.open(join(tmp, 'runs.db'));
  app = Fastify();
  await app.register(jobsRoutes, { store, dataRoot, pollMs: 100 });
  await app.register(dashboardRoutes);
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app.close();
  await store.close();
  rmSync(tmp, { recursive: true, force: true });
});

const TINY = { model: 'super_light', epochs: 2, trainLimit: 512, seed: 7, threads: 1 };

async function post(body: string | object, type = 'application/json', query = ''): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}/runs${query}`, { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

interface SseEvent {
  event: string;
  data: unknown;
}

/** Reads a server-sent event stream to its end. */
async function readEvents(url: string): Promise<SseEvent[]> {
  const res = await fetch(url);
  expect(res.headers.get('content-type')).toBe('text/event-stream');
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.includes('event: '))
    .map((block) => ({
      event: /^event: (.*)$/m.exec(block)![1]!,
      data: JSON.parse(/^data: (.*)$/m.exec(block)![1]!) as unknown,
    }));
}

describe('POST /runs', () => {
  it('queues a JSON or YAML config and answers 202 with the run id', async () => {
    const json = await post(TINY, 'application/json', '?experiment=http&name=json-run');
    expect(json.status).toBe(202);
    expect(json.body).toMatchObject({ status: 'queued', url: `/runs/${String(json.body.id)}` });
    const yaml = await post('model: lightest\nepochs: 1\ntrainLimit: 256\n', 'application/yaml');
    expect(yaml.status).toBe(202);
    const got = (await (await fetch(`${base}/runs/${String(yaml.body.id)}`)).json()) as { run: { status: string; config: object; name: string } };
    expect(got.run).toMatchObject({ status: 'queued', config: { model: 'lightest', epochs: 1, trainLimit: 256 }, name: 'lightest-noaug' });
    // Both are cancelled again so the worker below trains only its own run.
    for (const id of [json.body.id, yaml.body.id]) expect((await fetch(`${base}/runs/${String(id)}/cancel`, { method: 'POST' })).status).toBe(200);
    expect((await store.getRun(String(json.body.id))).status).toBe('cancelled');
  });

  it.each([
    [{ ...TINY, epochs: -1 }, 'application/json', 'epochs'],
    [{ ...TINY, learningRate: 0.1 }, 'application/json', 'learningRate'],
    [{ ...TINY, model: 'resnet' }, 'application/json', 'model'],
    [{ ...TINY, dataDir: '../../etc' }, 'application/json', 'dataDir'],
    [{ ...TINY, dataDir: '/tmp' }, 'application/json', 'dataDir'],
    [{ ...TINY, out: '/etc/passwd' }, 'application/json', 'out'],
    [{ ...TINY, aug: 'yes' }, 'application/json', 'aug'],
    [{ ...TINY, scheduler: { type: 'step', stepsize: 3 } }, 'application/json', 'scheduler.stepsize'],
    [{ ...TINY, optimizer: 'lamb' }, 'application/json', 'optimizer'],
    [{ ...TINY, earlyStopping: { patience: 1, metric: 'valF1' } }, 'application/json', 'earlyStopping.metric'],
    [{ ...TINY, dataset: 'kaggle:../../etc' }, 'application/json', 'dataset'],
    [{ ...TINY, dataset: 'cifar10' }, 'application/json', 'dataset'],
    ['model: [unclosed', 'application/yaml', '(text)'],
    ['[1, 2]', 'application/json', '(top level)'],
  ])('refuses a bad config with a 400 naming the field (%j)', async (body, type, field) => {
    const r = await post(body, type);
    expect(r.status, JSON.stringify(r.body)).toBe(400);
    expect(r.body.error).toBe('invalid_config');
    expect((r.body.fields as { field: string }[]).map((f) => f.field)).toContain(field);
    if (!field.startsWith('(')) expect(String(r.body.message)).toContain(field);
  });

  it('refuses other media types, oversized bodies and bad ids without a 500', async () => {
    expect((await post('model: x', 'text/csv')).status).toBe(415);
    expect((await post(`model: super_light\n# ${'x'.repeat(70 * 1024)}\n`, 'application/yaml')).status).toBe(413);
    expect((await fetch(`${base}/runs/not-an-id`)).status).toBe(400);
    expect((await fetch(`${base}/runs/abcdef12`)).status).toBe(404);
    expect((await fetch(`${base}/runs/abcdef12/cancel`, { method: 'POST' })).status).toBe(404);
  });
});

describe('the schema of torchlet train --config', () => {
  // A project recipe: every part of the schema that the CLI's config files use.
  const RECIPE = {
    description: 'the early-stopping project, shortened',
    model: 'lightest',
    augment: 'rotate-translate',
    epochs: 2,
    batchSize: 64,
    lr: 0.002,
    optimizer: { type: 'adam', betas: [0.9, 0.99] },
    scheduler: { type: 'step', stepSize: 1, gamma: 0.5 },
    earlyStopping: { patience: 1, metric: 'valLoss', restoreBest: true },
    normalize: 'minus1-1',
    valSplit: 0.2,
    trainLimit: 1000,
    seed: 9,
    threads: 1,
  };

  it('a worker trains a POSTed recipe to the same weights, byte for byte, as torchlet train --config', async () => {
    const posted = await post(RECIPE, 'application/json', '?experiment=schema&name=recipe');
    expect(posted.status, JSON.stringify(posted.body)).toBe(202);
    await runWorker(store, { id: 'schema-worker', untilEmpty: true, dataRoot });
    const run = await store.getRun(String(posted.body.id));
    expect(run.status, run.error ?? '').toBe('finished');

    const dir = mkdtempSync(join(tmp, 'cli-'));
    const file = join(dir, 'recipe.json');
    writeFileSync(file, JSON.stringify(RECIPE));
    const r = await cli(['train', '--config', file, '--out', join(dir, 'best.pt'), '--no-track'], { TORCHLET_LOG_DIR: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/adam \+ step/);
    const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
    expect(sha(readFileSync(join(dir, 'best.pt')))).toBe(sha((await store.artifact(run.id, 'best.pt'))!.data));
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('epoch'));
    expect(await store.epochs(run.id)).toHaveLength(lines.length);
    // Two trainings and a CLI start: seconds on an idle machine, minutes on a loaded one.
  }, 300_000);
});

describe('a queued run, trained by a worker', () => {
  it('trains to the end with its progress streamed as server-sent events', async () => {
    const { body } = await post(TINY, 'application/json', '?experiment=http&name=streamed');
    const id = String(body.id);
    const events = readEvents(`${base}/runs/${id}/events`);
    await runWorker(store, { id: 'test-worker', untilEmpty: true, heartbeatMs: 100, dataRoot });
    const seen = await events;
    const kinds = seen.map((e) => e.event);
    expect(kinds[0]).toBe('run');
    expect(kinds.at(-1)).toBe('end');
    expect(seen.filter((e) => e.event === 'epoch').map((e) => (e.data as { epoch: number }).epoch)).toEqual([1, 2]);
    expect(seen.filter((e) => e.event === 'status').map((e) => (e.data as { status: string }).status)).toContain('finished');
    expect(seen.at(-1)!.data).toEqual({ status: 'finished' });

    const got = (await (await fetch(`${base}/runs/${id}`)).json()) as { run: { status: string; worker: string; best: { accuracy: number } }; epochs: unknown[]; artifacts: { name: string; sha256: string }[] };
    expect(got.run).toMatchObject({ status: 'finished', worker: 'test-worker' });
    expect(got.epochs).toHaveLength(2);
    expect(got.artifacts.map((a) => a.name)).toEqual(['best.pt', 'checkpoint.ckpt', 'curves.png', 'report.json', 'train.log']);
    const best = await fetch(`${base}/runs/${id}/artifacts/best.pt`);
    expect(best.status).toBe(200);
    const bytes = Buffer.from(await best.arrayBuffer());
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(got.artifacts[0]!.sha256);
    const report = (await (await fetch(`${base}/runs/${id}/artifacts/report.json`)).json()) as { accuracy: number };
    expect(report.accuracy).toBe(got.run.best.accuracy);
    // A finished run's stream is its whole history at once.
    expect((await readEvents(`${base}/runs/${id}/events`)).map((e) => e.event)).toEqual(['run', 'epoch', 'epoch', 'end']);
    // Delete hides it; gc removes it.
    expect((await fetch(`${base}/runs/${id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(`${base}/runs/${id}`)).status).toBe(404);
  });

  it('a config the worker cannot train ends as failed, with the reason', async () => {
    // Queued straight into the store (as a library user could), past the HTTP checks.
    const run = await store.createRun({ config: { ...TINY, dataDir: '../../etc' }, experiment: 'http' });
    await runWorker(store, { id: 'test-worker', untilEmpty: true, dataRoot });
    const failed = await store.getRun(run.id);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/dataDir: must name a folder under the allowed data directory/);
  });
});

describe('the dashboard', () => {
  it('serves its pages and the Vega libraries from this server', async () => {
    for (const path of ['/dashboard', '/dashboard/runs/abcdef12', '/dashboard/compare?ids=a,b']) {
      const res = await fetch(`${base}${path}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/html/);
      expect(await res.text()).not.toMatch(/https?:\/\/(?!vega\.github\.io\/schema)/);
    }
    for (const file of ['dashboard.js', 'dashboard.css', 'vega.min.js', 'vega-lite.min.js', 'vega-embed.min.js']) {
      const res = await fetch(`${base}/dashboard/assets/${file}`);
      expect(res.status, file).toBe(200);
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    }
    expect((await fetch(`${base}/dashboard/assets/index.html`)).status).toBe(404);
    expect((await fetch(`${base}/dashboard/assets/..%2Fplugin.ts`)).status).toBe(404);
  });
});
