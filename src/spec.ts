// Model specs: plain, typed, serialisable descriptions of a network. The native side
// compiles them into libtorch modules; parameter counting needs no addon at all.

/**
 * One layer or block of a network. `name` is its key in the enclosing module's state_dict
 * (`conv1` in `layer1.0.conv1.weight`); without one, a layer takes the next index, as in
 * nn.Sequential. An `inline` block registers no module of its own: its layers join the
 * enclosing module, the way torchvision's Fire or BasicBlock hold their layers directly.
 */
export type Layer = LayerBody & { name?: string };

/** Blocks: containers of layers that run in order, side by side, summed or multiplied. */
export type Block =
  | { type: 'sequential'; layers: Layer[]; inline?: boolean }
  | { type: 'concat'; branches: Layer[]; inline?: boolean }
  /** layers(x) + shortcut(x); no shortcut means the identity. */
  | { type: 'residual'; layers: Layer[]; shortcut?: Layer; inline?: boolean }
  /** x * layers(x): channel-wise scaling by a branch (squeeze-and-excitation). */
  | { type: 'scale'; layers: Layer[]; inline?: boolean };

/** A spatial size as PyTorch's nn.Conv2d takes it: one number for both dimensions, or [height, width]. */
export type Size2d = number | [number, number];

export type Activation = 'relu' | 'relu6' | 'hardswish' | 'hardsigmoid' | 'silu' | 'gelu' | 'sigmoid';

export type LayerBody =
  | Block
  /** kernel, stride, padding and dilation: one number, or [height, width] (a 3x1 kernel is [3, 1]). */
  | { type: 'conv2d'; in: number; out: number; kernel: Size2d; stride?: Size2d; padding?: Size2d; groups?: number; dilation?: Size2d; bias?: boolean }
  /** momentum null: a cumulative moving average, as PyTorch's momentum=None. */
  | { type: 'batchnorm2d' | 'batchnorm1d'; features: number; eps?: number; momentum?: number | null }
  | { type: 'layernorm'; features: number; eps?: number }
  | { type: 'dropout'; p: number }
  | { type: 'dropout2d'; p: number }
  /** torchvision's StochasticDepth: drops whole rows (or the whole batch) in training, identity in eval. */
  | { type: 'stochasticdepth'; p: number; mode?: 'row' | 'batch' }
  | { type: Activation }
  /** kernel, stride (the kernel's when omitted) and padding: one number, or [height, width]. */
  | { type: 'maxpool2d'; kernel: Size2d; stride?: Size2d; padding?: Size2d; ceil?: boolean }
  | { type: 'avgpool2d'; kernel: Size2d; stride?: Size2d; padding?: Size2d; ceil?: boolean }
  | { type: 'adaptiveavgpool2d'; output: number | [number, number] }
  /** torch.flatten(x, start, end); start defaults to 1, end to -1. */
  | { type: 'flatten'; start?: number; end?: number }
  /** x.reshape(batch, ...shape). */
  | { type: 'reshape'; shape: number[] }
  /** x.transpose(a, b), dimensions counted with the batch as 0. */
  | { type: 'transpose'; dims: [number, number] }
  /** x.select(dim, index): x[:, 0] takes a ViT's class token. */
  | { type: 'select'; dim: number; index: number }
  | { type: 'linear'; in: number; out: number; bias?: boolean }
  | { type: 'logsoftmax' }
  /** A learned [1, 1, dim] token put before the sequence; a parameter of the enclosing module (default name class_token). */
  | { type: 'token'; dim: number }
  /** A learned [1, tokens, dim] embedding added to the sequence; a parameter of the enclosing module (default name pos_embedding). */
  | { type: 'positionembedding'; tokens: number; dim: number }
  /** Self-attention over [batch, tokens, dim], with nn.MultiheadAttention's state names. */
  | { type: 'multiheadattention'; dim: number; heads: number; dropout?: number; bias?: boolean }
  /** nn.TransformerEncoderLayer(batch_first=True) and its state names; pre-norm with normFirst. */
  | {
      type: 'transformerencoderlayer';
      dim: number;
      heads: number;
      feedforward: number;
      dropout?: number;
      activation?: 'relu' | 'gelu';
      normFirst?: boolean;
      eps?: number;
    };

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

type ConvOptions = { stride?: Size2d; padding?: Size2d; groups?: number; dilation?: Size2d; bias?: boolean };
type PoolOptions = { padding?: Size2d; ceil?: boolean };
type NormOptions = { eps?: number; momentum?: number | null };

/** Builders for layers, so specs read like PyTorch's nn modules. */
export const layers = {
  /** kernel, stride, padding and dilation as nn.Conv2d takes them: conv2d(8, 8, [3, 1], { padding: [1, 0] }). */
  conv2d: (inChannels: number, outChannels: number, kernel: Size2d, options: ConvOptions = {}): Layer => ({
    type: 'conv2d',
    in: inChannels,
    out: outChannels,
    kernel,
    ...options,
  }),
  batchNorm2d: (features: number, options: NormOptions = {}): Layer => ({ type: 'batchnorm2d', features, ...options }),
  batchNorm1d: (features: number, options: NormOptions = {}): Layer => ({ type: 'batchnorm1d', features, ...options }),
  layerNorm: (features: number, options: { eps?: number } = {}): Layer => ({ type: 'layernorm', features, ...options }),
  dropout: (p: number): Layer => ({ type: 'dropout', p }),
  dropout2d: (p: number): Layer => ({ type: 'dropout2d', p }),
  stochasticDepth: (p: number, mode: 'row' | 'batch' = 'row'): Layer => ({ type: 'stochasticdepth', p, mode }),
  relu: (): Layer => ({ type: 'relu' }),
  relu6: (): Layer => ({ type: 'relu6' }),
  hardswish: (): Layer => ({ type: 'hardswish' }),
  hardsigmoid: (): Layer => ({ type: 'hardsigmoid' }),
  silu: (): Layer => ({ type: 'silu' }),
  gelu: (): Layer => ({ type: 'gelu' }),
  sigmoid: (): Layer => ({ type: 'sigmoid' }),
  maxPool2d: (kernel: Size2d, stride?: Size2d, options: PoolOptions = {}): Layer => ({
    type: 'maxpool2d',
    kernel,
    ...(stride !== undefined && { stride }),
    ...options,
  }),
  avgPool2d: (kernel: Size2d, stride?: Size2d, options: PoolOptions = {}): Layer => ({
    type: 'avgpool2d',
    kernel,
    ...(stride !== undefined && { stride }),
    ...options,
  }),
  adaptiveAvgPool2d: (output: number | [number, number]): Layer => ({ type: 'adaptiveavgpool2d', output }),
  /** Global average pooling: adaptive average pooling to 1x1. */
  globalAvgPool: (): Layer => ({ type: 'adaptiveavgpool2d', output: 1 }),
  flatten: (start?: number, end?: number): Layer => ({ type: 'flatten', ...(start !== undefined && { start }), ...(end !== undefined && { end }) }),
  reshape: (...shape: number[]): Layer => ({ type: 'reshape', shape }),
  transpose: (a: number, b: number): Layer => ({ type: 'transpose', dims: [a, b] }),
  select: (dim: number, index: number): Layer => ({ type: 'select', dim, index }),
  linear: (inFeatures: number, outFeatures: number, options: { bias?: boolean } = {}): Layer => ({ type: 'linear', in: inFeatures, out: outFeatures, ...options }),
  logSoftmax: (): Layer => ({ type: 'logsoftmax' }),
  token: (dim: number): Layer => ({ type: 'token', dim }),
  positionEmbedding: (tokens: number, dim: number): Layer => ({ type: 'positionembedding', tokens, dim }),
  multiheadAttention: (dim: number, heads: number, options: { dropout?: number; bias?: boolean } = {}): Layer => ({
    type: 'multiheadattention',
    dim,
    heads,
    ...options,
  }),
  transformerEncoderLayer: (
    dim: number,
    heads: number,
    feedforward: number,
    options: { dropout?: number; activation?: 'relu' | 'gelu'; normFirst?: boolean; eps?: number } = {},
  ): Layer => ({ type: 'transformerencoderlayer', dim, heads, feedforward, ...options }),
  sequential: (...children: Layer[]): Layer => ({ type: 'sequential', layers: children }),
  concat: (...branches: Layer[]): Layer => ({ type: 'concat', branches }),
  /** layers(x) + shortcut(x); the shortcut defaults to the identity. */
  residual: (main: Layer[], shortcut?: Layer): Layer => ({ type: 'residual', layers: main, ...(shortcut && { shortcut }) }),
  /** x * layers(x), channel by channel (squeeze-and-excitation). */
  scale: (...branch: Layer[]): Layer => ({ type: 'scale', layers: branch }),
  /** The same layer under a state_dict name: named('conv1', conv2d(...)). */
  named: (name: string, layer: Layer): Layer => ({ ...layer, name }),
  /** The same block without a module of its own: its layers register on the enclosing module. */
  inline: (block: Layer): Layer => {
    if (!['sequential', 'concat', 'residual', 'scale'].includes(block.type)) throw new TypeError(`only blocks can be inline, not ${block.type}`);
    return { ...block, inline: true } as Layer;
  },
};

export const MNIST_INPUT: InputSpec = { channels: 1, height: 28, width: 28, mean: [0.1307], std: [0.3081] };

export function defineModel(name: string, layerList: Layer[], input: InputSpec = MNIST_INPUT): ModelSpec {
  return { name, input, layers: layerList };
}

/** A conv2d's geometry, each field as [height, width]. */
export interface ConvGeometry {
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
}

/** A Size2d as [height, width], checked as native/spec.cc checks it; `least` is 1 for a kernel, stride or dilation, 0 for padding. */
function sizePair(value: unknown, key: string, least: number, path: string): [number, number] {
  const items: unknown[] = Array.isArray(value) ? value : [value, value];
  const show = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : String(v));
  const shown = Array.isArray(value) ? `[${value.map(show).join(', ')}]` : show(value);
  const expected = `${path}: '${key}' must be ${least > 0 ? 'a positive integer' : 'an integer >= 0'} or a [height, width] pair of them, got `;
  if (!items.every((v) => typeof v === 'number')) throw new TypeError(expected + shown);
  const [h, w] = items as number[];
  if (items.length !== 2 || h === undefined || w === undefined) throw new RangeError(`${expected}an array of ${items.length}`);
  if (![h, w].every((v) => Number.isInteger(v) && v >= least)) throw new RangeError(expected + shown);
  return [h, w];
}

/** kernel, stride, padding and dilation of a conv2d layer at `path`, with PyTorch's defaults, each as [height, width]. */
export function convGeometry(layer: Layer & { type: 'conv2d' }, path: string): ConvGeometry {
  // Only a missing field takes the default: null is refused, as native/spec.cc refuses it.
  const field = (key: 'stride' | 'padding' | 'dilation', fallback: number): unknown => (layer[key] === undefined ? fallback : layer[key]);
  return {
    kernel: sizePair(layer.kernel, 'kernel', 1, path),
    stride: sizePair(field('stride', 1), 'stride', 1, path),
    padding: sizePair(field('padding', 0), 'padding', 0, path),
    dilation: sizePair(field('dilation', 1), 'dilation', 1, path),
  };
}

/**
 * kernel, stride (the kernel's when omitted) and padding of a pooling layer at `path`, each as
 * [height, width]; the padding at most half the kernel in each dimension, as PyTorch requires.
 */
export function poolGeometry(layer: Layer & { type: 'maxpool2d' | 'avgpool2d' }, path: string): Omit<ConvGeometry, 'dilation'> {
  const kernel = sizePair(layer.kernel, 'kernel', 1, path);
  const stride = layer.stride === undefined ? kernel : sizePair(layer.stride, 'stride', 1, path);
  const padding = sizePair(layer.padding === undefined ? 0 : layer.padding, 'padding', 0, path);
  if (2 * padding[0] > kernel[0] || 2 * padding[1] > kernel[1]) {
    const shown = (v: [number, number]): string => (v[0] === v[1] ? String(v[0]) : `[${v.join(', ')}]`);
    throw new RangeError(`${path}: 'padding' must be between 0 and half the kernel, got padding ${shown(padding)} for kernel ${shown(kernel)}`);
  }
  return { kernel, stride, padding };
}

function layerParams(layer: Layer, path: string): number {
  const sum = (list: Layer[], key: string): number => list.reduce((n, l, i) => n + layerParams(l, `${path}.${key}[${i}]`), 0);
  switch (layer.type) {
    case 'conv2d': {
      const [kh, kw] = convGeometry(layer, path).kernel;
      return (layer.out * layer.in * kh * kw) / (layer.groups ?? 1) + (layer.bias === false ? 0 : layer.out);
    }
    case 'batchnorm2d':
    case 'batchnorm1d':
    case 'layernorm':
      return 2 * layer.features;
    case 'linear':
      return layer.out * layer.in + (layer.bias === false ? 0 : layer.out);
    case 'token':
      return layer.dim;
    case 'positionembedding':
      return layer.tokens * layer.dim;
    case 'multiheadattention':
      return 4 * layer.dim * layer.dim + (layer.bias === false ? 0 : 4 * layer.dim);
    case 'transformerencoderlayer':
      // self-attention, linear1, linear2, norm1 and norm2
      return 4 * layer.dim * layer.dim + 4 * layer.dim + 2 * layer.dim * layer.feedforward + layer.feedforward + layer.dim + 4 * layer.dim;
    case 'sequential':
    case 'residual':
    case 'scale':
      return sum(layer.layers, 'layers') + (layer.type === 'residual' && layer.shortcut ? layerParams(layer.shortcut, `${path}.shortcut`) : 0);
    case 'concat':
      return sum(layer.branches, 'branches');
    default:
      return 0;
  }
}

/** Trainable parameters, counted from the spec alone (BatchNorm running statistics are buffers, not parameters). */
export function countParams(spec: ModelSpec): number {
  return spec.layers.reduce((n, l, i) => n + layerParams(l, `spec.layers[${i}]`), 0);
}
