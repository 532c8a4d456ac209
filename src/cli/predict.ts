// `torchlet predict`: classifies image files (and the images in folders) with a model's
// weights, the released ones by default.
import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_MAX_PIXELS, ImageError, preprocessImage, type BBox } from '../image/index.js';
import { isModelName as isReleased } from '../models.js';
import { models, type ModelName } from '../zoo/index.js';
import type { NormalizationName } from '../recipe.js';
import { releasedWeightsPath } from '../weights.js';
import type { Vote } from '../ensemble/index.js';
import { InputError, asInput, message, positiveInt } from './common.js';
import { buildScorer, disposeScorer } from './evaluate.js';
import { runWeights, type RunWeights } from './run-weights.js';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif']);
const CLASSES = 10;

interface PredictFlags {
  model: ModelName;
  member?: string[];
  ensemble?: string;
  vote?: Vote;
  weights?: string;
  run?: string;
  store?: string;
  /** From --run: the normalisation the run trained with. */
  normalize?: NormalizationName;
  json?: boolean;
  top: number;
  device: string;
  maxPixels: number;
}

interface Classified {
  file: string;
  digit: number;
  confidence: number;
  top: { digit: number; probability: number }[];
  probabilities: number[];
  inverted: boolean;
  bbox: BBox | null;
}

interface Failed {
  file: string;
  error: string;
  code: string;
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('classify digits in image files (PNG, JPEG, WebP, GIF) or folders of them')
    .argument('<images...>', 'image files, or folders whose images (by extension, recursively) are all classified')
    .addOption(new Option('--model <name>', 'architecture').choices(Object.keys(models)).default('super_light'))
    .option('--weights <file>', "a state_dict for --model (default: the model's released weights, shipped with torchlet)")
    .option('--run <id>', "the best weights of a recorded run (and its model) instead of --weights")
    .option('--store <url>', 'the run store of --run (default: TORCHLET_STORE or ./torchlet-runs/runs.db)')
    .option('--member <model=weights>', 'classify by an ensemble: a member MODEL=WEIGHTS[@NORMALISATION] (repeat for each)', (v: string, acc: string[] = []) => [...acc, v])
    .option('--ensemble <file>', 'classify by an ensemble described in YAML or JSON')
    .addOption(new Option('--vote <kind>', "ensemble vote: 'hard' (default) or 'soft'").choices(['hard', 'soft']))
    .option('--top <k>', 'how many of the likeliest digits to show', topK, 3)
    .option('--json', 'print one JSON array with every result')
    .option('--device <device>', "'cpu', 'cuda', 'cuda:N' or 'auto'", 'cpu')
    .option('--max-pixels <n>', 'refuse images whose header declares more pixels', positiveInt('--max-pixels'), DEFAULT_MAX_PIXELS)
    .action(async (images: string[], flags: PredictFlags) => {
      await runPredict(images, flags);
    });
}

function topK(value: string): number {
  const k = positiveInt('--top')(value);
  if (k > CLASSES) throw new InvalidArgumentError(`--top must be at most ${CLASSES}, got ${k}`);
  return k;
}

/** Image files under `dir`, by extension. Symlinked folders are not followed, so a link cycle cannot loop. */
function imagesIn(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...imagesIn(path));
    else if (IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase()) && isFile(path)) found.push(path);
  }
  return found;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Files as given; folders expanded to the images inside them, sorted. */
export function expandInputs(inputs: string[]): string[] {
  const files: string[] = [];
  for (const input of inputs) {
    const stat = asInput(`cannot read '${input}'`, () => statSync(input));
    if (!stat.isDirectory()) {
      files.push(input);
      continue;
    }
    const found = imagesIn(input).sort();
    if (found.length === 0) throw new InputError(`folder '${input}' holds no images (${[...IMAGE_EXTENSIONS].join(', ')})`);
    files.push(...found);
  }
  return files;
}

async function runPredict(inputs: string[], given: PredictFlags): Promise<void> {
  const files = expandInputs(inputs);
  let fromRun: RunWeights | undefined;
  if (given.run !== undefined) {
    if (given.weights !== undefined || given.member !== undefined || given.ensemble !== undefined) {
      throw new InputError('give --run, or --weights / an ensemble, not both');
    }
    fromRun = await runWeights(given.run, given.store, undefined);
  }
  try {
    await classifyFiles(files, fromRun ? { ...given, model: fromRun.model, weights: fromRun.path, ...(fromRun.normalize !== undefined && { normalize: fromRun.normalize }) } : given);
  } finally {
    fromRun?.dispose();
  }
}

async function classifyFiles(files: string[], flags: PredictFlags): Promise<void> {
  const byEnsemble = (flags.member ?? []).length > 0 || flags.ensemble !== undefined;
  if (!byEnsemble && flags.weights === undefined && !isReleased(flags.model)) throw new InputError(`--model ${flags.model} has no released weights; pass --weights <file>`);
  // An ensemble replaces --model/--weights (whose default here is the model's released weights).
  const scorer = byEnsemble
    ? buildScorer({ ...flags, model: undefined, weights: undefined })
    : buildScorer({ ...flags, weights: flags.weights ?? releasedWeightsPath(flags.model as Parameters<typeof releasedWeightsPath>[0]) });
  try {
    const ok: { file: string; pixels: Uint8Array; inverted: boolean; bbox: BBox | null }[] = [];
    const failed: Failed[] = [];
    for (const file of files) {
      try {
        const r = await preprocessImage(file, { maxPixels: flags.maxPixels });
        ok.push({ file, pixels: r.pixels, inverted: r.inverted, bbox: r.bbox });
      } catch (err) {
        if (!(err instanceof ImageError) && !isFsError(err)) throw err;
        failed.push({ file, error: message(err), code: err instanceof ImageError ? err.code : 'unreadable' });
      }
    }

    const results: Classified[] = [];
    if (ok.length > 0) {
      // One forward pass for the whole batch.
      const batch = new Uint8Array(ok.length * 784);
      ok.forEach((r, i) => batch.set(r.pixels, i * 784));
      // An ensemble's scores are its vote (shares of votes, or mean probabilities), and its
      // digit the vote's winner, tie-break included.
      const voted = scorer.kind === 'ensemble' ? scorer.ensemble.scores(batch) : undefined;
      const scores = voted?.probabilities ?? (scorer.kind === 'model' ? (await scorer.model.logProbsAsync(batch)).map(Math.exp) : new Float32Array());
      ok.forEach((r, i) => {
        const probabilities = Array.from(scores.subarray(i * CLASSES, (i + 1) * CLASSES));
        const ranked = probabilities.map((probability, digit) => ({ digit, probability })).sort((a, b) => b.probability - a.probability);
        const winner = voted?.predictions[i];
        const best = winner !== undefined ? { digit: winner, probability: probabilities[winner] ?? 0 } : (ranked[0] ?? { digit: 0, probability: 0 });
        results.push({
          file: r.file,
          digit: best.digit,
          confidence: best.probability,
          top: ranked.slice(0, flags.top),
          probabilities,
          inverted: r.inverted,
          bbox: r.bbox,
        });
      });
    }

    if (flags.json) {
      process.stdout.write(`${JSON.stringify([...results, ...failed], null, 2)}\n`);
    } else {
      const width = Math.max(...results.map((r) => r.file.length));
      for (const r of results) {
        const top = r.top.map((t) => `${t.digit} ${pct(t.probability)}`).join(', ');
        process.stdout.write(`${r.file.padEnd(width)}  ${r.digit}  (${pct(r.confidence)})  top ${flags.top}: ${top}\n`);
      }
    }
    for (const f of failed) process.stderr.write(`torchlet: ${f.file}: ${f.error}\n`);
    if (failed.length > 0) process.exitCode = 2;
  } finally {
    disposeScorer(scorer);
  }
}

function pct(p: number): string {
  return `${(100 * p).toFixed(p > 0.9995 || p < 0.0005 ? 1 : 2)}%`;
}

function isFsError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}
