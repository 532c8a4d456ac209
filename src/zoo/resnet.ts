// torchvision's ResNet (models/resnet.py) with BasicBlock: resnet18 and resnet34.
// Same module tree and state_dict keys (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0,
// fc, ...); the first convolution takes `channels` inputs, the classifier `classes` outputs.
import { layers as L, type Layer, type ModelSpec } from '../spec.js';
import { resolve, zooModel, type ZooOptions } from './common.js';

const conv3x3 = (inC: number, outC: number, stride = 1): Layer => L.conv2d(inC, outC, 3, { stride, padding: 1, bias: false });

/** BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + downsample(x)). */
function basicBlock(inC: number, outC: number, stride: number): Layer {
  const downsample = stride !== 1 || inC !== outC ? L.named('downsample', L.sequential(L.conv2d(inC, outC, 1, { stride, bias: false }), L.batchNorm2d(outC))) : undefined;
  return L.sequential(
    L.inline(
      L.residual(
        [
          L.named('conv1', conv3x3(inC, outC, stride)),
          L.named('bn1', L.batchNorm2d(outC)),
          L.named('relu', L.relu()),
          L.named('conv2', conv3x3(outC, outC)),
          L.named('bn2', L.batchNorm2d(outC)),
        ],
        downsample,
      ),
    ),
    L.relu(), // torchvision reuses `relu` here; a ReLU has no state, so its key does not matter
  );
}

function resnet(name: string, blocks: [number, number, number, number], options: ZooOptions): ModelSpec {
  const r = resolve(options);
  const widths = [64, 128, 256, 512];
  let inC = 64;
  const stages = widths.map((width, i) => {
    const stage = Array.from({ length: blocks[i] ?? 0 }, (_, b) => {
      const block = basicBlock(inC, width, b === 0 && i > 0 ? 2 : 1);
      inC = width;
      return block;
    });
    return L.named(`layer${i + 1}`, L.sequential(...stage));
  });
  return zooModel(name, r, [
    L.named('conv1', L.conv2d(r.channels, 64, 7, { stride: 2, padding: 3, bias: false })),
    L.named('bn1', L.batchNorm2d(64)),
    L.named('relu', L.relu()),
    L.named('maxpool', L.maxPool2d(3, 2, { padding: 1 })),
    ...stages,
    L.named('avgpool', L.globalAvgPool()),
    L.flatten(),
    L.named('fc', L.linear(512, r.classes)),
  ]);
}

export const resnet18 = (options: ZooOptions = {}): ModelSpec => resnet('resnet18', [2, 2, 2, 2], options);
export const resnet34 = (options: ZooOptions = {}): ModelSpec => resnet('resnet34', [3, 4, 6, 3], options);
