// pytorch/examples' MNIST network (mnist/main.py, `Net`): two convolutions, max pooling,
// two dropouts and two fully connected layers; 1,199,882 parameters at 28x28.
import { layers as L, type ModelSpec } from '../spec.js';
import { resolve, zooModel, type ZooOptions } from './common.js';

export function simpleConvNet(options: ZooOptions = {}): ModelSpec {
  const r = resolve(options);
  const h = Math.floor((r.height - 4) / 2);
  const w = Math.floor((r.width - 4) / 2);
  return zooModel('simple_conv_net', r, [
    L.named('conv1', L.conv2d(r.channels, 32, 3)),
    L.relu(),
    L.named('conv2', L.conv2d(32, 64, 3)),
    L.relu(),
    L.maxPool2d(2),
    L.named('dropout1', L.dropout(options.dropout ?? 0.25)),
    L.flatten(),
    L.named('fc1', L.linear(64 * h * w, 128)),
    L.relu(),
    L.named('dropout2', L.dropout(options.dropout ?? 0.5)),
    L.named('fc2', L.linear(128, r.classes)),
  ]);
}
