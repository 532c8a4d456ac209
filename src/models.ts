// The three reference architectures. Every 3x3 conv has padding 0 and a bias; every
// dropout is 0.05; the output is log-probabilities, trained with NLL.
import { defineModel, layers as L, type Layer, type ModelSpec, type Size2d } from './spec.js';

const P = 0.05;

/** conv -> BN -> ReLU (-> dropout): the unit Lightest and SuperLight are built from. */
function block(inC: number, outC: number, kernel: number, dropout: boolean): Layer[] {
  return [L.conv2d(inC, outC, kernel), L.batchNorm2d(outC), L.relu(), ...(dropout ? [L.dropout(P)] : [])];
}

/** Shared trunk of Lightest and SuperLight, from the input to conv5 (16 x 6 x 6). */
function normalisedTrunk(): Layer[] {
  return [
    ...block(1, 4, 3, true), // 28 -> 26
    ...block(4, 8, 3, true), // -> 24
    L.maxPool2d(2), // -> 12
    ...block(8, 4, 1, false), // 1x1 transition
    ...block(4, 8, 3, true), // -> 10
    ...block(8, 12, 3, true), // -> 8
    ...block(12, 16, 3, false), // -> 6
  ];
}

/** Light, 4,738 parameters: no batch norm, no dropout. */
export const light: ModelSpec = defineModel('light', [
  L.conv2d(1, 4, 3), L.relu(), // 28 -> 26
  L.conv2d(4, 8, 3), L.relu(), // -> 24
  L.maxPool2d(2), // -> 12
  L.conv2d(8, 4, 1), L.relu(),
  L.conv2d(4, 8, 3), L.relu(), // -> 10
  L.conv2d(8, 12, 3), L.relu(), // -> 8
  L.conv2d(12, 16, 3), L.relu(), // -> 6
  L.maxPool2d(2), // -> 3
  L.conv2d(16, 10, 3), // -> 1
  L.flatten(),
  L.logSoftmax(),
]);

/** Lightest, 4,274 parameters: BN everywhere, a 1x1 squeeze to 8 channels before the classifier. */
export const lightest: ModelSpec = defineModel('lightest', [
  ...normalisedTrunk(),
  L.maxPool2d(2), // -> 3
  ...block(16, 8, 1, false),
  L.conv2d(8, 10, 3), // -> 1
  L.flatten(),
  L.logSoftmax(),
]);

/** SuperLight, 4,842 parameters: adaptive average pooling to 3x3 before the classifier. */
export const superLight: ModelSpec = defineModel('super_light', [
  ...normalisedTrunk(),
  L.adaptiveAvgPool2d(3),
  L.conv2d(16, 10, 3), // -> 1
  L.flatten(),
  L.logSoftmax(),
]);

export const models = { light, lightest, super_light: superLight } as const;
export type ModelName = keyof typeof models;

/** Documented parameter counts; CI asserts the specs match them. */
export const DOCUMENTED_PARAMS: Record<ModelName, number> = { light: 4738, lightest: 4274, super_light: 4842 };

export function isModelName(name: string): name is ModelName {
  return Object.hasOwn(models, name);
}

/** conv (no bias: the batch norm's shift replaces it) -> BN -> the activation (none if null). */
function bnBlock(inC: number, outC: number, kernel: Size2d, padding: Size2d = 0, groups = 1, act: Layer | null = L.relu()): Layer[] {
  return [L.conv2d(inC, outC, kernel, { padding, bias: false, ...(groups === 1 ? {} : { groups }) }), L.batchNorm2d(outC), ...(act === null ? [] : [act])];
}

/**
 * The tiny family (issue 15): BN after every conv, one max-pool, an optional 1x1 squeeze,
 * then 3x3 convs down to a small map, global average pooling and a 1x1 classifier, the
 * layout of the best published sub-10k run. The first conv pads so that the edge strokes of
 * 28x28 digits reach two 3x3 layers before the pool. `widths`: [padded 3x3, 3x3, (pool,
 * squeeze,) 3x3 ...]; python/tiny_models.py builds the same from the same numbers.
 * `factorized`: each 3x3 becomes a 3x1 then a 1x3, each with its batch norm and ReLU (the
 * same receptive field and output size, 6*in*out weights instead of 9*in*out when in = out).
 * `separable`: each 3x3 after the first (whose one input channel leaves nothing to separate)
 * becomes a depthwise 3x3 then a 1x1, each with its batch norm and ReLU (MobileNet v1's
 * block: 9*in + in*out weights, so the same budget buys more depth and width).
 * `linearDepthwise` (with `separable`): no ReLU between the depthwise conv's batch norm and the
 * 1x1, as Xception found better; the parameters are the same.
 * `residual` (with `separable`): the 3x3s after the pool pad, so the map stays 13x13 to the
 * average pool, and each one whose width does not change adds its input back before its last
 * ReLU (ResNet's identity shortcut); the parameters are the same, the multiply-adds grow.
 * `silu`: SiLU in place of every ReLU; the parameters are the same.
 */
export function tinyNet(
  name: string,
  widths: readonly [number, number, ...number[]],
  squeeze: number | null,
  options: { factorized?: boolean; separable?: boolean; linearDepthwise?: boolean; residual?: boolean; silu?: boolean } = {},
): ModelSpec {
  if (options.residual === true && options.separable !== true) throw new Error(`${name}: 'residual' needs 'separable'`);
  const [c1, c2, ...rest] = widths;
  const act = (): Layer => (options.silu === true ? L.silu() : L.relu());
  const unit = (inC: number, outC: number, kernel: number, padding = 0, lastAct: Layer | null = act()): Layer[] => {
    if (kernel !== 3) return bnBlock(inC, outC, kernel, padding, 1, lastAct);
    if (options.separable === true && inC > 1) return [...bnBlock(inC, inC, 3, padding, inC, options.linearDepthwise === true ? null : act()), ...bnBlock(inC, outC, 1, 0, 1, lastAct)];
    if (options.factorized === true) return [...bnBlock(inC, outC, [3, 1], [padding, 0], 1, act()), ...bnBlock(outC, outC, [1, 3], [0, padding], 1, lastAct)];
    return bnBlock(inC, outC, kernel, padding, 1, lastAct);
  };
  const body: Layer[] = [...unit(1, c1, 3, 1), ...unit(c1, c2, 3), L.maxPool2d(2)];
  let prev = c2;
  for (const [c, k] of [...(squeeze === null ? [] : [[squeeze, 1]]), ...rest.map((c) => [c, 3])] as [number, number][]) {
    if (options.residual === true && k === 3) body.push(...(c === prev ? [L.residual(unit(prev, c, 3, 1, null)), act()] : unit(prev, c, 3, 1)));
    else body.push(...unit(prev, c, k));
    prev = c;
  }
  return defineModel(name, [...body, L.adaptiveAvgPool2d(1), L.conv2d(prev, 10, 1), L.flatten(), L.logSoftmax()]);
}

/*
 * The released family is depthwise-separable (chosen on a validation split over the plain
 * 3x3 family that first held these names: training-logs/tiny/DECISIONS.md). The first conv
 * is plain (one input channel), the second separable, then the pool and four separable
 * stages: 28 -> 26 -> pool 13 -> 11 -> 9 -> 7 -> 5 -> GAP.
 */
export const TINY_WIDTHS = {
  /** 7,950 parameters: four separable stages after the pool, 36 wide. */
  tiny8k: [12, 32, 36, 36, 36, 36],
  /** 4,946 parameters, the same layout 28 wide. */
  tiny5k: [8, 20, 28, 28, 28, 28],
  /** 1,978 parameters, the same layout 14 wide. */
  tiny2k: [8, 14, 14, 14, 14, 14],
} as const;
export const tiny8k = tinyNet('tiny8k', TINY_WIDTHS.tiny8k, null, { separable: true });
export const tiny5k = tinyNet('tiny5k', TINY_WIDTHS.tiny5k, null, { separable: true });
export const tiny2k = tinyNet('tiny2k', TINY_WIDTHS.tiny2k, null, { separable: true });

/**
 * The first tiny8k's layout (plain 3x3s, a 1x1 squeeze) with every 3x3 factorized into a 3x1
 * and a 1x3 (6,326 parameters): the non-square kernels end to end (PyTorch twin, ONNX
 * export) in the tests, not a member of the family; python/tiny_models.py's FACTORIZED
 * builds its twin.
 */
export const tinyFactorized = { tiny8k_factorized: tinyNet('tiny8k_factorized', [8, 16, 16, 16, 16], 10, { factorized: true }) } as const;

/** The tiny family, trainable by name before their weights are released. */
export const tinyModels = { tiny8k, tiny5k, tiny2k } as const;
