// The parallel-branch CNN of trakru/mnist-prod-ml (model/network.py) as the issue
// describes it: conv1 (1 -> 32 at 28x28), then two branches that both read conv1's pooled
// output, conv2_i (32 -> 64 at 14x14) and conv3_i (64 -> 256 at 7x7), concatenated to 512
// channels, then fc1 (1,000), fc2 (500) and fc3 (10).
//
// Choices where the description is open, taken from the original repository: 3x3
// kernels with padding 1 and stride 1, conv2_i grouped in 2 (`groups=2`), ReLU after every
// convolution and hidden fully connected layer, 2x2 max pooling to halve the resolution.
// The original sums the two conv2 outputs and runs one conv3 chain (64 -> 512 -> 512) with
// no dropout; the description here keeps two branches to the end and asks for dropout in
// the fully connected layers, which is 0.5 (the classic choice; pytorch/examples uses it
// before its last layer too).
import { layers as L, type ModelSpec } from '../spec.js';
import { resolve, zooModel, type ZooOptions } from './common.js';

export function parallelCnn(options: ZooOptions = {}): ModelSpec {
  const r = resolve(options);
  const p = options.dropout ?? 0.5;
  const branch = (i: number) =>
    L.inline(
      L.sequential(
        L.named(`conv2_${i}`, L.conv2d(32, 64, 3, { padding: 1, groups: 2 })),
        L.relu(),
        L.maxPool2d(2),
        L.named(`conv3_${i}`, L.conv2d(64, 256, 3, { padding: 1 })),
        L.relu(),
      ),
    );
  const cells = Math.floor(Math.floor(r.height / 2) / 2) * Math.floor(Math.floor(r.width / 2) / 2);
  return zooModel('parallel_cnn', r, [
    L.named('conv1', L.conv2d(r.channels, 32, 3, { padding: 1 })),
    L.relu(),
    L.maxPool2d(2),
    L.inline(L.concat(branch(1), branch(2))),
    L.flatten(),
    L.named('fc1', L.linear(512 * cells, 1000)),
    L.relu(),
    L.dropout(p),
    L.named('fc2', L.linear(1000, 500)),
    L.relu(),
    L.dropout(p),
    L.named('fc3', L.linear(500, r.classes)),
  ]);
}
