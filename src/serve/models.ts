// Registry entries for torchlet's own architectures: a Model loaded from weights, run
// through Model.logProbsAsync so that inference stays off the event loop.
import { toOnnx } from '../export/onnx.js';
import { Model } from '../model.js';
import { models, type ModelName } from '../models.js';
import { withNormalization, type NormalizationName } from '../recipe.js';
import { releasedWeightsPath } from '../weights.js';
import type { ServedModel } from './registry.js';

/** Test-set accuracy of the released weights/*.pt, as the README's table records it (the gates test re-measures it). */
export const RELEASED_ACCURACY: Record<ModelName, number> = { super_light: 0.9959, lightest: 0.9943, light: 0.993 };

const DESCRIPTIONS: Record<ModelName, string> = {
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

/** Loads `name`'s weights as a served model; the load time is kept for /metrics. */
export function loadServedModel(name: ModelName, options: LoadOptions = {}): ServedModel {
  const t0 = performance.now();
  const path = options.weights ?? releasedWeightsPath(name);
  const spec = options.normalize !== undefined ? withNormalization(models[name], options.normalize) : models[name];
  const model = Model.fromFile(spec, path, options.device !== undefined ? { device: options.device } : {});
  const loadSeconds = (performance.now() - t0) / 1000;
  return {
    name: options.as ?? name,
    description: DESCRIPTIONS[name],
    params: model.numParams(),
    accuracy: options.weights === undefined ? RELEASED_ACCURACY[name] : null,
    source: options.weights === undefined ? `released weights/${name}.pt` : path,
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
