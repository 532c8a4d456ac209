// The search space file of `torchlet tune`: which recipe values to search and how, the
// fixed ones, the objective, the sampler and the pruner. Everything is checked before the
// first trial, and every error names the field.
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { isModelName, models } from '../models.js';
import { categoricalDistribution, floatDistribution, intDistribution, SearchSpaceError, type Distribution } from './distributions.js';
import { MedianPruner, NopPruner, PercentilePruner, SuccessiveHalvingPruner, type Pruner } from './pruners.js';
import { GridSampler } from './samplers/grid.js';
import { RandomSampler } from './samplers/random.js';
import type { Sampler } from './samplers/sampler.js';
import { TPESampler } from './samplers/tpe.js';

/** Recipe values a search space may name, with the kind of value each takes. */
export const SEARCHABLE = {
  model: 'model',
  aug: 'boolean',
  epochs: 'int',
  batchSize: 'int',
  lr: 'positive',
  maxLr: 'positive',
  weightDecay: 'nonnegative',
  pctStart: 'fraction',
  divFactor: 'positive',
  finalDivFactor: 'positive',
  baseMomentum: 'fraction',
  maxMomentum: 'fraction',
  beta2: 'fraction',
  seed: 'int',
  // Cross-entropy against smoothed targets (below 1: all smoothing would teach nothing).
  labelSmoothing: 'smoothing',
  // Batch norm's statistics from the clean training images after every epoch.
  recalibrateBatchNorm: 'boolean',
  // Augmentation strengths (used when aug is on).
  degrees: 'nonnegative',
  translate: 'fraction',
  shear: 'nonnegative',
  distortion: 'fraction',
  perspectiveP: 'fraction',
  // ElasticTransform's alpha (0: none) and sigma.
  elasticAlpha: 'nonnegative',
  elasticSigma: 'nonnegative',
} as const;
export type SearchableName = keyof typeof SEARCHABLE;
export type RecipeValues = Partial<Record<SearchableName, string | number | boolean>>;

const Range = z
  .object({
    low: z.number(),
    high: z.number(),
    log: z.boolean().optional(),
    step: z.number().optional(),
    int: z.boolean().optional(),
  })
  .strict();
const Choices = z.object({ choices: z.array(z.union([z.string(), z.number(), z.boolean()])) }).strict();

const SpaceSchema = z
  .object({
    study: z.string().min(1).optional(),
    direction: z.enum(['maximize', 'minimize']).optional(),
    objective: z.enum(['val_accuracy', 'val_loss']).optional(),
    valSplit: z.number().int().positive().optional(),
    trainLimit: z.number().int().positive().optional(),
    trials: z.number().int().positive().optional(),
    timeout: z.number().positive().optional(),
    dataDir: z.string().optional(),
    sampler: z
      .object({
        type: z.enum(['tpe', 'random', 'grid']),
        seed: z.number().int().nonnegative().optional(),
        multivariate: z.boolean().optional(),
        constantLiar: z.boolean().optional(),
        nStartupTrials: z.number().int().nonnegative().optional(),
        nEiCandidates: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
    pruner: z
      .object({
        type: z.enum(['median', 'percentile', 'asha', 'none']),
        percentile: z.number().min(0).max(100).optional(),
        nStartupTrials: z.number().int().nonnegative().optional(),
        nWarmupSteps: z.number().int().nonnegative().optional(),
        intervalSteps: z.number().int().positive().optional(),
        minResource: z.union([z.number().int().positive(), z.literal('auto')]).optional(),
        reductionFactor: z.number().int().min(2).optional(),
      })
      .strict()
      .optional(),
    fixed: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
    params: z.record(z.string(), z.union([Range, Choices])),
  })
  .strict();

export interface TuneSpace {
  study?: string;
  direction: 'maximize' | 'minimize';
  objective: 'val_accuracy' | 'val_loss';
  valSplit: number;
  trainLimit?: number;
  trials?: number;
  timeout?: number;
  dataDir?: string;
  fixed: RecipeValues;
  params: Partial<Record<SearchableName, Distribution>>;
  makeSampler: () => Sampler;
  makePruner: () => Pruner;
  /** The file's own text, stored with the study so that a joining worker can check it runs the same search. */
  source: string;
}

function checkValue(field: string, name: SearchableName, value: unknown): void {
  const kind = SEARCHABLE[name];
  const bad = (what: string): never => {
    throw new SearchSpaceError(`${field}: ${what}, got ${JSON.stringify(value)}`);
  };
  if (kind === 'model') {
    if (typeof value !== 'string' || !isModelName(value)) bad(`must be one of ${Object.keys(models).join(', ')}`);
  } else if (kind === 'boolean') {
    if (typeof value !== 'boolean') bad('must be true or false');
  } else if (typeof value !== 'number' || !Number.isFinite(value)) bad('must be a number');
  else if (kind === 'int' && (!Number.isInteger(value) || value < (name === 'seed' ? 0 : 1))) bad(name === 'seed' ? 'must be an integer >= 0' : 'must be a positive integer');
  else if (kind === 'positive' && value <= 0) bad('must be > 0');
  else if (kind === 'nonnegative' && value < 0) bad('must be >= 0');
  else if (kind === 'fraction' && (value < 0 || value > 1)) bad('must be within [0, 1]');
  else if (kind === 'smoothing' && (value < 0 || value >= 1)) bad('must be within [0, 1)');
}

function searchable(field: string, name: string): SearchableName {
  if (!Object.hasOwn(SEARCHABLE, name)) throw new SearchSpaceError(`${field}: unknown parameter '${name}' (known: ${Object.keys(SEARCHABLE).join(', ')})`);
  return name as SearchableName;
}

/** Parses and checks a search space; `where` names the file in messages. */
export function parseSpace(raw: unknown, where: string, source = ''): TuneSpace {
  const parsed = SpaceSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new SearchSpaceError(`search space ${where} is invalid: ${issues}`);
  }
  const s = parsed.data;
  const wrap = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      throw new SearchSpaceError(`search space ${where}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  return wrap(() => {
    const fixed: RecipeValues = {};
    for (const [name, value] of Object.entries(s.fixed ?? {})) {
      const n = searchable(`fixed.${name}`, name);
      checkValue(`fixed.${name}`, n, value);
      fixed[n] = value;
    }
    const params: Partial<Record<SearchableName, Distribution>> = {};
    for (const [name, spec] of Object.entries(s.params)) {
      const field = `params.${name}`;
      const n = searchable(field, name);
      if (n in fixed) throw new SearchSpaceError(`${field}: '${name}' is both fixed and searched`);
      let d: Distribution;
      if ('choices' in spec) {
        d = categoricalDistribution(field, spec.choices);
        spec.choices.forEach((c, i) => checkValue(`${field}.choices[${i}]`, n, c));
      } else {
        const kind = SEARCHABLE[n];
        if (kind === 'model' || kind === 'boolean') throw new SearchSpaceError(`${field}: '${name}' takes choices, not a range`);
        const isInt = kind === 'int' || spec.int === true;
        if (kind === 'int' && spec.int === false) throw new SearchSpaceError(`${field}: '${name}' is an integer`);
        d = isInt
          ? intDistribution(field, spec.low, spec.high, { ...(spec.log !== undefined && { log: spec.log }), ...(spec.step !== undefined && { step: spec.step }) })
          : floatDistribution(field, spec.low, spec.high, { ...(spec.log !== undefined && { log: spec.log }), ...(spec.step !== undefined && { step: spec.step }) });
        checkValue(`${field}.low`, n, d.low);
        checkValue(`${field}.high`, n, d.high);
      }
      params[n] = d;
    }
    if (Object.keys(params).length === 0) throw new SearchSpaceError('params: name at least one parameter to search');
    const sp = s.sampler ?? { type: 'tpe' as const };
    const makeSampler = (): Sampler => {
      const seed = sp.seed !== undefined ? { seed: sp.seed } : {};
      if (sp.type === 'random') return new RandomSampler(seed);
      if (sp.type === 'grid') {
        const grid: Record<string, (string | number | boolean)[]> = {};
        for (const [name, d] of Object.entries(params)) {
          if (d.type !== 'categorical') throw new SearchSpaceError(`params.${name}: the grid sampler needs choices for every parameter`);
          grid[name] = d.choices.filter((c): c is string | number | boolean => c !== null);
        }
        return new GridSampler(grid, seed);
      }
      return new TPESampler({
        ...seed,
        ...(sp.multivariate !== undefined && { multivariate: sp.multivariate }),
        constantLiar: sp.constantLiar ?? true,
        ...(sp.nStartupTrials !== undefined && { nStartupTrials: sp.nStartupTrials }),
        ...(sp.nEiCandidates !== undefined && { nEiCandidates: sp.nEiCandidates }),
      });
    };
    makeSampler();
    const pr = s.pruner ?? { type: 'median' as const };
    const opts = {
      ...(pr.nStartupTrials !== undefined && { nStartupTrials: pr.nStartupTrials }),
      ...(pr.nWarmupSteps !== undefined && { nWarmupSteps: pr.nWarmupSteps }),
      ...(pr.intervalSteps !== undefined && { intervalSteps: pr.intervalSteps }),
    };
    const makePruner = (): Pruner => {
      if (pr.type === 'none') return new NopPruner();
      if (pr.type === 'percentile') return new PercentilePruner(pr.percentile ?? 25, opts);
      if (pr.type === 'asha') {
        return new SuccessiveHalvingPruner({
          ...(pr.minResource !== undefined && { minResource: pr.minResource }),
          ...(pr.reductionFactor !== undefined && { reductionFactor: pr.reductionFactor }),
        });
      }
      return new MedianPruner(opts);
    };
    makePruner();
    const objective = s.objective ?? 'val_accuracy';
    return {
      ...(s.study !== undefined && { study: s.study }),
      direction: s.direction ?? (objective === 'val_loss' ? 'minimize' : 'maximize'),
      objective,
      valSplit: s.valSplit ?? 10_000,
      ...(s.trainLimit !== undefined && { trainLimit: s.trainLimit }),
      ...(s.trials !== undefined && { trials: s.trials }),
      ...(s.timeout !== undefined && { timeout: s.timeout }),
      ...(s.dataDir !== undefined && { dataDir: s.dataDir }),
      fixed,
      params,
      makeSampler,
      makePruner,
      source,
    };
  });
}

/** Reads a search space from a .yaml, .yml or .json file. */
export function readSpace(path: string): TuneSpace {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SearchSpaceError(`cannot read search space '${path}': ${err instanceof Error ? err.message : String(err)}`);
  }
  const ext = extname(path).toLowerCase();
  if (!['.json', '.yaml', '.yml'].includes(ext)) throw new SearchSpaceError(`search space '${path}' must be .yaml, .yml or .json`);
  let raw: unknown;
  try {
    raw = ext === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new SearchSpaceError(`search space '${path}' is not valid ${ext === '.json' ? 'JSON' : 'YAML'}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parseSpace(raw, `'${path}'`, text);
}
