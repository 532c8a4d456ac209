// The zoo through the ONNX exporter beyond what `npm test` runs (tests/export/onnx-zoo.test.ts,
// the lighter models): resnet18, mobilenet_v2 and vit folded and unfolded on 2,000 test
// images (ZOO_ONNX_FULL=10000 for the whole test set: not yet timed on an idle machine, and
// on the loaded 2-core one each model took over 10 minutes), and every other zoo model on
// 200 images; each file checked by python3-onnx and run by onnxruntime-web against torchlet
// (helpers/onnx-zoo.ts).
import { describe } from 'vitest';
import type { ZooName } from '../../src/index.js';
import { zooOnnxSuite } from '../helpers/onnx-zoo.js';

const FULL = Number(process.env.ZOO_ONNX_FULL ?? 2000);

describe(`on ${FULL} test images`, () => {
  const names: ZooName[] = ['resnet18', 'mobilenet_v2', 'vit'];
  zooOnnxSuite(names, FULL, new Set(names));
});

describe('the heavier models on 200 images', () => {
  const names: ZooName[] = ['parallel_cnn', 'resnet18', 'resnet34', 'mobilenet_v3_large', 'squeezenet1_0', 'efficientnet_b0', 'efficientnet_b3', 'mnasnet1_0'];
  zooOnnxSuite(names, 200, new Set<ZooName>(['resnet34', 'efficientnet_b0']));
});
