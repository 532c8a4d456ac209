// torchvision's MobileNetV2 (models/mobilenetv2.py) and MobileNetV3 (models/mobilenetv3.py),
// with their module trees and state_dict keys (features.1.conv.0.0.weight,
// features.4.block.2.fc1.weight, classifier.3.weight, ...).
import { layers as L, type Layer, type ModelSpec } from '../spec.js';
import { convNormAct, makeDivisible, resolve, squeezeExcitation, zooModel, type ZooOptions } from './common.js';

/** A block whose output is added to its input when the shapes allow, as torchvision's use_res_connect. */
function maybeResidual(useRes: boolean, body: Layer[]): Layer {
  return useRes ? L.residual(body) : L.sequential(...body);
}

export function mobilenetV2(options: ZooOptions = {}): ModelSpec {
  const r = resolve(options);
  const settings: [number, number, number, number][] = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
  ];
  const relu6 = L.relu6();
  const features: Layer[] = [convNormAct(r.channels, 32, 3, { stride: 2, act: relu6 })];
  let inC = 32;
  for (const [t, c, n, s] of settings) {
    for (let i = 0; i < n; i++) {
      const stride = i === 0 ? s : 1;
      const hidden = Math.round(inC * t);
      const conv = L.sequential(
        ...(t !== 1 ? [convNormAct(inC, hidden, 1, { act: relu6 })] : []),
        convNormAct(hidden, hidden, 3, { stride, groups: hidden, act: relu6 }),
        L.conv2d(hidden, c, 1, { bias: false }),
        L.batchNorm2d(c),
      );
      features.push(maybeResidual(stride === 1 && inC === c, [L.named('conv', conv)]));
      inC = c;
    }
  }
  features.push(convNormAct(inC, 1280, 1, { act: relu6 }));
  return zooModel('mobilenet_v2', r, [
    L.named('features', L.sequential(...features)),
    L.globalAvgPool(),
    L.flatten(),
    L.named('classifier', L.sequential(L.dropout(options.dropout ?? 0.2), L.linear(1280, r.classes))),
  ]);
}

// input, kernel, expanded, output, squeeze-and-excitation, hardswish (else ReLU), stride
type V3Row = [number, number, number, number, boolean, boolean, number];

const V3_LARGE: V3Row[] = [
  [16, 3, 16, 16, false, false, 1],
  [16, 3, 64, 24, false, false, 2],
  [24, 3, 72, 24, false, false, 1],
  [24, 5, 72, 40, true, false, 2],
  [40, 5, 120, 40, true, false, 1],
  [40, 5, 120, 40, true, false, 1],
  [40, 3, 240, 80, false, true, 2],
  [80, 3, 200, 80, false, true, 1],
  [80, 3, 184, 80, false, true, 1],
  [80, 3, 184, 80, false, true, 1],
  [80, 3, 480, 112, true, true, 1],
  [112, 3, 672, 112, true, true, 1],
  [112, 5, 672, 160, true, true, 2],
  [160, 5, 960, 160, true, true, 1],
  [160, 5, 960, 160, true, true, 1],
];

const V3_SMALL: V3Row[] = [
  [16, 3, 16, 16, true, false, 2],
  [16, 3, 72, 24, false, false, 2],
  [24, 3, 88, 24, false, false, 1],
  [24, 5, 96, 40, true, true, 2],
  [40, 5, 240, 40, true, true, 1],
  [40, 5, 240, 40, true, true, 1],
  [40, 5, 120, 48, true, true, 1],
  [48, 5, 144, 48, true, true, 1],
  [48, 5, 288, 96, true, true, 2],
  [96, 5, 576, 96, true, true, 1],
  [96, 5, 576, 96, true, true, 1],
];

function mobilenetV3(name: string, rows: V3Row[], lastChannel: number, options: ZooOptions): ModelSpec {
  const r = resolve(options);
  const norm = { eps: 0.001, momentum: 0.01 };
  const features: Layer[] = [convNormAct(r.channels, 16, 3, { stride: 2, act: L.hardswish(), norm })];
  for (const [inC, kernel, expanded, outC, se, hs, stride] of rows) {
    const act = hs ? L.hardswish() : L.relu();
    const block = L.sequential(
      ...(expanded !== inC ? [convNormAct(inC, expanded, 1, { act, norm })] : []),
      convNormAct(expanded, expanded, kernel, { stride, groups: expanded, act, norm }),
      ...(se ? [squeezeExcitation(expanded, makeDivisible(Math.floor(expanded / 4), 8), L.relu(), L.hardsigmoid())] : []),
      convNormAct(expanded, outC, 1, { act: null, norm }),
    );
    features.push(maybeResidual(stride === 1 && inC === outC, [L.named('block', block)]));
  }
  const lastIn = rows[rows.length - 1]?.[3] ?? 0;
  features.push(convNormAct(lastIn, 6 * lastIn, 1, { act: L.hardswish(), norm }));
  return zooModel(name, r, [
    L.named('features', L.sequential(...features)),
    L.named('avgpool', L.globalAvgPool()),
    L.flatten(),
    L.named(
      'classifier',
      L.sequential(L.linear(6 * lastIn, lastChannel), L.hardswish(), L.dropout(options.dropout ?? 0.2), L.linear(lastChannel, r.classes)),
    ),
  ]);
}

export const mobilenetV3Large = (options: ZooOptions = {}): ModelSpec => mobilenetV3('mobilenet_v3_large', V3_LARGE, 1280, options);
export const mobilenetV3Small = (options: ZooOptions = {}): ModelSpec => mobilenetV3('mobilenet_v3_small', V3_SMALL, 1024, options);
