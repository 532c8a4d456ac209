// `torchlet serve` with the run store: the runs API, the dashboard and /predict?run=ID on
// the serving app itself (its token rule and OpenAPI document included), over SQLite, with
// a worker in this process training what POST /runs queued.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Model } from '../../src/model.js';
import { models } from '../../src/models.js';
import { withNormalization } from '../../src/recipe.js';
import { dashboardRoutes } from '../../src/dashboard/plugin.js';
import { jobsRoutes } from '../../src/jobs/routes.js';
import { runModels } from '../../src/jobs/run-models.js';
import { runWorker } from '../../src/jobs/worker.js';
import { buildServer } from '../../src/serve/server.js';
import { ModelRegistry } from '../../src/serve/registry.js';
import { loadServedModel } from '../../src/serve/models.js';
import { RunStore } from '../../src/store/store.js';
import { ROOT } from '../helpers/cli.js';
import { mnistDigits } from './helpers.js';

const TOKEN = 'a-token-of-sixteen-chars';
const dataRoot = join(ROOT, 'data');
const TINY = { model: 'lightest', epochs: 1, trainLimit: 2000, seed: 3, threads: 1 };
// Trained on [-1, 1] inputs: the served model must normalise as the run did.
const NORMALISED = { ...TINY, normalize: 'minus1-1' };
let tmp: string;
let store: RunStore;
let registry: ModelRegistry;

async function serve(options: { host?: string; token?: string }): Promise<FastifyInstance> {
  return buildServer({
    registry,
    rateLimit: false,
    ...options,
    runModel: runModels(store, registry, { max: 2 }),
    plugins: [
      async (app) => {
        await app.register(jobsRoutes, { store, dataRoot, pollMs: 100 });
        await app.register(dashboardRoutes);
      },
    ],
  });
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'torchlet-serve-runs-'));
  store = await RunStore.open(join(tmp, 'runs.db'));
  registry = new ModelRegistry();
  registry.add(loadServedModel('super_light'));
});
afterAll(async () => {
  await registry.close();
  await store.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('torchlet serve with a run store', () => {
  it('queues a run over POST /runs, trains it, and answers /predict?run=ID with its best weights', async () => {
    const app = await serve({});
    try {
      const queued = await app.inject({ method: 'POST', url: '/runs?name=served', payload: NORMALISED });
      expect(queued.statusCode, queued.body).toBe(202);
      const id = (queued.json() as { id: string }).id;
      const digits = await mnistDigits([0, 1, 2, 3, 4, 5, 6, 7]);
      const ask = (run: string) => app.inject({ method: 'POST', url: `/predict?run=${run}&image=false`, payload: { pixels: Array.from(digits[0]!.pixels) } });
      // Not trained yet: a 409 that says so, not a 500.
      const early = await ask(id);
      expect(early.statusCode).toBe(409);
      expect(early.json()).toMatchObject({ error: 'run_not_finished' });

      await runWorker(store, { id: 'test-worker', untilEmpty: true, dataRoot });
      expect((await store.getRun(id)).status).toBe('finished');
      // The served answers are those of the run's best.pt, loaded here by the library with its normalisation.
      const file = join(tmp, 'best.pt');
      writeFileSync(file, (await store.artifact(id, 'best.pt'))!.data);
      const reference = Model.fromFile(withNormalization(models.lightest, 'minus1-1'), file);
      for (const d of digits) {
        const r = await app.inject({ method: 'POST', url: `/predict?run=${id.slice(0, 8)}&image=false`, payload: { pixels: Array.from(d.pixels) } });
        expect(r.statusCode, r.body).toBe(200);
        const body = r.json() as { digit: number; model: string; probabilities: number[] };
        expect(body.model).toBe(`run-${id.slice(0, 12)}`);
        const expected = Array.from(reference.logProbs(d.pixels), Math.exp);
        expect(body.digit).toBe(expected.indexOf(Math.max(...expected)));
        body.probabilities.forEach((p, k) => expect(p).toBeCloseTo(expected[k]!, 5));
      }
      reference.dispose();
      const served = (await app.inject('/models')).json() as { models: { name: string; source: string }[] };
      expect(served.models.map((m) => m.name)).toContain(`run-${id.slice(0, 12)}`);

      expect((await ask('abcdef12')).statusCode).toBe(404);
      expect((await app.inject({ method: 'POST', url: `/predict?run=${id}&model=super_light`, payload: { pixels: Array.from(digits[0]!.pixels) } })).statusCode).toBe(400);
      expect((await ask('not-hex')).statusCode).toBe(400);
      expect((await app.inject('/dashboard')).statusCode).toBe(200);
      expect((await app.inject(`/runs/${id}`)).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  it('documents the run routes and ?run= in its OpenAPI document', async () => {
    const app = await serve({});
    try {
      const doc = (await app.inject('/openapi.json')).json() as { paths: Record<string, Record<string, { parameters?: { name: string }[] }>> };
      for (const path of ['/runs', '/runs/{id}', '/runs/{id}/events', '/runs/{id}/cancel', '/runs/{id}/artifacts/{name}']) expect(Object.keys(doc.paths)).toContain(path);
      expect(doc.paths['/predict']!.post!.parameters!.map((p) => p.name)).toContain('run');
    } finally {
      await app.close();
    }
  });

  it('off loopback, starting or deleting work needs the token; reading does not', async () => {
    const app = await serve({ host: '0.0.0.0', token: TOKEN });
    try {
      expect((await app.inject({ method: 'POST', url: '/runs', payload: TINY })).statusCode).toBe(401);
      const run = await store.createRun({ config: TINY, name: 'guarded' });
      expect((await app.inject({ method: 'POST', url: `/runs/${run.id}/cancel` })).statusCode).toBe(401);
      expect((await app.inject({ method: 'DELETE', url: `/runs/${run.id}` })).statusCode).toBe(401);
      expect((await app.inject(`/runs/${run.id}`)).statusCode).toBe(200);
      expect((await app.inject('/dashboard')).statusCode).toBe(200);
      const auth = { authorization: `Bearer ${TOKEN}` };
      expect((await app.inject({ method: 'POST', url: `/runs/${run.id}/cancel`, headers: auth })).statusCode).toBe(200);
      const posted = await app.inject({ method: 'POST', url: '/runs', payload: TINY, headers: auth });
      expect(posted.statusCode).toBe(202);
      expect((await app.inject({ method: 'POST', url: `/runs/${(posted.json() as { id: string }).id}/cancel`, headers: auth })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});
