// The model zoo: every network of the MNIST projects torchlet joins, as plain specs.
// `zoo` holds the builders (with options for channels, classes, input size, dropout);
// `models` every model at its MNIST defaults, the three reference models and the tiny family
// (issue 15) included, so that train, evaluate, predict and export take them by name.
import { models as reference, tinyModels } from '../models.js';
import type { ModelSpec } from '../spec.js';
import { efficientnetB0, efficientnetB3 } from './efficientnet.js';
import { mnasnet0_5, mnasnet1_0 } from './mnasnet.js';
import { mobilenetV2, mobilenetV3Large, mobilenetV3Small } from './mobilenet.js';
import { parallelCnn } from './parallel-cnn.js';
import { resnet18, resnet34 } from './resnet.js';
import { simpleConvNet } from './simple-conv-net.js';
import { squeezenet1_0, squeezenet1_1 } from './squeezenet.js';
import { vit } from './vit.js';

export const zoo = {
  simple_conv_net: simpleConvNet,
  parallel_cnn: parallelCnn,
  vit,
  resnet18,
  resnet34,
  mobilenet_v2: mobilenetV2,
  mobilenet_v3_small: mobilenetV3Small,
  mobilenet_v3_large: mobilenetV3Large,
  squeezenet1_0,
  squeezenet1_1,
  efficientnet_b0: efficientnetB0,
  efficientnet_b3: efficientnetB3,
  mnasnet0_5,
  mnasnet1_0,
} as const;
export type ZooName = keyof typeof zoo;

export const models = {
  ...reference,
  ...tinyModels,
  ...(Object.fromEntries(Object.entries(zoo).map(([name, build]) => [name, build()])) as Record<ZooName, ModelSpec>),
};
export type ModelName = keyof typeof models;

export function isModelName(name: string): name is ModelName {
  return Object.hasOwn(models, name);
}

export { withoutDropout, type ZooOptions } from './common.js';
export type { VitOptions } from './vit.js';
export type { EfficientNetOptions } from './efficientnet.js';
