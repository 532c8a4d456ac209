// torchvision's EfficientNet B0 and B3 (models/efficientnet.py): MBConv blocks with
// squeeze-and-excitation and stochastic depth, with torchvision's module tree and keys
// (features.2.0.block.1.0.weight, features.2.1.stochastic_depth, classifier.1.weight, ...).
import { layers as L, type Layer, type ModelSpec } from '../spec.js';
import { convNormAct, makeDivisible, resolve, squeezeExcitation, zooModel, type ZooOptions } from './common.js';

export interface EfficientNetOptions extends ZooOptions {
  /** The last block's stochastic depth probability; earlier blocks get linearly less (default 0.2). */
  stochasticDepth?: number;
}

// expand ratio, kernel, stride, input, output, layers (EfficientNet-B0, before scaling)
const STAGES: [number, number, number, number, number, number][] = [
  [1, 3, 1, 32, 16, 1],
  [6, 3, 2, 16, 24, 2],
  [6, 5, 2, 24, 40, 2],
  [6, 3, 2, 40, 80, 3],
  [6, 5, 1, 80, 112, 3],
  [6, 5, 2, 112, 192, 4],
  [6, 3, 1, 192, 320, 1],
];

function efficientnet(name: string, widthMult: number, depthMult: number, dropout: number, options: EfficientNetOptions): ModelSpec {
  const r = resolve(options);
  const width = (c: number) => makeDivisible(c * widthMult, 8);
  const stages = STAGES.map(([e, k, s, i, o, n]) => ({ expand: e, kernel: k, stride: s, inC: width(i), outC: width(o), layers: Math.ceil(n * depthMult) }));
  const total = stages.reduce((n, st) => n + st.layers, 0);
  const sdProb = options.stochasticDepth ?? 0.2;
  let blockId = 0;
  const features: Layer[] = [convNormAct(r.channels, stages[0]?.inC ?? 32, 3, { stride: 2, act: L.silu() })];
  for (const st of stages) {
    const blocks: Layer[] = [];
    for (let b = 0; b < st.layers; b++) {
      const inC = b === 0 ? st.inC : st.outC;
      const stride = b === 0 ? st.stride : 1;
      const expanded = makeDivisible(inC * st.expand, 8);
      const block = L.named(
        'block',
        L.sequential(
          ...(expanded !== inC ? [convNormAct(inC, expanded, 1, { act: L.silu() })] : []),
          convNormAct(expanded, expanded, st.kernel, { stride, groups: expanded, act: L.silu() }),
          squeezeExcitation(expanded, Math.max(1, Math.floor(inC / 4)), L.silu(), L.sigmoid()),
          convNormAct(expanded, st.outC, 1, { act: null }),
        ),
      );
      const p = (sdProb * blockId) / total;
      blockId++;
      // Stochastic depth only acts on the residual branch; blocks without one hold the
      // (stateless) module unused in torchvision, and skip it here.
      blocks.push(stride === 1 && inC === st.outC ? L.residual([block, L.named('stochastic_depth', L.stochasticDepth(p, 'row'))]) : L.sequential(block));
    }
    features.push(L.sequential(...blocks));
  }
  const lastIn = stages[stages.length - 1]?.outC ?? 0;
  features.push(convNormAct(lastIn, 4 * lastIn, 1, { act: L.silu() }));
  return zooModel(name, r, [
    L.named('features', L.sequential(...features)),
    L.named('avgpool', L.globalAvgPool()),
    L.flatten(),
    L.named('classifier', L.sequential(L.dropout(options.dropout ?? dropout), L.linear(4 * lastIn, r.classes))),
  ]);
}

export const efficientnetB0 = (options: EfficientNetOptions = {}): ModelSpec => efficientnet('efficientnet_b0', 1.0, 1.0, 0.2, options);
export const efficientnetB3 = (options: EfficientNetOptions = {}): ModelSpec => efficientnet('efficientnet_b3', 1.2, 1.4, 0.3, options);
