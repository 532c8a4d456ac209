// torchvision's MNASNet (models/mnasnet.py, the B1 variant): mnasnet0_5 and mnasnet1_0,
// with torchvision's keys (layers.0.weight, layers.8.0.layers.3.weight, classifier.1.weight).
import { layers as L, type Layer, type ModelSpec } from '../spec.js';
import { resolve, zooModel, type ZooOptions } from './common.js';

// torchvision's _BN_MOMENTUM: TensorFlow's decay 0.9997 in PyTorch's convention.
const BN = { momentum: 1 - 0.9997 };

/** torchvision's _round_to_multiple_of: rounds up unless that is more than 10% off. */
function roundToMultipleOf(v: number, divisor: number): number {
  const rounded = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  return rounded >= 0.9 * v ? rounded : rounded + divisor;
}

function invertedResidual(inC: number, outC: number, kernel: number, stride: number, expand: number): Layer {
  const mid = inC * expand;
  const body = L.named(
    'layers',
    L.sequential(
      L.conv2d(inC, mid, 1, { bias: false }), L.batchNorm2d(mid, BN), L.relu(),
      L.conv2d(mid, mid, kernel, { padding: Math.floor(kernel / 2), stride, groups: mid, bias: false }), L.batchNorm2d(mid, BN), L.relu(),
      L.conv2d(mid, outC, 1, { bias: false }), L.batchNorm2d(outC, BN),
    ),
  );
  return inC === outC && stride === 1 ? L.residual([body]) : L.sequential(body);
}

function stack(inC: number, outC: number, kernel: number, stride: number, expand: number, repeats: number): Layer {
  return L.sequential(invertedResidual(inC, outC, kernel, stride, expand), ...Array.from({ length: repeats - 1 }, () => invertedResidual(outC, outC, kernel, 1, expand)));
}

function mnasnet(name: string, alpha: number, options: ZooOptions): ModelSpec {
  const r = resolve(options);
  const d = [32, 16, 24, 40, 80, 96, 192, 320].map((x) => roundToMultipleOf(x * alpha, 8)) as [number, number, number, number, number, number, number, number];
  return zooModel(name, r, [
    L.named(
      'layers',
      L.sequential(
        L.conv2d(r.channels, d[0], 3, { padding: 1, stride: 2, bias: false }), L.batchNorm2d(d[0], BN), L.relu(),
        L.conv2d(d[0], d[0], 3, { padding: 1, groups: d[0], bias: false }), L.batchNorm2d(d[0], BN), L.relu(),
        L.conv2d(d[0], d[1], 1, { bias: false }), L.batchNorm2d(d[1], BN),
        stack(d[1], d[2], 3, 2, 3, 3),
        stack(d[2], d[3], 5, 2, 3, 3),
        stack(d[3], d[4], 5, 2, 6, 3),
        stack(d[4], d[5], 3, 1, 6, 2),
        stack(d[5], d[6], 5, 2, 6, 4),
        stack(d[6], d[7], 3, 1, 6, 1),
        L.conv2d(d[7], 1280, 1, { bias: false }), L.batchNorm2d(1280, BN), L.relu(),
      ),
    ),
    L.globalAvgPool(), // x.mean([2, 3])
    L.flatten(),
    L.named('classifier', L.sequential(L.dropout(options.dropout ?? 0.2), L.linear(1280, r.classes))),
  ]);
}

export const mnasnet0_5 = (options: ZooOptions = {}): ModelSpec => mnasnet('mnasnet0_5', 0.5, options);
export const mnasnet1_0 = (options: ZooOptions = {}): ModelSpec => mnasnet('mnasnet1_0', 1.0, options);
