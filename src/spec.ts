// Model specs: plain, typed, serialisable descriptions of a network. The native side
// compiles them into libtorch modules; parameter counting needs no addon at all.

export type Layer =
  | { type: 'conv2d'; in: number; out: number; kernel: number; stride?: number; padding?: number; bias?: boolean }
  | { type: 'batchnorm2d'; features: number; eps?: number; momentum?: number }
  | { type: 'dropout'; p: number }
  | { type: 'dropout2d'; p: number }
  | { type: 'relu' }
  | { type: 'maxpool2d'; kernel: number; stride?: number }
  | { type: 'avgpool2d'; kernel: number; stride?: number }
  | { type: 'adaptiveavgpool2d'; output: number | [number, number] }
  | { type: 'flatten' }
  | { type: 'linear'; in: number; out: number; bias?: boolean }
  | { type: 'logsoftmax' }
  | { type: 'sequential'; layers: Layer[] }
  | { type: 'concat'; branches: Layer[] };

export interface InputSpec {
  channels: number;
  height: number;
  width: number;
  /** Per-channel statistics applied to pixels scaled to [0, 1]. */
  mean?: number[];
  std?: number[];
}

export interface ModelSpec {
  name: string;
  input: InputSpec;
  layers: Layer[];
}

/** Builders for layers, so specs read like PyTorch's nn.Sequential. */
export const layers = {
  conv2d: (inChannels: number, outChannels: number, kernel: number, options: { stride?: number; padding?: number; bias?: boolean } = {}): Layer => ({
    type: 'conv2d',
    in: inChannels,
    out: outChannels,
    kernel,
    ...options,
  }),
  batchNorm2d: (features: number, options: { eps?: number; momentum?: number } = {}): Layer => ({ type: 'batchnorm2d', features, ...options }),
  dropout: (p: number): Layer => ({ type: 'dropout', p }),
  dropout2d: (p: number): Layer => ({ type: 'dropout2d', p }),
  relu: (): Layer => ({ type: 'relu' }),
  maxPool2d: (kernel: number, stride?: number): Layer => (stride === undefined ? { type: 'maxpool2d', kernel } : { type: 'maxpool2d', kernel, stride }),
  avgPool2d: (kernel: number, stride?: number): Layer => (stride === undefined ? { type: 'avgpool2d', kernel } : { type: 'avgpool2d', kernel, stride }),
  adaptiveAvgPool2d: (output: number | [number, number]): Layer => ({ type: 'adaptiveavgpool2d', output }),
  /** Global average pooling: adaptive average pooling to 1x1. */
  globalAvgPool: (): Layer => ({ type: 'adaptiveavgpool2d', output: 1 }),
  flatten: (): Layer => ({ type: 'flatten' }),
  linear: (inFeatures: number, outFeatures: number, options: { bias?: boolean } = {}): Layer => ({ type: 'linear', in: inFeatures, out: outFeatures, ...options }),
  logSoftmax: (): Layer => ({ type: 'logsoftmax' }),
  sequential: (...children: Layer[]): Layer => ({ type: 'sequential', layers: children }),
  concat: (...branches: Layer[]): Layer => ({ type: 'concat', branches }),
};

export const MNIST_INPUT: InputSpec = { channels: 1, height: 28, width: 28, mean: [0.1307], std: [0.3081] };

export function defineModel(name: string, layerList: Layer[], input: InputSpec = MNIST_INPUT): ModelSpec {
  return { name, input, layers: layerList };
}

function layerParams(layer: Layer): number {
  switch (layer.type) {
    case 'conv2d':
      return layer.out * layer.in * layer.kernel * layer.kernel + (layer.bias === false ? 0 : layer.out);
    case 'batchnorm2d':
      return 2 * layer.features;
    case 'linear':
      return layer.out * layer.in + (layer.bias === false ? 0 : layer.out);
    case 'sequential':
      return layer.layers.reduce((n, l) => n + layerParams(l), 0);
    case 'concat':
      return layer.branches.reduce((n, l) => n + layerParams(l), 0);
    default:
      return 0;
  }
}

/** Trainable parameters, counted from the spec alone (BatchNorm running statistics are buffers, not parameters). */
export function countParams(spec: ModelSpec): number {
  return spec.layers.reduce((n, l) => n + layerParams(l), 0);
}
