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
import type { Layer, ModelSpec } from '../spec.js';
import { GraphBuilder, type Value } from './graph.js';
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

type LayerOf<T extends Layer['type']> = Extract<Layer, { type: T }>;

/** Where a layer sits: its path in the spec (for errors) and its state_dict prefix (for weights). */
interface Site {
  path: string;
  prefix: string;
}

interface Context {
  graph: GraphBuilder;
  options: Required<OnnxExportOptions>;
  weight(site: Site, key: string, shape: number[]): Float32Array;
}

type Mapper<T extends Layer['type']> = (ctx: Context, layer: LayerOf<T>, x: Value, site: Site) => Value;

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

/** values[i], for arrays whose length the caller has checked. */
function entry(values: Float32Array, i: number): number {
  const v = values[i];
  if (v === undefined) throw new Error(`torchlet: internal error, index ${i} outside ${values.length} values`);
  return v;
}

function pooledSize(size: number, kernel: number, stride: number, padding = 0): number {
  return Math.floor((size + 2 * padding - kernel) / stride) + 1;
}

/** Conv, with an optional batch norm folded in: w' = w * g / sqrt(v + eps), b' = (b - m) * g / sqrt(v + eps) + beta. */
function conv(ctx: Context, layer: LayerOf<'conv2d'>, x: Value, site: Site, bn?: { layer: LayerOf<'batchnorm2d'>; site: Site }): Value {
  const [c, h, w] = expectImage(layer, x, site);
  const stride = layer.stride ?? 1;
  const padding = layer.padding ?? 0;
  const kShape = [layer.out, layer.in, layer.kernel, layer.kernel];
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
  if (c !== layer.in) throw new OnnxExportError(`${describe(layer, site)} expects ${layer.in} input channels, got ${c}`);
  const inputs = [x.name, ctx.graph.floats(`${site.prefix}weight`, kShape, weight)];
  if (bias) inputs.push(ctx.graph.floats(`${site.prefix}bias`, [layer.out], bias));
  const name = ctx.graph.node('Conv', inputs, site.path, {
    kernel_shape: [layer.kernel, layer.kernel],
    strides: [stride, stride],
    pads: [padding, padding, padding, padding],
    dilations: [1, 1],
    group: 1,
  });
  return { name, shape: [layer.out, pooledSize(h, layer.kernel, stride, padding), pooledSize(w, layer.kernel, stride, padding)] };
}

function pool(op: 'MaxPool' | 'AveragePool') {
  return (ctx: Context, layer: LayerOf<'maxpool2d' | 'avgpool2d'>, x: Value, site: Site): Value => {
    const [c, h, w] = expectImage(layer, x, site);
    const stride = layer.stride ?? layer.kernel;
    const name = ctx.graph.node(op, [x.name], site.path, { kernel_shape: [layer.kernel, layer.kernel], strides: [stride, stride] });
    return { name, shape: [c, pooledSize(h, layer.kernel, stride), pooledSize(w, layer.kernel, stride)] };
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

function children(parent: Site, key: string, index: number): Site {
  return { path: `${parent.path}.${key}[${index}]`, prefix: `${parent.prefix}${index}.` };
}

/** Maps a list of layers in order, folding conv -> batch norm pairs when asked. */
function sequence(ctx: Context, list: Layer[], x: Value, site: (i: number) => Site): Value {
  let value = x;
  let folded = -1; // index of a batch norm already folded into the convolution before it
  for (const [i, layer] of list.entries()) {
    if (i === folded) continue;
    const next = list[i + 1];
    if (ctx.options.foldBatchNorm && layer.type === 'conv2d' && next?.type === 'batchnorm2d' && next.features === layer.out) {
      value = conv(ctx, layer, value, site(i), { layer: next, site: site(i + 1) });
      folded = i + 1;
    } else {
      value = mapLayer(ctx, layer, value, site(i));
    }
  }
  return value;
}

/**
 * Every layer type of the spec language. The type makes a new layer type a compile error
 * here until it has a mapping; mapLayer still checks at run time, for specs read from JSON.
 */
const MAPPINGS: { [T in Layer['type']]: Mapper<T> } = {
  conv2d: (ctx, layer, x, site) => conv(ctx, layer, x, site),
  batchnorm2d: (ctx, layer, x, site) => {
    const [c] = expectImage(layer, x, site);
    if (c !== layer.features) throw new OnnxExportError(`${describe(layer, site)} expects ${layer.features} channels, got ${c}`);
    const inputs = ['weight', 'bias', 'running_mean', 'running_var'].map((key) =>
      ctx.graph.floats(`${site.prefix}${key}`, [c], ctx.weight(site, key, [c])),
    );
    const name = ctx.graph.node('BatchNormalization', [x.name, ...inputs], site.path, { epsilon: { float: layer.eps ?? 1e-5 } });
    return { name, shape: x.shape };
  },
  dropout: identity,
  dropout2d: identity,
  relu: (ctx, _layer, x, site) => ({ name: ctx.graph.node('Relu', [x.name], site.path), shape: x.shape }),
  maxpool2d: pool('MaxPool'),
  avgpool2d: pool('AveragePool'),
  adaptiveavgpool2d: adaptiveAvgPool,
  flatten: (ctx, _layer, x, site) => ({
    name: ctx.graph.node('Flatten', [x.name], site.path, { axis: 1 }),
    shape: [x.shape.reduce((a, b) => a * b, 1)],
  }),
  linear: (ctx, layer, x, site) => {
    if (x.shape.length !== 1 || x.shape[0] !== layer.in) {
      throw new OnnxExportError(`${describe(layer, site)} expects [batch, ${layer.in}] input, got [batch, ${x.shape.join(', ')}]`);
    }
    const inputs = [x.name, ctx.graph.floats(`${site.prefix}weight`, [layer.out, layer.in], ctx.weight(site, 'weight', [layer.out, layer.in]))];
    if (layer.bias !== false) inputs.push(ctx.graph.floats(`${site.prefix}bias`, [layer.out], ctx.weight(site, 'bias', [layer.out])));
    return { name: ctx.graph.node('Gemm', inputs, site.path, { transB: 1 }), shape: [layer.out] };
  },
  logsoftmax: (ctx, _layer, x, site) => ({ name: ctx.graph.node('LogSoftmax', [x.name], site.path, { axis: 1 }), shape: x.shape }),
  sequential: (ctx, layer, x, site) => sequence(ctx, layer.layers, x, (i) => children(site, 'layers', i)),
  concat: (ctx, layer, x, site) => {
    const outs = layer.branches.map((branch, i) => mapLayer(ctx, branch, x, children(site, 'branches', i)));
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

  const out = sequence(ctx, spec.layers, input, (i) => ({ path: `layers[${i}]`, prefix: `${i}.` }));
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
