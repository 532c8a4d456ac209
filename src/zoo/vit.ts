// A small Vision Transformer for 28x28 digits: 7x7 patches (16 tokens) embedded by a
// strided convolution, a learned class token and position embedding, pre-norm
// nn.TransformerEncoderLayer blocks and a linear head on the class token. The state names
// follow python/zoo.py's twin (conv_proj, class_token and pos_embedding as in torchvision's
// VisionTransformer; encoder.layers.N.* and encoder.norm as in nn.TransformerEncoder).
//
// Default size: width 64, 6 layers, 4 heads, MLP 128 (about 205k parameters), small enough
// to train an epoch of MNIST on 2 cores in a few minutes.
import { layers as L, type ModelSpec } from '../spec.js';
import { resolve, zooModel, type ZooOptions } from './common.js';

export interface VitOptions extends ZooOptions {
  patch?: number;
  dim?: number;
  depth?: number;
  heads?: number;
  mlp?: number;
}

export function vit(options: VitOptions = {}): ModelSpec {
  const r = resolve(options);
  const { patch = 7, dim = 64, depth = 6, heads = 4, mlp = 128, dropout = 0.1 } = options;
  if (r.height % patch !== 0 || r.width % patch !== 0) throw new RangeError(`vit: the ${r.height}x${r.width} input does not split into ${patch}x${patch} patches`);
  const tokens = (r.height / patch) * (r.width / patch) + 1;
  return zooModel('vit', r, [
    L.named('conv_proj', L.conv2d(r.channels, dim, patch, { stride: patch })),
    L.flatten(2), // [N, dim, patches]
    L.transpose(1, 2), // [N, patches, dim]
    L.named('class_token', L.token(dim)),
    L.named('pos_embedding', L.positionEmbedding(tokens, dim)),
    L.dropout(dropout),
    L.named(
      'encoder',
      L.sequential(
        L.named('layers', L.sequential(...Array.from({ length: depth }, () => L.transformerEncoderLayer(dim, heads, mlp, { dropout, activation: 'gelu', normFirst: true })))),
        L.named('norm', L.layerNorm(dim)),
      ),
    ),
    L.select(1, 0), // the class token
    L.named('head', L.linear(dim, r.classes)),
  ]);
}
