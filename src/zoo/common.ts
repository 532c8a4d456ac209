// Shared by the zoo's model files: the options every model takes, the input it expects,
// and torchvision's small building blocks (ops.misc.Conv2dNormActivation, _make_divisible).
import { layers as L, MNIST_INPUT, type InputSpec, type Layer, type ModelSpec } from '../spec.js';

export interface ZooOptions {
  /** Input channels (default 1, MNIST); torchvision's first convolution keeps its kernel, stride and padding. */
  channels?: number;
  /** Output classes (default 10). */
  classes?: number;
  /** Input height and width (default 28); torchvision's models pool adaptively and run on larger, resized input too. */
  size?: number | [number, number];
  /** Per-channel normalisation of pixels in [0, 1]; default MNIST's mean and std for every channel. */
  mean?: number[];
  std?: number[];
  /** Dropout before the classifier, where the model has one (default: the model's own). */
  dropout?: number;
}

export interface Resolved {
  channels: number;
  classes: number;
  height: number;
  width: number;
  input: InputSpec;
}

export function resolve(options: ZooOptions): Resolved {
  const channels = options.channels ?? 1;
  const classes = options.classes ?? 10;
  const [height, width] = typeof options.size === 'number' ? [options.size, options.size] : (options.size ?? [28, 28]);
  for (const [key, v] of Object.entries({ channels, classes, height, width })) {
    if (!Number.isInteger(v) || v <= 0) throw new RangeError(`zoo option ${key} must be a positive integer, got ${v}`);
  }
  const mean = options.mean ?? Array<number>(channels).fill(MNIST_INPUT.mean?.[0] ?? 0);
  const std = options.std ?? Array<number>(channels).fill(MNIST_INPUT.std?.[0] ?? 1);
  return { channels, classes, height, width, input: { channels, height, width, mean, std } };
}

/**
 * A zoo model: its layers, then log-softmax. The log-softmax has no state, so the
 * state_dict is exactly the PyTorch model's; train with NLL (cross-entropy on the logits).
 */
export function zooModel(name: string, r: Resolved, body: Layer[]): ModelSpec {
  return { name, input: r.input, layers: [...body, L.logSoftmax()] };
}

/** torchvision.ops.misc.Conv2dNormActivation: conv (no bias) -> BatchNorm -> activation, as "0", "1", "2". */
export function convNormAct(
  inC: number,
  outC: number,
  kernel: number,
  options: { stride?: number; groups?: number; act?: Layer | null; norm?: { eps?: number; momentum?: number } } = {},
): Layer {
  const { stride = 1, groups = 1, act = L.relu(), norm = {} } = options;
  return L.sequential(
    L.conv2d(inC, outC, kernel, { stride, padding: Math.floor((kernel - 1) / 2), groups, bias: false }),
    L.batchNorm2d(outC, norm),
    ...(act ? [act] : []),
  );
}

/** torchvision.ops.misc.SqueezeExcitation: avgpool, fc1, activation, fc2, scale_activation; scales x channel by channel. */
export function squeezeExcitation(channels: number, squeeze: number, act: Layer, scaleAct: Layer): Layer {
  return L.scale(
    L.named('avgpool', L.globalAvgPool()),
    L.named('fc1', L.conv2d(channels, squeeze, 1)),
    L.named('activation', act),
    L.named('fc2', L.conv2d(squeeze, channels, 1)),
    L.named('scale_activation', scaleAct),
  );
}

/** torchvision's _make_divisible: round to a multiple of `divisor`, never more than 10% down. */
export function makeDivisible(v: number, divisor: number, minValue = divisor): number {
  const rounded = Math.max(minValue, Math.floor((v + divisor / 2) / divisor) * divisor);
  return rounded < 0.9 * v ? rounded + divisor : rounded;
}

/** The spec with every dropout and stochastic depth at 0: for comparing training steps with PyTorch, whose random draws differ. */
export function withoutDropout(spec: ModelSpec): ModelSpec {
  const strip = (layer: Layer): Layer => {
    switch (layer.type) {
      case 'dropout':
      case 'dropout2d':
      case 'stochasticdepth':
        return { ...layer, p: 0 };
      case 'multiheadattention':
      case 'transformerencoderlayer':
        return { ...layer, dropout: 0 };
      case 'sequential':
      case 'residual':
      case 'scale':
        return { ...layer, layers: layer.layers.map(strip), ...(layer.type === 'residual' && layer.shortcut && { shortcut: strip(layer.shortcut) }) };
      case 'concat':
        return { ...layer, branches: layer.branches.map(strip) };
      default:
        return layer;
    }
  };
  return { ...spec, layers: spec.layers.map(strip) };
}
