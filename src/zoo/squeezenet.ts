// torchvision's SqueezeNet 1.0 and 1.1 (models/squeezenet.py): Fire modules whose two
// expand convolutions are concatenated, with torchvision's keys (features.3.squeeze.weight,
// features.3.expand3x3.weight, classifier.1.weight).
import { layers as L, type Layer, type ModelSpec } from '../spec.js';
import { resolve, zooModel, type ZooOptions } from './common.js';

/** Fire: squeeze, then expand1x1 and expand3x3 side by side, all held by the Fire module itself. */
function fire(inC: number, squeeze: number, e1: number, e3: number): Layer {
  return L.sequential(
    L.named('squeeze', L.conv2d(inC, squeeze, 1)),
    L.named('squeeze_activation', L.relu()),
    L.inline(
      L.concat(
        L.inline(L.sequential(L.named('expand1x1', L.conv2d(squeeze, e1, 1)), L.named('expand1x1_activation', L.relu()))),
        L.inline(L.sequential(L.named('expand3x3', L.conv2d(squeeze, e3, 3, { padding: 1 })), L.named('expand3x3_activation', L.relu()))),
      ),
    ),
  );
}

const pool = (): Layer => L.maxPool2d(3, 2, { ceil: true });

function squeezenet(version: '1_0' | '1_1', options: ZooOptions): ModelSpec {
  const r = resolve(options);
  const features =
    version === '1_0'
      ? [
          L.conv2d(r.channels, 96, 7, { stride: 2 }), L.relu(), pool(),
          fire(96, 16, 64, 64), fire(128, 16, 64, 64), fire(128, 32, 128, 128), pool(),
          fire(256, 32, 128, 128), fire(256, 48, 192, 192), fire(384, 48, 192, 192), fire(384, 64, 256, 256), pool(),
          fire(512, 64, 256, 256),
        ]
      : [
          L.conv2d(r.channels, 64, 3, { stride: 2 }), L.relu(), pool(),
          fire(64, 16, 64, 64), fire(128, 16, 64, 64), pool(),
          fire(128, 32, 128, 128), fire(256, 32, 128, 128), pool(),
          fire(256, 48, 192, 192), fire(384, 48, 192, 192), fire(384, 64, 256, 256), fire(512, 64, 256, 256),
        ];
  return zooModel(`squeezenet${version}`, r, [
    L.named('features', L.sequential(...features)),
    L.named('classifier', L.sequential(L.dropout(options.dropout ?? 0.5), L.conv2d(512, r.classes, 1), L.relu(), L.globalAvgPool())),
    L.flatten(),
  ]);
}

export const squeezenet1_0 = (options: ZooOptions = {}): ModelSpec => squeezenet('1_0', options);
export const squeezenet1_1 = (options: ZooOptions = {}): ModelSpec => squeezenet('1_1', options);
