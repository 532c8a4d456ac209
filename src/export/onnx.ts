// ONNX export: a model's spec walked layer by layer through a mapping table (one entry per
// layer type of the spec language) into ONNX nodes, with its weights as float32
// initializers. IR version 8 and opset 17, so that ONNX 1.12's checker (Debian's
// python3-onnx) accepts the files; the batch dimension is symbolic. The graph is the model
// in eval mode: dropout is left out and, by default, each batch norm that directly follows
// a convolution is folded into that convolution, as torch.onnx.export does.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Model, StateTensor } from '../model.js';
import { packageRoot } from '../package-root.js';
import { convGeometry, poolGeometry, type Layer, type ModelSpec } from '../spec.js';
import { GraphBuilder, type AttributeValue, type Value } from './graph.js';
import { DataType, encodeModel, type ModelProto, type ValueInfoProto } from './schema.js';

export const IR_VERSION = 8;
export const OPSET = 17;

export interface OnnxExportOptions {
  /** Fold each batch norm that directly follows a convolution into that convolution's weights. Default true. */
  foldBatchNorm?: boolean;
  /**
   * Take uint8 pixels (0-255, [batch, C, H, W]) and normalise them inside the graph. By
   * default the input is the normalised float tensor, as the model sees it in torchlet.
   */
  includePreprocessing?: boolean;
}

/** A layer type the exporter cannot write yet, or weights that do not fit the spec. No file is written. */
export class OnnxExportError extends Error {
  override name = 'OnnxExportError';
}

/** Names of the graph's input and output, and the metadata keys torchlet writes. */
export const ONNX_NAMES = {
  input: 'input',
  pixels: 'pixels',
  logProbs: 'log_probs',
  logits: 'logits',
} as const;

// An intersection (not Extract) so that members whose type is a union (batchnorm2d | batchnorm1d) narrow too.
type LayerOf<T extends Layer['type']> = Layer & { type: T };

/**
 * A module that layers register on, as native/spec.cc does it: a layer takes its own name
 * or, without one, the number of modules registered there so far (nn.Sequential's index).
 */
interface Owner {
  prefix: string;
  modules: number;
}

/** Where a layer sits: its path in the spec (for errors), its state_dict prefix (for weights) and the module it registers on. */
interface Site {
  path: string;
  prefix: string;
  owner: Owner;
}

interface Context {
  graph: GraphBuilder;
  options: Required<OnnxExportOptions>;
  weight(site: Site, key: string, shape: number[]): Float32Array;
}

type Mapper<T extends Layer['type']> = (ctx: Context, layer: LayerOf<T>, x: Value, site: Site) => Value;

const BLOCKS: readonly string[] = ['sequential', 'concat', 'residual', 'scale'];

/**
 * Registers `layer` on `owner` and returns its site. Learned tokens are parameters of the
 * owner, and an inline block's layers join the owner, so neither takes a module key.
 */
function place(owner: Owner, layer: Layer, path: string): Site {
  const inline = BLOCKS.includes(layer.type) && 'inline' in layer && layer.inline === true;
  if (inline || layer.type === 'token' || layer.type === 'positionembedding') return { path, prefix: owner.prefix, owner };
  const key = layer.name ?? String(owner.modules);
  owner.modules += 1;
  return { path, prefix: `${owner.prefix}${key}.`, owner };
}

/** The module a block's own layers register on: the block itself, or its owner when inline. */
function inner(layer: LayerOf<'sequential' | 'concat' | 'residual' | 'scale'>, site: Site): Owner {
  return layer.inline === true ? site.owner : { prefix: site.prefix, modules: 0 };
}

function describe(layer: Layer, site: Site): string {
  return `${site.path} (${layer.type})`;
}

function expectImage(layer: Layer, x: Value, site: Site): [number, number, number] {
  const [c, h, w] = x.shape;
  if (x.shape.length !== 3 || c === undefined || h === undefined || w === undefined) {
    throw new OnnxExportError(`${describe(layer, site)} expects a [channels, height, width] input, got [${x.shape.join(', ')}]`);
  }
  return [c, h, w];
}

/** The last dimension of a [..., size] input, checked against what the layer expects. */
function expectLast(layer: Layer, x: Value, site: Site, size: number): void {
  if (x.shape.length < 1 || x.shape.at(-1) !== size) {
    throw new OnnxExportError(`${describe(layer, site)} expects input [batch, ..., ${size}], got [batch, ${x.shape.join(', ')}]`);
  }
}

/** values[i], for arrays whose length the caller has checked. */
function entry(values: Float32Array, i: number): number {
  const v = values[i];
  if (v === undefined) throw new Error(`torchlet: internal error, index ${i} outside ${values.length} values`);
  return v;
}

/** A dimension counted with the batch as 0 (negative from the end), as PyTorch counts it; checked against the rank. */
function dimension(layer: Layer, site: Site, dim: number, rank: number): number {
  const d = dim < 0 ? dim + rank : dim;
  if (d < 1 || d >= rank) throw new OnnxExportError(`${describe(layer, site)}: dimension ${dim} does not fit an input of rank ${rank} (the batch is 0)`);
  return d;
}

function convSize(size: number, kernel: number, stride: number, padding: number, dilation: number): number {
  return Math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1;
}

/** PyTorch's pooled size: in ceil mode, a last window that would start in the right padding is dropped. */
function pooledSize(size: number, kernel: number, stride: number, padding: number, ceil: boolean): number {
  const out = (ceil ? Math.ceil : Math.floor)((size + 2 * padding - kernel) / stride) + 1;
  return ceil && (out - 1) * stride >= size + padding ? out - 1 : out;
}

/** A layer's geometry as [height, width] pairs; a malformed one is an export error naming the layer. */
function geometry<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    throw new OnnxExportError((e as Error).message);
  }
}

/** Conv, with an optional batch norm folded in: w' = w * g / sqrt(v + eps), b' = (b - m) * g / sqrt(v + eps) + beta. */
function conv(ctx: Context, layer: LayerOf<'conv2d'>, x: Value, site: Site, bn?: { layer: LayerOf<'batchnorm2d' | 'batchnorm1d'>; site: Site }): Value {
  const [c, h, w] = expectImage(layer, x, site);
  const { kernel, stride, padding, dilation } = geometry(() => convGeometry(layer, site.path));
  const groups = layer.groups ?? 1;
  if (c !== layer.in) throw new OnnxExportError(`${describe(layer, site)} expects ${layer.in} input channels, got ${c}`);
  const oh = convSize(h, kernel[0], stride[0], padding[0], dilation[0]);
  const ow = convSize(w, kernel[1], stride[1], padding[1], dilation[1]);
  if (oh < 1 || ow < 1) {
    throw new OnnxExportError(`${describe(layer, site)}: kernel ${kernel.join('x')} (dilation ${dilation.join('x')}) is larger than its input [${c}, ${h}, ${w}] padded by ${padding.join('x')}`);
  }
  const kShape = [layer.out, layer.in / groups, ...kernel];
  let weight = ctx.weight(site, 'weight', kShape);
  let bias = layer.bias === false ? undefined : ctx.weight(site, 'bias', [layer.out]);
  if (bn) {
    const gamma = ctx.weight(bn.site, 'weight', [layer.out]);
    const beta = ctx.weight(bn.site, 'bias', [layer.out]);
    const mean = ctx.weight(bn.site, 'running_mean', [layer.out]);
    const variance = ctx.weight(bn.site, 'running_var', [layer.out]);
    const eps = bn.layer.eps ?? 1e-5;
    const scale = gamma.map((g, o) => g / Math.sqrt(entry(variance, o) + eps));
    const per = weight.length / layer.out;
    const folded = weight.map((v, i) => v * entry(scale, Math.floor(i / per)));
    const foldedBias = scale.map((k, o) => ((bias === undefined ? 0 : entry(bias, o)) - entry(mean, o)) * k + entry(beta, o));
    weight = folded;
    bias = foldedBias;
  }
  const inputs = [x.name, ctx.graph.floats(`${site.prefix}weight`, kShape, weight)];
  if (bias) inputs.push(ctx.graph.floats(`${site.prefix}bias`, [layer.out], bias));
  const name = ctx.graph.node('Conv', inputs, site.path, {
    kernel_shape: kernel,
    strides: stride,
    // ONNX's pads: [top, left, bottom, right], that is [h_begin, w_begin, h_end, w_end].
    pads: [...padding, ...padding],
    dilations: dilation,
    group: groups,
  });
  return { name, shape: [layer.out, oh, ow] };
}

function pool(op: 'MaxPool' | 'AveragePool') {
  return (ctx: Context, layer: LayerOf<'maxpool2d' | 'avgpool2d'>, x: Value, site: Site): Value => {
    const [c, h, w] = expectImage(layer, x, site);
    const { kernel, stride, padding } = geometry(() => poolGeometry(layer, site.path));
    const ceil = layer.ceil === true;
    const input = [h, w] as const;
    const sizes = (f: (d: 0 | 1) => number): [number, number] => [f(0), f(1)];
    const [oh, ow] = sizes((d) => pooledSize(input[d], kernel[d], stride[d], padding[d], ceil));
    // ONNX's ceil mode keeps a last window that starts in the right padding, PyTorch's drops
    // it; and where average windows run past the padding the two divide differently. Such
    // a layer has no exact mapping, so it is refused rather than written wrong.
    const floor = sizes((d) => pooledSize(input[d], kernel[d], stride[d], padding[d], false));
    const onnxCeil = sizes((d) => Math.ceil((input[d] + 2 * padding[d] - kernel[d]) / stride[d]) + 1);
    if (ceil && (onnxCeil.join() !== [oh, ow].join() || (op === 'AveragePool' && floor.join() !== [oh, ow].join()))) {
      throw new OnnxExportError(`${describe(layer, site)}: no exact ONNX mapping for ceil-mode pooling whose last window overhangs a ${h}x${w} input`);
    }
    const attributes: Record<string, number | number[]> = {
      kernel_shape: kernel,
      strides: stride,
      pads: [...padding, ...padding],
      ceil_mode: ceil ? 1 : 0,
    };
    // PyTorch's avg_pool2d counts the zero padding in the divisor by default.
    if (op === 'AveragePool') attributes.count_include_pad = 1;
    return { name: ctx.graph.node(op, [x.name], site.path, attributes), shape: [c, oh, ow] };
  };
}

/**
 * PyTorch's adaptive average pooling: output cell i averages input rows floor(i*H/out) to
 * ceil((i+1)*H/out). Global when the output is 1x1, a plain AveragePool when the sizes
 * divide, otherwise a slice-and-mean per output row, then per output column (an average
 * over a rectangle is an average of row averages, so the two passes are exact).
 */
const adaptiveAvgPool: Mapper<'adaptiveavgpool2d'> = (ctx, layer, x, site) => {
  const [c, h, w] = expectImage(layer, x, site);
  const [oh, ow] = typeof layer.output === 'number' ? [layer.output, layer.output] : layer.output;
  if (oh === 1 && ow === 1) return { name: ctx.graph.node('GlobalAveragePool', [x.name], site.path), shape: [c, 1, 1] };
  if (h % oh === 0 && w % ow === 0) {
    const kernel = [h / oh, w / ow];
    return { name: ctx.graph.node('AveragePool', [x.name], site.path, { kernel_shape: kernel, strides: kernel }), shape: [c, oh, ow] };
  }
  let value = x.name;
  for (const [axis, size, out] of [
    [2, h, oh],
    [3, w, ow],
  ] as const) {
    if (size === out) continue;
    const axes = ctx.graph.ints(`${site.prefix}axis${axis}`, [axis]);
    const cells: string[] = [];
    for (let i = 0; i < out; i++) {
      const start = Math.floor((i * size) / out);
      const end = Math.ceil(((i + 1) * size) / out);
      const sliced = ctx.graph.node('Slice', [value, ctx.graph.ints(`${site.prefix}start`, [start]), ctx.graph.ints(`${site.prefix}end`, [end]), axes], site.path);
      cells.push(ctx.graph.node('ReduceMean', [sliced], site.path, { axes: [axis], keepdims: 1 }));
    }
    value = ctx.graph.node('Concat', cells, site.path, { axis });
  }
  return { name: value, shape: [c, oh, ow] };
};

const identity = (_ctx: Context, _layer: Layer, x: Value): Value => x;

/** One elementwise node that keeps the shape. */
function unary(op: string, attributes: Record<string, AttributeValue> = {}) {
  return (ctx: Context, _layer: Layer, x: Value, site: Site): Value => ({ name: ctx.graph.node(op, [x.name], site.path, attributes), shape: x.shape });
}

function binary(ctx: Context, op: 'Add' | 'Mul' | 'Div' | 'Sub' | 'MatMul', a: string, b: string, site: Site): string {
  return ctx.graph.node(op, [a, b], site.path);
}

/** x . W^T + b over the last dimension of any rank: Gemm for [batch, in], MatMul (+ Add) above that. */
function linear(ctx: Context, x: Value, site: Site, inF: number, outF: number, bias: boolean): Value {
  const weight = ctx.graph.floats(`${site.prefix}weight`, [outF, inF], ctx.weight(site, 'weight', [outF, inF]));
  const b = bias ? ctx.graph.floats(`${site.prefix}bias`, [outF], ctx.weight(site, 'bias', [outF])) : undefined;
  const shape = [...x.shape.slice(0, -1), outF];
  if (x.shape.length === 1) return { name: ctx.graph.node('Gemm', [x.name, weight, ...(b === undefined ? [] : [b])], site.path, { transB: 1 }), shape };
  const transposed = ctx.graph.node('Transpose', [weight], site.path, { perm: [1, 0] });
  const product = binary(ctx, 'MatMul', x.name, transposed, site);
  return { name: b === undefined ? product : binary(ctx, 'Add', product, b, site), shape };
}

function layerNorm(ctx: Context, x: Value, site: Site, features: number, eps: number): Value {
  const scale = ctx.graph.floats(`${site.prefix}weight`, [features], ctx.weight(site, 'weight', [features]));
  const bias = ctx.graph.floats(`${site.prefix}bias`, [features], ctx.weight(site, 'bias', [features]));
  return { name: ctx.graph.node('LayerNormalization', [x.name, scale, bias], site.path, { axis: -1, epsilon: { float: eps } }), shape: x.shape };
}

/** GELU as PyTorch's default (exact) form, 0.5 x (1 + erf(x / sqrt 2)): opset 17 has no Gelu operator. */
function gelu(ctx: Context, x: Value, site: Site): Value {
  const scalar = (name: string, v: number): string => ctx.graph.floats(`${site.prefix}${name}`, [], Float32Array.of(v));
  const erf = ctx.graph.node('Erf', [binary(ctx, 'Div', x.name, scalar('gelu_sqrt2', Math.SQRT2), site)], site.path);
  const gate = binary(ctx, 'Add', erf, scalar('gelu_one', 1), site);
  return { name: binary(ctx, 'Mul', binary(ctx, 'Mul', x.name, gate, site), scalar('gelu_half', 0.5), site), shape: x.shape };
}

/** A sub-module of a composite layer (self_attn, linear1, ...): its state names follow the PyTorch module's. */
function sub(site: Site, key: string): Site {
  return { path: `${site.path}.${key}`, prefix: `${site.prefix}${key}.`, owner: site.owner };
}

/**
 * Self-attention over [batch, tokens, dim] as nn.MultiheadAttention computes it (and as
 * native/layers.cc does): one input projection split into q, k, v per head, q scaled by
 * 1/sqrt(head size), softmax(q k^T) v, heads joined, then out_proj.
 */
function attention(ctx: Context, layer: Layer, x: Value, site: Site, dim: number, heads: number, bias: boolean): Value {
  const [tokens] = x.shape;
  if (x.shape.length !== 2 || tokens === undefined || x.shape[1] !== dim) {
    throw new OnnxExportError(`${describe(layer, site)} expects input [batch, tokens, ${dim}], got [batch, ${x.shape.join(', ')}]`);
  }
  const g = ctx.graph;
  const hd = dim / heads;
  const w = g.floats(`${site.prefix}in_proj_weight`, [3 * dim, dim], ctx.weight(site, 'in_proj_weight', [3 * dim, dim]));
  let qkv = binary(ctx, 'MatMul', x.name, g.node('Transpose', [w], site.path, { perm: [1, 0] }), site);
  if (bias) qkv = binary(ctx, 'Add', qkv, g.floats(`${site.prefix}in_proj_bias`, [3 * dim], ctx.weight(site, 'in_proj_bias', [3 * dim])), site);
  qkv = g.node('Reshape', [qkv, g.ints(`${site.prefix}qkv_shape`, [0, tokens, 3, heads, hd])], site.path);
  qkv = g.node('Transpose', [qkv], site.path, { perm: [2, 0, 3, 1, 4] }); // [3, batch, heads, tokens, hd]
  const [q, k, v] = [0, 1, 2].map((i) => g.node('Gather', [qkv, g.ints(`${site.prefix}qkv_index`, [i], [])], site.path, { axis: 0 })) as [string, string, string];
  const scaled = binary(ctx, 'Mul', q, g.floats(`${site.prefix}scale`, [], Float32Array.of(1 / Math.sqrt(hd))), site);
  const scores = binary(ctx, 'MatMul', scaled, g.node('Transpose', [k], site.path, { perm: [0, 1, 3, 2] }), site);
  const attn = g.node('Softmax', [scores], site.path, { axis: -1 });
  let out = g.node('Transpose', [binary(ctx, 'MatMul', attn, v, site)], site.path, { perm: [0, 2, 1, 3] });
  out = g.node('Reshape', [out, g.ints(`${site.prefix}out_shape`, [0, tokens, dim])], site.path);
  return linear(ctx, { name: out, shape: x.shape }, sub(site, 'out_proj'), dim, dim, bias);
}

/** Maps a list of layers in order, each registered on `owner`, folding conv -> batch norm pairs when asked. */
function sequence(ctx: Context, list: Layer[], x: Value, owner: Owner, path: (i: number) => string): Value {
  let value = x;
  let folded = -1; // index of a batch norm already folded into the convolution before it
  for (const [i, layer] of list.entries()) {
    if (i === folded) continue;
    const next = list[i + 1];
    if (ctx.options.foldBatchNorm && layer.type === 'conv2d' && next?.type === 'batchnorm2d' && next.features === layer.out) {
      const site = place(owner, layer, path(i));
      value = conv(ctx, layer, value, site, { layer: next, site: place(owner, next, path(i + 1)) });
      folded = i + 1;
    } else {
      value = mapLayer(ctx, layer, value, place(owner, layer, path(i)));
    }
  }
  return value;
}

function batchNorm(ctx: Context, layer: LayerOf<'batchnorm2d' | 'batchnorm1d'>, x: Value, site: Site): Value {
  const [c] = x.shape;
  const ranks = layer.type === 'batchnorm2d' ? [3] : [1, 2];
  if (!ranks.includes(x.shape.length) || c !== layer.features) {
    const wanted = layer.type === 'batchnorm2d' ? `[${layer.features}, height, width]` : `[${layer.features}] or [${layer.features}, length]`;
    throw new OnnxExportError(`${describe(layer, site)} expects input [batch, ...${wanted.slice(1)}, got [batch, ${x.shape.join(', ')}]`);
  }
  const inputs = ['weight', 'bias', 'running_mean', 'running_var'].map((key) =>
    ctx.graph.floats(`${site.prefix}${key}`, [c], ctx.weight(site, key, [c])),
  );
  const name = ctx.graph.node('BatchNormalization', [x.name, ...inputs], site.path, { epsilon: { float: layer.eps ?? 1e-5 } });
  return { name, shape: x.shape };
}

/** torch.flatten(x, start, end) and x.reshape(batch, ...shape), as a Reshape that keeps the batch (0). */
function reshape(ctx: Context, x: Value, site: Site, shape: number[]): Value {
  return { name: ctx.graph.node('Reshape', [x.name, ctx.graph.ints(`${site.prefix}shape`, [0, ...shape])], site.path), shape };
}

/**
 * Every layer type of the spec language. The type makes a new layer type a compile error
 * here until it has a mapping; mapLayer still checks at run time, for specs read from JSON.
 */
const MAPPINGS: { [T in Layer['type']]: Mapper<T> } = {
  conv2d: (ctx, layer, x, site) => conv(ctx, layer, x, site),
  batchnorm2d: batchNorm,
  batchnorm1d: batchNorm,
  layernorm: (ctx, layer, x, site) => {
    expectLast(layer, x, site, layer.features);
    return layerNorm(ctx, x, site, layer.features, layer.eps ?? 1e-5);
  },
  dropout: identity,
  dropout2d: identity,
  stochasticdepth: identity,
  relu: unary('Relu'),
  relu6: (ctx, _layer, x, site) => {
    const bound = (name: string, v: number): string => ctx.graph.floats(`${site.prefix}${name}`, [], Float32Array.of(v));
    return { name: ctx.graph.node('Clip', [x.name, bound('min', 0), bound('max', 6)], site.path), shape: x.shape };
  },
  hardswish: unary('HardSwish'),
  // PyTorch's hardsigmoid is relu6(x + 3) / 6, ONNX's max(0, min(1, alpha x + beta)).
  hardsigmoid: unary('HardSigmoid', { alpha: { float: 1 / 6 }, beta: { float: 0.5 } }),
  silu: (ctx, _layer, x, site) => ({ name: binary(ctx, 'Mul', x.name, ctx.graph.node('Sigmoid', [x.name], site.path), site), shape: x.shape }),
  gelu: (ctx, _layer, x, site) => gelu(ctx, x, site),
  sigmoid: unary('Sigmoid'),
  maxpool2d: pool('MaxPool'),
  avgpool2d: pool('AveragePool'),
  adaptiveavgpool2d: adaptiveAvgPool,
  flatten: (ctx, layer, x, site) => {
    const rank = x.shape.length + 1;
    const start = dimension(layer, site, layer.start ?? 1, rank);
    const end = dimension(layer, site, layer.end ?? -1, rank);
    if (end < start) throw new OnnxExportError(`${describe(layer, site)}: flatten ends (${layer.end}) before it starts (${layer.start})`);
    const kept = x.shape.slice(start - 1, end).reduce((a, b) => a * b, 1);
    const shape = [...x.shape.slice(0, start - 1), kept, ...x.shape.slice(end)];
    if (start === 1 && end === rank - 1) return { name: ctx.graph.node('Flatten', [x.name], site.path, { axis: 1 }), shape };
    return reshape(ctx, x, site, shape);
  },
  reshape: (ctx, layer, x, site) => {
    const total = x.shape.reduce((a, b) => a * b, 1);
    const known = layer.shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const shape = layer.shape.map((d) => (d === -1 ? total / known : d));
    if (shape.reduce((a, b) => a * b, 1) !== total || !shape.every(Number.isInteger)) {
      throw new OnnxExportError(`${describe(layer, site)}: cannot reshape [batch, ${x.shape.join(', ')}] to [batch, ${layer.shape.join(', ')}]`);
    }
    return reshape(ctx, x, site, shape);
  },
  transpose: (ctx, layer, x, site) => {
    const rank = x.shape.length + 1;
    const [a, b] = layer.dims.map((d) => dimension(layer, site, d, rank)) as [number, number];
    const perm = Array.from({ length: rank }, (_, i) => (i === a ? b : i === b ? a : i));
    const full = [0, ...x.shape];
    return { name: ctx.graph.node('Transpose', [x.name], site.path, { perm }), shape: perm.slice(1).map((i) => full[i] ?? 0) };
  },
  select: (ctx, layer, x, site) => {
    const rank = x.shape.length + 1;
    const dim = dimension(layer, site, layer.dim, rank);
    const size = x.shape[dim - 1] ?? 0;
    const index = layer.index < 0 ? layer.index + size : layer.index;
    if (index < 0 || index >= size) throw new OnnxExportError(`${describe(layer, site)}: index ${layer.index} is outside dimension ${layer.dim} of size ${size}`);
    const name = ctx.graph.node('Gather', [x.name, ctx.graph.ints(`${site.prefix}index`, [index], [])], site.path, { axis: dim });
    return { name, shape: x.shape.filter((_, i) => i !== dim - 1) };
  },
  linear: (ctx, layer, x, site) => {
    if (x.shape.length < 1 || x.shape.at(-1) !== layer.in) {
      throw new OnnxExportError(`${describe(layer, site)} expects [batch, ${layer.in}] input, got [batch, ${x.shape.join(', ')}]`);
    }
    return linear(ctx, x, site, layer.in, layer.out, layer.bias !== false);
  },
  logsoftmax: unary('LogSoftmax', { axis: 1 }),
  token: (ctx, layer, x, site) => {
    expectLast(layer, x, site, layer.dim);
    if (x.shape.length !== 2) throw new OnnxExportError(`${describe(layer, site)} expects input [batch, tokens, ${layer.dim}], got [batch, ${x.shape.join(', ')}]`);
    const key = layer.name ?? 'class_token';
    const g = ctx.graph;
    const token = g.floats(`${site.prefix}${key}`, [1, 1, layer.dim], ctx.weight(site, key, [1, 1, layer.dim]));
    const batch = g.node('Shape', [x.name], site.path, { start: 0, end: 1 });
    const target = g.node('Concat', [batch, g.ints(`${site.prefix}${key}_shape`, [1, layer.dim])], site.path, { axis: 0 });
    const expanded = g.node('Expand', [token, target], site.path);
    return { name: g.node('Concat', [expanded, x.name], site.path, { axis: 1 }), shape: [(x.shape[0] ?? 0) + 1, layer.dim] };
  },
  positionembedding: (ctx, layer, x, site) => {
    if (x.shape.join() !== [layer.tokens, layer.dim].join()) {
      throw new OnnxExportError(`${describe(layer, site)} expects input [batch, ${layer.tokens}, ${layer.dim}], got [batch, ${x.shape.join(', ')}]`);
    }
    const key = layer.name ?? 'pos_embedding';
    const shape = [1, layer.tokens, layer.dim];
    return { name: binary(ctx, 'Add', x.name, ctx.graph.floats(`${site.prefix}${key}`, shape, ctx.weight(site, key, shape)), site), shape: x.shape };
  },
  multiheadattention: (ctx, layer, x, site) => attention(ctx, layer, x, site, layer.dim, layer.heads, layer.bias !== false),
  transformerencoderlayer: (ctx, layer, x, site) => {
    const eps = layer.eps ?? 1e-5;
    const selfAttention = (v: Value): Value => attention(ctx, layer, v, sub(site, 'self_attn'), layer.dim, layer.heads, true);
    const feedForward = (v: Value): Value => {
      const hidden = linear(ctx, v, sub(site, 'linear1'), layer.dim, layer.feedforward, true);
      const activated = layer.activation === 'gelu' ? gelu(ctx, hidden, site) : { name: ctx.graph.node('Relu', [hidden.name], site.path), shape: hidden.shape };
      return linear(ctx, activated, sub(site, 'linear2'), layer.feedforward, layer.dim, true);
    };
    const add = (a: Value, b: Value): Value => ({ name: binary(ctx, 'Add', a.name, b.name, site), shape: a.shape });
    const norm = (v: Value, key: string): Value => layerNorm(ctx, v, sub(site, key), layer.dim, eps);
    if (layer.normFirst === true) {
      const h = add(x, selfAttention(norm(x, 'norm1')));
      return add(h, feedForward(norm(h, 'norm2')));
    }
    const h = norm(add(x, selfAttention(x)), 'norm1');
    return norm(add(h, feedForward(h)), 'norm2');
  },
  sequential: (ctx, layer, x, site) => sequence(ctx, layer.layers, x, inner(layer, site), (i) => `${site.path}.layers[${i}]`),
  concat: (ctx, layer, x, site) => {
    const owner = inner(layer, site);
    const outs = layer.branches.map((branch, i) => {
      const path = `${site.path}.branches[${i}]`;
      return mapLayer(ctx, branch, x, place(owner, branch, path));
    });
    const [first] = outs;
    if (first === undefined) throw new OnnxExportError(`${describe(layer, site)} has no branches`);
    for (const out of outs) {
      if (out.shape.length !== first.shape.length || out.shape.slice(1).join() !== first.shape.slice(1).join()) {
        throw new OnnxExportError(`${describe(layer, site)}: branch outputs [${out.shape.join(', ')}] and [${first.shape.join(', ')}] differ beyond the channel dimension`);
      }
    }
    const channels = outs.reduce((n, o) => n + (o.shape[0] ?? 0), 0);
    return { name: ctx.graph.node('Concat', outs.map((o) => o.name), site.path, { axis: 1 }), shape: [channels, ...first.shape.slice(1)] };
  },
  residual: (ctx, layer, x, site) => {
    const owner = inner(layer, site);
    const main = sequence(ctx, layer.layers, x, owner, (i) => `${site.path}.layers[${i}]`);
    const path = `${site.path}.shortcut`;
    const skip = layer.shortcut === undefined ? x : mapLayer(ctx, layer.shortcut, x, place(owner, layer.shortcut, path));
    if (main.shape.join() !== skip.shape.join()) {
      throw new OnnxExportError(`${describe(layer, site)}: the main path gives [batch, ${main.shape.join(', ')}] but the shortcut [batch, ${skip.shape.join(', ')}]`);
    }
    return { name: binary(ctx, 'Add', main.name, skip.name, site), shape: main.shape };
  },
  scale: (ctx, layer, x, site) => {
    const branch = sequence(ctx, layer.layers, x, inner(layer, site), (i) => `${site.path}.layers[${i}]`);
    if (branch.shape.length !== x.shape.length || branch.shape[0] !== x.shape[0] || branch.shape.slice(1).some((d) => d !== 1)) {
      throw new OnnxExportError(`${describe(layer, site)}: the branch gives [batch, ${branch.shape.join(', ')}], which cannot scale the channels of [batch, ${x.shape.join(', ')}]`);
    }
    return { name: binary(ctx, 'Mul', x.name, branch.name, site), shape: x.shape };
  },
};

function mapLayer(ctx: Context, layer: Layer, x: Value, site: Site): Value {
  const mapper = Object.hasOwn(MAPPINGS, layer.type) ? (MAPPINGS[layer.type] as Mapper<Layer['type']>) : undefined;
  if (mapper === undefined) {
    throw new OnnxExportError(`${describe(layer, site)}: no ONNX mapping for layer type '${String(layer.type)}' yet, so the model cannot be exported`);
  }
  return mapper(ctx, layer as LayerOf<Layer['type']>, x, site);
}

function tensorInfo(name: string, elemType: number, shape: number[]): ValueInfoProto {
  return {
    name,
    type: { tensor_type: { elem_type: elemType, shape: { dim: [{ dim_param: 'batch' }, ...shape.map((d) => ({ dim_value: d }))] } } },
  };
}

function producerVersion(): string {
  const root = packageRoot();
  if (root === undefined) return 'unknown';
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The ONNX file's bytes for a spec and its state_dict (floating-point entries, as Model.stateTensors() gives them). */
export function toOnnx(spec: ModelSpec, state: Record<string, StateTensor>, options: OnnxExportOptions = {}): Uint8Array {
  const opts: Required<OnnxExportOptions> = { foldBatchNorm: options.foldBatchNorm ?? true, includePreprocessing: options.includePreprocessing ?? false };
  const graph = new GraphBuilder();
  const ctx: Context = {
    graph,
    options: opts,
    weight(site, key, shape) {
      const name = `${site.prefix}${key}`;
      const tensor = Object.hasOwn(state, name) ? state[name] : undefined;
      if (tensor === undefined) throw new OnnxExportError(`${site.path}: the weights have no '${name}'`);
      if (tensor.shape.join() !== shape.join()) {
        throw new OnnxExportError(`${site.path}: weight '${name}' has shape [${tensor.shape.join(', ')}], the spec needs [${shape.join(', ')}]`);
      }
      return tensor.data;
    },
  };
  const { channels, height, width, mean, std } = spec.input;
  const imageShape = [channels, height, width];
  let input: Value;
  const inputInfo = opts.includePreprocessing ? tensorInfo(ONNX_NAMES.pixels, DataType.UINT8, imageShape) : tensorInfo(ONNX_NAMES.input, DataType.FLOAT, imageShape);
  graph.unique(inputInfo.name);
  if (opts.includePreprocessing) {
    // The same arithmetic, in the same order, as the native Normalise: (x / 255 - mean) / std.
    const site = 'preprocess';
    let x = graph.node('Cast', [ONNX_NAMES.pixels], site, { to: DataType.FLOAT });
    x = graph.node('Div', [x, graph.floats('preprocess.scale', [], Float32Array.of(255))], site);
    if (mean && std) {
      const stat = [1, channels, 1, 1];
      x = graph.node('Sub', [x, graph.floats('preprocess.mean', stat, Float32Array.from(mean))], site);
      x = graph.node('Div', [x, graph.floats('preprocess.std', stat, Float32Array.from(std))], site);
    }
    input = { name: x, shape: imageShape };
  } else {
    input = { name: ONNX_NAMES.input, shape: imageShape };
  }

  const out = sequence(ctx, spec.layers, input, { prefix: '', modules: 0 }, (i) => `layers[${i}]`);
  if (out.shape.length !== 1) {
    throw new OnnxExportError(`the model's output must be [batch, classes], got [batch, ${out.shape.join(', ')}]; end the spec with a flatten layer`);
  }
  const last = spec.layers.at(-1);
  const outputName = last?.type === 'logsoftmax' ? ONNX_NAMES.logProbs : ONNX_NAMES.logits;
  // The last node's output takes the graph output's name; only a graph whose last layers
  // map to nothing (dropout, say) needs an Identity node for it.
  const producer = graph.nodes.find((n) => n.output[0] === out.name);
  if (producer) producer.output = [outputName];
  else graph.nodes.push({ name: graph.unique('output/Identity'), op_type: 'Identity', input: [out.name], output: [outputName], attribute: [] });

  const normalisation = mean && std ? { scale: 1 / 255, mean, std } : { scale: 1 / 255 };
  const model: ModelProto = {
    ir_version: IR_VERSION,
    opset_import: [{ domain: '', version: OPSET }],
    producer_name: 'torchlet',
    producer_version: producerVersion(),
    doc_string: `torchlet model '${spec.name}' in eval mode`,
    graph: {
      name: spec.name,
      node: graph.nodes,
      initializer: graph.initializers,
      input: [inputInfo],
      output: [tensorInfo(outputName, DataType.FLOAT, out.shape)],
    },
    metadata_props: Object.entries({
      'torchlet.model': spec.name,
      'torchlet.spec': JSON.stringify(spec),
      // How pixels (0-255) become the input: (pixel * scale - mean[c]) / std[c].
      'torchlet.normalisation': JSON.stringify(normalisation),
      'torchlet.input': opts.includePreprocessing ? 'uint8 pixels [batch, C, H, W], 0-255; normalised in the graph' : 'float32 [batch, C, H, W], normalised',
      'torchlet.output': outputName === ONNX_NAMES.logProbs ? 'log-probabilities [batch, classes]' : 'logits [batch, classes]',
      'torchlet.batchnorm_folded': String(opts.foldBatchNorm),
    }).map(([key, value]) => ({ key, value })),
  };
  return encodeModel(model);
}

/** Writes `bytes` to `path` through a temporary file and a rename, so a failed export never leaves half a file. */
function writeAtomically(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Exports a model (in eval mode, on any device) as an ONNX file at `path`; returns the file's size in bytes. */
export function exportOnnx(model: Model, path: string, options: OnnxExportOptions = {}): number {
  const bytes = toOnnx(model.spec, model.stateTensors(), options);
  writeAtomically(path, bytes);
  return bytes.length;
}
