// The study pages of the dashboard (as optuna-dashboard offers): a JSON API over the
// studies in the run store, and a page per study with the trials table, the optimization
// history, the intermediate values per trial (pruned trials marked), parallel coordinates
// and a parameter-importance estimate. It reuses the dashboard's stylesheet and its
// vendored Vega builds (served by src/dashboard/plugin.ts).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import type {} from '@fastify/swagger';
import { packageRoot } from '../package-root.js';
import type { RunStore } from '../store/store.js';
import { IMPORTANCE_METHOD, parameterImportance } from './importance.js';
import { SqlTuneStorage } from './sql-storage.js';
import { bestOf } from './study.js';
import type { FrozenTrial, TrialState } from './types.js';

export interface StudyRoutesOptions {
  store: RunStore;
}

function asset(name: string): Buffer {
  const root = packageRoot();
  const path = root === undefined ? undefined : join(root, 'src', 'tune', 'assets', name);
  if (path === undefined || !existsSync(path)) throw new Error(`the study page's files are missing (looked for ${path ?? `src/tune/assets/${name}`})`);
  return readFileSync(path);
}

function trialJson(t: FrozenTrial, runId: string | undefined) {
  return {
    number: t.number,
    state: t.state,
    value: t.value,
    params: t.params,
    intermediate: [...t.intermediate].map(([step, v]) => [step, Number.isFinite(v) ? v : null]),
    runId: runId ?? null,
    startedAt: t.startedAt?.toISOString() ?? null,
    completedAt: t.completedAt?.toISOString() ?? null,
  };
}

const NAME = { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1, maxLength: 200 } } } as const;

export const studyRoutes: FastifyPluginAsync<StudyRoutesOptions> = async (app, options) => {
  const storage = new SqlTuneStorage(options.store);
  const html = asset('study.html');
  const list = asset('studies.html');
  const js = asset('study.js');

  app.get('/studies', { schema: { summary: 'studies of torchlet tune, with their trial counts and best value', tags: ['studies'] } }, async () => {
    const studies = await storage.listStudies();
    return Promise.all(
      studies.map(async (s) => {
        const trials = await storage.getTrials(s.id);
        const counts: Partial<Record<TrialState, number>> = {};
        for (const t of trials) counts[t.state] = (counts[t.state] ?? 0) + 1;
        return { name: s.name, direction: s.direction, createdAt: s.createdAt.toISOString(), trials: trials.length, counts, best: bestOf(trials, s.direction)?.value ?? null };
      }),
    );
  });

  app.get<{ Params: { name: string } }>('/studies/:name', { schema: { params: NAME, summary: "a study's trials, best trial and parameter importances", tags: ['studies'] } }, async (req, reply) => {
    const study = await storage.getStudy(req.params.name);
    if (!study) return reply.code(404).send({ statusCode: 404, error: 'not_found', message: `no study named '${req.params.name}'` });
    const trials = await storage.getTrials(study.id);
    const runs = await storage.trialRuns(study.id);
    const best = bestOf(trials, study.direction);
    return {
      name: study.name,
      direction: study.direction,
      createdAt: study.createdAt.toISOString(),
      space: typeof study.userAttrs.space === 'string' ? study.userAttrs.space : null,
      bestTest: study.userAttrs.best_test ?? null,
      best: best ? best.number : null,
      trials: trials.map((t) => trialJson(t, runs.get(t.number))),
      importance: { method: IMPORTANCE_METHOD, values: parameterImportance(trials) },
    };
  });

  const page = (body: Buffer) => async (_req: unknown, reply: import('fastify').FastifyReply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(body);
  app.get('/dashboard/studies', { schema: { hide: true } }, page(list));
  app.get('/dashboard/studies/:name', { schema: { hide: true } }, page(html));
  app.get('/dashboard/study-assets/study.js', { schema: { hide: true } }, async (_req, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(js));
};
