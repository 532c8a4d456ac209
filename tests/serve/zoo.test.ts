// Any zoo model can be served from a weights file (`serve --model NAME --weights FILE`), by the
// real server over HTTP, beside the released models: listed by GET /models, answering
// /predict with the library's probabilities for the same pixels, and exported for the page's
// in-browser mode. A zoo model without weights is refused with a clear error. With no model
// named, the three released models are served, super_light the default (as the README says).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Model, models } from '../../src/index.js';
import { models as all } from '../../src/zoo/index.js';
import { cli, expectInputError } from '../helpers/cli.js';
import { mnistDigits, spawnServer, type Digit } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'torchlet-serve-zoo-'));
const WEIGHTS = join(tmp, 'simple_conv_net.pt');
let server: Awaited<ReturnType<typeof spawnServer>> | undefined;
let model: Model;
let digits: Digit[];

beforeAll(async () => {
  model = new Model(all.simple_conv_net, { seed: 3 });
  model.save(WEIGHTS);
  digits = await mnistDigits([0, 1, 2]);
  server = await spawnServer(['--no-runs', '--models', 'super_light', '--model', 'simple_conv_net', '--weights', WEIGHTS]);
});

afterAll(async () => {
  server?.child.kill('SIGTERM');
  await server?.result;
  model?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe('serve --model ZOO_MODEL --weights FILE', () => {
  it('lists the zoo model, as the default, beside the released ones', async () => {
    const listed = (await (await fetch(`${server!.url}/models`)).json()) as { default: string; models: { name: string; params: number; accuracy: number | null; source: string }[] };
    expect(listed.default).toBe('simple_conv_net');
    expect(listed.models.map((m) => m.name).sort()).toEqual(['simple_conv_net', 'super_light']);
    expect(listed.models.find((m) => m.name === 'simple_conv_net')).toMatchObject({ params: model.numParams(), accuracy: null, source: WEIGHTS });
    expect(model.numParams()).toBe(1_199_882);
  });

  it("answers /predict with the library's probabilities for the same pixels", async () => {
    for (const d of digits) {
      const r = await fetch(`${server!.url}/predict?model=simple_conv_net&image=false`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pixels: Array.from(d.pixels) }) });
      expect(r.status, await r.clone().text()).toBe(200);
      const answer = (await r.json()) as { model: string; digit: number; probabilities: number[] };
      const local = model.predict(d.pixels);
      expect(answer.model).toBe('simple_conv_net');
      expect(answer.digit).toBe(local.digit);
      answer.probabilities.forEach((p, i) => expect(p).toBeCloseTo(local.probabilities[i] ?? Number.NaN, 5));
    }
  });

  it('exports the zoo model as ONNX for the in-browser mode', async () => {
    const r = await fetch(`${server!.url}/models/simple_conv_net/model.onnx`);
    expect(r.status).toBe(200);
    // float32 initializers: about 4 bytes per parameter.
    expect((await r.arrayBuffer()).byteLength).toBeGreaterThan(4 * 1_199_882);
  });

  it('refuses a zoo model without weights, and an unknown model, naming them', async () => {
    expectInputError(await cli(['serve', '--no-runs', '--models', 'resnet18']), /cannot load resnet18: resnet18 has no released weights; give a weights file for it/);
    expectInputError(await cli(['serve', '--no-runs', '--models', 'resnet19']), /--models: unknown model 'resnet19'/);
    expect(Object.keys(models)).not.toContain('resnet18');
  });
});

describe('serve with no model named', () => {
  it('serves the three released models, super_light the default', async () => {
    const plain = await spawnServer(['--no-runs']);
    try {
      const listed = (await (await fetch(`${plain.url}/models`)).json()) as { default: string; models: { name: string }[] };
      expect(listed.default).toBe('super_light');
      expect(listed.models.map((m) => m.name).sort()).toEqual(['light', 'lightest', 'super_light']);
    } finally {
      plain.child.kill('SIGTERM');
      await plain.result;
    }
  });
});
