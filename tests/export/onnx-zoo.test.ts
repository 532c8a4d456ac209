// The lighter zoo models through the ONNX exporter on the first 200 test images
// (helpers/onnx-zoo.ts), a quick check; tests/faults/onnx-zoo-full.test.ts runs every zoo
// model on all 10,000.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeModel } from '../../src/export/schema.js';
import { Model, zoo, type ZooName } from '../../src/index.js';
import { finished, spawnCli } from '../helpers/cli.js';
import { zooOnnxSuite } from '../helpers/onnx-zoo.js';

const LIGHT: ZooName[] = ['simple_conv_net', 'vit', 'mobilenet_v2', 'mobilenet_v3_small', 'squeezenet1_1', 'mnasnet0_5'];
const names = (process.env.ZOO_ONLY?.split(',') as ZooName[] | undefined) ?? LIGHT;
// Unfolded too where the family has batch norms after convolutions.
zooOnnxSuite(names, Number(process.env.ZOO_ONNX_IMAGES ?? 200), { folded: true, unfolded: new Set<ZooName>(['mobilenet_v3_small', 'mnasnet0_5']) });

describe('torchlet export with a zoo model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'torchlet-onnx-zoo-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the file from --weights, and says that a zoo model has no released weights', async () => {
    const weights = join(dir, 'vit.pt');
    const model = new Model(zoo.vit(), { seed: 5 });
    model.save(weights);
    model.dispose();
    const out = join(dir, 'vit.onnx');
    const r = await finished(spawnCli(['export', '--model', 'vit', '--weights', weights, '--format', 'onnx', '--out', out]));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*vit\.onnx \(\d+ bytes, 205962 parameters; IR 8, opset 17, batch norm folded\)\ninput .input. float32 \[batch, 1, 28, 28\]/);
    const ops = decodeModel(readFileSync(out)).graph.node.map((n) => n.op_type);
    for (const op of ['Conv', 'Expand', 'LayerNormalization', 'Softmax', 'MatMul', 'Erf', 'Gather']) expect(ops).toContain(op);
    const missingWeights = await finished(spawnCli(['export', '--model', 'resnet18', '--format', 'onnx', '--out', join(dir, 'r.onnx')]));
    expect(missingWeights.code).toBe(2);
    expect(missingWeights.stderr).toMatch(/--model resnet18 has no released weights; pass --weights <file>/);
    expect(existsSync(join(dir, 'r.onnx'))).toBe(false);
  }, 120_000);
});
