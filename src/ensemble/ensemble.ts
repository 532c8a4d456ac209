// Ensembles of trained models: hard majority vote (the Kaggle project's) or soft vote (the
// mean of probabilities). The vote itself is native (native/ensemble.cc), one
// implementation for whole datasets and for single images.
import { readFileSync } from 'node:fs';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { Dataset } from '../dataset.js';
import { Model } from '../model.js';
import { isModelName, models } from '../zoo/index.js';
import { native } from '../native.js';
import { NORMALIZATIONS, withNormalization, type NormalizationName } from '../recipe.js';

export type Vote = 'hard' | 'soft';

export interface EnsembleMember {
  /** How the member is named in reports (default: model name, numbered when repeated). */
  name: string;
  model: Model;
}

export interface EnsembleEvaluation {
  accuracy: number;
  correct: number;
  count: number;
  predictions: Uint8Array;
  /** Per image, per class: the mean probability (soft) or the share of votes (hard). */
  probabilities: Float32Array;
  members: { name: string; accuracy: number; predictions: Uint8Array }[];
  seconds: number;
}

/** Per image: the vote's winner, its scores (share of votes, or mean probability) and each member's digit (members x images). */
export interface EnsembleScores {
  predictions: Uint8Array;
  probabilities: Float32Array;
  votes: Uint8Array;
}

export interface EnsemblePrediction {
  digit: number;
  probabilities: number[];
  /** Each member's own digit. */
  votes: number[];
}

export class Ensemble {
  readonly name: string;
  readonly vote: Vote;
  readonly members: readonly EnsembleMember[];

  constructor(members: (Model | EnsembleMember)[], options: { vote?: Vote; name?: string } = {}) {
    if (members.length === 0) throw new RangeError('an ensemble needs at least one member');
    const vote = options.vote ?? 'hard';
    if (vote !== 'hard' && vote !== 'soft') throw new RangeError(`vote must be 'hard' or 'soft', got '${String(vote)}'`);
    const counts = new Map<string, number>();
    this.members = members.map((m) => {
      if (!(m instanceof Model)) return m;
      const n = (counts.get(m.spec.name) ?? 0) + 1;
      counts.set(m.spec.name, n);
      return { name: n === 1 ? m.spec.name : `${m.spec.name}#${n}`, model: m };
    });
    const input = JSON.stringify(pickShape(this.members[0]?.model));
    for (const m of this.members) {
      if (JSON.stringify(pickShape(m.model)) !== input) throw new RangeError(`ensemble member '${m.name}' takes other inputs than '${this.members[0]?.name}'`);
    }
    this.vote = vote;
    this.name = options.name ?? 'ensemble';
  }

  /** Builds and loads every member from `{ model, weights, normalize? }` entries. */
  static fromFiles(entries: EnsembleEntry[], options: { vote?: Vote; name?: string; device?: string } = {}): Ensemble {
    const built: EnsembleMember[] = [];
    try {
      for (const e of entries) {
        if (!isModelName(e.model)) throw new RangeError(`unknown model '${e.model}' (choose one of ${Object.keys(models).join(', ')})`);
        const spec = e.normalize !== undefined ? withNormalization(models[e.model], e.normalize) : models[e.model];
        const model = Model.fromFile(spec, e.weights, { ...(options.device !== undefined && { device: options.device }) });
        built.push({ name: e.name ?? e.model, model });
      }
      const counts = new Map<string, number>();
      for (const m of built) counts.set(m.name, (counts.get(m.name) ?? 0) + 1);
      const seen = new Map<string, number>();
      for (const m of built) {
        if ((counts.get(m.name) ?? 0) > 1) {
          const n = (seen.get(m.name) ?? 0) + 1;
          seen.set(m.name, n);
          m.name = `${m.name}#${n}`;
        }
      }
      return new Ensemble(built, options);
    } catch (err) {
      for (const m of built) m.model.dispose();
      throw err;
    }
  }

  numParams(): number {
    return this.members.reduce((n, m) => n + m.model.numParams(), 0);
  }

  /** Every member over every image, one native pass per batch, off the JS thread. */
  async evaluate(data: Dataset): Promise<EnsembleEvaluation> {
    const r = await native().ensembleEvaluate(
      this.members.map((m) => m.model.handle),
      data.handle,
      { vote: this.vote },
    );
    const n = r.count;
    return {
      accuracy: n === 0 ? 0 : r.correct / n,
      correct: r.correct,
      count: n,
      predictions: r.predictions,
      probabilities: r.probabilities,
      members: this.members.map((m, k) => ({ name: m.name, accuracy: n === 0 ? 0 : (r.memberCorrect[k] ?? 0) / n, predictions: r.memberPredictions.subarray(k * n, (k + 1) * n) })),
      seconds: r.seconds,
    };
  }

  /** The vote over images given as uint8 (0-255) or float (0-1) pixels, row-major: per image, the scores of `evaluate`. */
  scores(pixels: Uint8Array | Float32Array): EnsembleScores {
    return this.combine(this.members.map((m) => m.model.logProbs(pixels)), pixels);
  }

  /** `scores` with every member's pass on a libuv worker, off the JS thread (for servers); the members run at once. */
  async scoresAsync(pixels: Uint8Array | Float32Array): Promise<EnsembleScores> {
    return this.combine(await Promise.all(this.members.map((m) => m.model.logProbsAsync(pixels))), pixels);
  }

  private combine(outs: Float32Array[], pixels: Uint8Array | Float32Array): EnsembleScores {
    const classes = outs[0] === undefined ? 0 : outs[0].length / Math.max(1, imagesIn(pixels, this.members[0]?.model));
    const stacked = new Float32Array(outs.reduce((n, o) => n + o.length, 0));
    let at = 0;
    for (const o of outs) {
      stacked.set(o, at);
      at += o.length;
    }
    const { predictions, probabilities } = native().ensembleVote(stacked, this.members.length, classes, this.vote);
    const n = predictions.length;
    const votes = new Uint8Array(this.members.length * n);
    outs.forEach((o, k) => {
      for (let i = 0; i < n; i++) {
        let best = 0;
        for (let c = 1; c < classes; c++) if ((o[i * classes + c] ?? -Infinity) > (o[i * classes + best] ?? -Infinity)) best = c;
        votes[k * n + i] = best;
      }
    });
    return { predictions, probabilities, votes };
  }

  /** Classifies one image. */
  predict(pixels: Uint8Array | Float32Array): EnsemblePrediction {
    const first = this.members[0]?.model;
    if (first === undefined || imagesIn(pixels, first) !== 1) throw new RangeError('predict takes one image; use scores() for a batch');
    const { predictions, probabilities, votes } = this.scores(pixels);
    return { digit: predictions[0] ?? 0, probabilities: Array.from(probabilities), votes: Array.from(votes) };
  }

  dispose(): void {
    for (const m of this.members) m.model.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function pickShape(model: Model | undefined): unknown {
  if (model === undefined) return undefined;
  const { channels, height, width } = model.spec.input;
  return [channels, height, width];
}

function imagesIn(pixels: Uint8Array | Float32Array, model: Model | undefined): number {
  if (model === undefined) return 0;
  const { channels, height, width } = model.spec.input;
  const per = channels * height * width;
  if (pixels.length === 0 || pixels.length % per !== 0) throw new RangeError(`pixels holds ${pixels.length} values, not a multiple of one image's ${per}`);
  return pixels.length / per;
}

export interface EnsembleEntry {
  model: string;
  weights: string;
  name?: string;
  normalize?: NormalizationName;
}

const NORMALIZATION_NAMES = Object.keys(NORMALIZATIONS) as [NormalizationName, ...NormalizationName[]];

const EnsembleFileSchema = z
  .object({
    name: z.string().min(1),
    description: z.string(),
    vote: z.enum(['hard', 'soft']),
    members: z
      .array(z.object({ model: z.string(), weights: z.string(), name: z.string().min(1), normalize: z.enum(NORMALIZATION_NAMES) }).partial({ name: true, normalize: true }).strict())
      .min(1),
  })
  .partial({ name: true, description: true, vote: true })
  .strict();

export interface EnsembleFile {
  name?: string;
  vote?: Vote;
  members: EnsembleEntry[];
}

/** Reads an ensemble's YAML (or JSON) file; weights paths are relative to the file. */
export function readEnsembleFile(path: string): EnsembleFile {
  let raw: unknown;
  const text = readFileSync(path, 'utf8');
  try {
    raw = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new RangeError(`ensemble file '${path}' is not valid ${extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const parsed = EnsembleFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new RangeError(`ensemble file '${path}' is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ')}`);
  }
  const base = dirname(path);
  return {
    ...parsed.data,
    members: parsed.data.members.map((m) => ({ ...m, weights: isAbsolute(m.weights) ? m.weights : resolve(base, m.weights) })),
  };
}

/** `MODEL=WEIGHTS` (the CLI's --member), optionally `MODEL=WEIGHTS@NORMALIZATION`. */
export function parseMember(spec: string): EnsembleEntry {
  const m = /^([^=]+)=(.+?)(?:@([\w-]+))?$/.exec(spec);
  if (!m?.[1] || !m[2]) throw new RangeError(`--member must be MODEL=WEIGHTS (e.g. super_light=weights/super_light.pt), got '${spec}'`);
  const normalize = m[3];
  if (normalize !== undefined && !Object.hasOwn(NORMALIZATIONS, normalize)) {
    throw new RangeError(`--member '${spec}': unknown normalisation '${normalize}' (choose one of ${NORMALIZATION_NAMES.join(', ')})`);
  }
  return { model: m[1], weights: m[2], ...(normalize !== undefined && { normalize: normalize as NormalizationName }) };
}
