// Registry entries for torchlet's own architectures: a Model loaded from weights, run
// through Model.logProbsAsync so that inference stays off the event loop; and an ensemble
// file, its members run the same way and combined by the ensemble's own vote.
import { basename, extname } from 'node:path';
import { Ensemble, readEnsembleFile } from '../ensemble/index.js';
import { toOnnx } from '../export/onnx.js';
import { Model } from '../model.js';
import { isModelName as isReleased, type ModelName as ReleasedName } from '../models.js';
import { models, type ModelName } from '../zoo/index.js';
import { withNormalization, type NormalizationName } from '../recipe.js';
import { releasedWeightsPath } from '../weights.js';
import { IMAGE_PIXELS, type ServedModel } from './registry.js';

/** Test-set accuracy of the released weights/*.pt, as the README's table records it (the gates test re-measures it). */
export const RELEASED_ACCURACY: Record<ReleasedName, number> = { super_light: 0.9959, lightest: 0.9943, light: 0.993 };

const DESCRIPTIONS: Record<ReleasedName, string> = {
  super_light: 'SuperLight: BN + dropout, adaptive average pooling to 3x3',
  lightest: 'Lightest: BN + dropout, a 1x1 squeeze before the classifier',
  light: 'Light: plain convolutions, no batch norm',
};

export interface LoadOptions {
  /** A state_dict for this architecture; default: the released weights. */
  weights?: string;
  device?: string;
  /** The name served (default: the architecture's). */
  as?: string;
  /** The input normalisation the weights were trained with (default: the architecture's own). */
  normalize?: NormalizationName;
}

/**
 * Loads `name`'s weights as a served model; the load time is kept for /metrics. Any model of
 * the zoo can be served from a weights file; only the reference models have released weights.
 */
export function loadServedModel(name: ModelName, options: LoadOptions = {}): ServedModel {
  const t0 = performance.now();
  let released: ReleasedName | undefined;
  let path = options.weights;
  if (path === undefined) {
    if (!isReleased(name)) throw new Error(`${name} has no released weights; give a weights file for it`);
    released = name;
    path = releasedWeightsPath(name);
  }
  const spec = options.normalize !== undefined ? withNormalization(models[name], options.normalize) : models[name];
  const model = Model.fromFile(spec, path, options.device !== undefined ? { device: options.device } : {});
  const loadSeconds = (performance.now() - t0) / 1000;
  return {
    name: options.as ?? name,
    description: isReleased(name) ? DESCRIPTIONS[name] : `${name}, weights from ${basename(path)}`,
    params: model.numParams(),
    accuracy: released === undefined ? null : RELEASED_ACCURACY[released],
    source: released === undefined ? path : `released weights/${released}.pt`,
    classes: 10,
    loadSeconds,
    classify: async (pixels) => {
      const out = await model.logProbsAsync(pixels);
      for (let i = 0; i < out.length; i++) out[i] = Math.exp(out[i] ?? -Infinity);
      return out;
    },
    // uint8 pixels in: the graph normalises as these weights were trained (options.normalize),
    // so the page need not know the normalisation.
    onnx: () => toOnnx(model.spec, model.stateTensors(), { includePreprocessing: true }),
    dispose: () => model.dispose(),
  };
}

/**
 * An ensemble file (the YAML or JSON that `torchlet ensemble --ensemble` takes) as one served
 * model, named by the file's `name`, or else by the file name without its extension.
 */
export function loadServedEnsemble(path: string, options: { device?: string } = {}): ServedModel {
  const t0 = performance.now();
  const file = readEnsembleFile(path);
  const name = file.name ?? basename(path, extname(path));
  const vote = file.vote ?? 'hard';
  const ensemble = Ensemble.fromFiles(file.members, { vote, name, ...(options.device !== undefined && { device: options.device }) });
  let classes: number;
  try {
    for (const m of ensemble.members) {
      const { channels, height, width } = m.model.spec.input;
      if (channels * height * width !== IMAGE_PIXELS) throw new RangeError(`ensemble '${name}': member '${m.name}' takes ${channels}x${height}x${width} images, not the server's 1x28x28`);
    }
    // One blank image through every member: the class count, and a first pass before any request.
    classes = ensemble.scores(new Uint8Array(IMAGE_PIXELS)).probabilities.length;
  } catch (err) {
    ensemble.dispose();
    throw err;
  }
  const members = ensemble.members.map((m) => ({ name: m.name, model: m.model.spec.name, params: m.model.numParams() }));
  const width = classes + 1 + members.length;
  return {
    name,
    description: `Ensemble (${vote} vote) of ${members.map((m) => m.name).join(', ')}`,
    params: ensemble.numParams(),
    accuracy: null,
    source: path,
    classes,
    loadSeconds: (performance.now() - t0) / 1000,
    ensemble: { vote, members },
    classify: async (pixels, count) => {
      const { predictions, probabilities, votes } = await ensemble.scoresAsync(pixels);
      const out = new Float32Array(count * width);
      for (let i = 0; i < count; i++) {
        out.set(probabilities.subarray(i * classes, (i + 1) * classes), i * width);
        out[i * width + classes] = predictions[i] ?? 0;
        for (let k = 0; k < members.length; k++) out[i * width + classes + 1 + k] = votes[k * count + i] ?? 0;
      }
      return out;
    },
    dispose: () => ensemble.dispose(),
  };
}
