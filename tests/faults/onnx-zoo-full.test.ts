// Every zoo model through the ONNX exporter on the whole MNIST test set, as the export issue
// asks of every built-in model (tests/export/onnx-zoo.test.ts is the quick check of the
// lighter ones in `npm test`): exported with batch norm folded, checked by python3-onnx,
// and run by onnxruntime-web, whose predictions must equal torchlet's on all 10,000 images
// (helpers/onnx-zoo.ts). The families with batch norm are also exported with it unfolded,
// and checked on the first 500 images: the same graph but for the normalisation nodes.
import { describe } from 'vitest';
import { zoo, type ZooName } from '../../src/index.js';
import { zooOnnxSuite } from '../helpers/onnx-zoo.js';

describe('every zoo model, batch norm folded, on all 10,000 test images', () => {
  zooOnnxSuite(Object.keys(zoo) as ZooName[], 10_000, { folded: true, unfolded: new Set() });
});

describe('batch norm unfolded, on 500 images', () => {
  const names: ZooName[] = ['resnet18', 'resnet34', 'mobilenet_v2', 'mobilenet_v3_small', 'mobilenet_v3_large', 'mnasnet0_5', 'mnasnet1_0', 'efficientnet_b0', 'efficientnet_b3'];
  zooOnnxSuite(names, 500, { folded: false, unfolded: new Set(names) });
});
