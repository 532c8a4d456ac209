import { describe, expect, it } from 'vitest';
import { Dataset, Model, models, native } from '../src/index.js';

const b = native();

describe('native entry points turn C++ failures into JS errors', () => {
  it('throws TypeError for wrong argument types', () => {
    expect(() => new b.Model(undefined as never)).toThrow(TypeError);
    expect(() => new b.Dataset('x' as never, new Uint8Array(1), [1, 1, 1, 1])).toThrow(TypeError);
    const model = new Model(models.light);
    expect(() => model.handle.save(42 as never)).toThrow(TypeError);
    expect(() => model.handle.predict([1, 2, 3] as never)).toThrow(TypeError);
    expect(() => new b.Trainer({} as never, { optimizer: { type: 'adamw', lr: 0.1 } })).toThrow(TypeError);
    expect(() => new b.Trainer(model.handle, { optimizer: { type: 'adamw', lr: 'fast' as never } })).toThrow(/'lr' must be a number, got string/);
    expect(() => b.setNumThreads('two' as never)).toThrow(TypeError);
    model.dispose();
  });

  it('rejects unusable values: NaN or negative learning rates, batch size 0, bad devices', () => {
    const model = new Model(models.light);
    expect(() => new b.Trainer(model.handle, { optimizer: { type: 'adamw', lr: NaN } })).toThrow(/finite/);
    expect(() => new b.Trainer(model.handle, { optimizer: { type: 'adamw', lr: -0.1 } })).toThrow(/lr must be a positive number/);
    expect(() => new b.Trainer(model.handle, { optimizer: { type: 'adamw', lr: 0.1 }, batchSize: 0 })).toThrow(/batchSize must be a positive integer/);
    expect(() => new b.Trainer(model.handle, { optimizer: { type: 'sgd', lr: 0.1, nesterov: true } })).toThrow(/nesterov needs momentum/);
    expect(() => new b.Trainer(model.handle, { optimizer: { type: 'adamw', lr: 0.1 }, scheduler: { type: 'onecycle', maxLr: 0.1, totalSteps: 0 } })).toThrow(/totalSteps/);
    expect(() => new Model(models.light, { device: 'tpu' })).toThrow(/device must be 'cpu', 'cuda', 'cuda:N' or 'auto'/);
    if (!b.cudaIsAvailable()) expect(() => new Model(models.light, { device: 'cuda:0' })).toThrow(/CUDA/);
    expect(b.resolveDevice('auto')).toBe(b.cudaIsAvailable() ? 'cuda:0' : 'cpu');
    expect(() => b.setNumThreads(0)).toThrow(RangeError);
    model.dispose();
  });

  it('rejects disposed models and datasets', async () => {
    const model = new Model(models.light);
    const data = Dataset.fromArrays(new Uint8Array(4 * 784), new Uint8Array(4), [4, 1, 28, 28]);
    model.dispose();
    expect(model.handle.disposed).toBe(true);
    expect(() => model.numParams()).toThrow(/disposed/);
    expect(() => model.predict(new Uint8Array(784))).toThrow(/disposed/);
    expect(() => new b.Trainer(model.handle, { optimizer: { type: 'adamw', lr: 0.1 } })).toThrow(/disposed/);
    const other = new Model(models.light);
    data.dispose();
    await expect(other.evaluate(data)).rejects.toThrow(/disposed/);
    other.dispose();
  });

  it('rejects shape mismatches between data and model', async () => {
    const model = new Model(models.light);
    expect(() => model.predict(new Uint8Array(100))).toThrow(/one 1x28x28 image \(784 values\), got 100/);
    expect(() => model.logProbs(new Uint8Array(785))).toThrow(/not a multiple of one image's 784/);
    expect(() => Dataset.fromArrays(new Uint8Array(10), new Uint8Array(1), [1, 1, 28, 28])).toThrow(/hold 10 bytes, but shape \[1, 1, 28, 28\] needs 784/);
    expect(() => Dataset.fromArrays(new Uint8Array(784 * 2), new Uint8Array(3), [2, 1, 28, 28])).toThrow(/2 images but 3 labels/);
    const small = Dataset.fromArrays(new Uint8Array(2 * 64), new Uint8Array(2), [2, 1, 8, 8]);
    await expect(model.evaluate(small)).rejects.toThrow(/dataset images are \[1, 8, 8\] but model 'light' takes \[1, 28, 28\]/);
    const badLabels = Dataset.fromArrays(new Uint8Array(2 * 784), new Uint8Array([3, 12]), [2, 1, 28, 28]);
    await expect(model.evaluate(badLabels)).rejects.toThrow(/label 12 but model 'light' has only 10 classes/);
    model.dispose();
  });

  it('reports libtorch failures (an unreadable weights file) as plain JS errors', () => {
    const model = new Model(models.light);
    expect(() => model.load('/nonexistent/weights.pt')).toThrow(/cannot read '\/nonexistent\/weights.pt'/);
    expect(() => model.load('/tmp')).toThrow(/is a directory/);
    expect(() => model.save('/nonexistent-dir/w.pt')).toThrow(/cannot create/);
    model.dispose();
  });

  it('refuses to dispose or retrain a model while an epoch is running', async () => {
    const model = new Model(models.light);
    const data = Dataset.fromArrays(new Uint8Array(512 * 784), new Uint8Array(512), [512, 1, 28, 28]);
    const trainer = new b.Trainer(model.handle, { optimizer: { type: 'adamw', lr: 0.01 }, batchSize: 64 });
    const running = trainer.trainEpoch(data.handle, 0);
    expect(() => model.dispose()).toThrow(/while it is training/);
    expect(() => trainer.trainEpoch(data.handle, 1)).toThrow(/busy/);
    await running;
    expect(() => trainer.trainEpoch(data.handle, 1, 'nope' as never)).toThrow(TypeError);
    trainer.dispose();
    model.dispose();
  });

  it('surfaces an exception thrown by the progress callback as the rejection', async () => {
    const model = new Model(models.light);
    const data = Dataset.fromArrays(new Uint8Array(256 * 784), new Uint8Array(256), [256, 1, 28, 28]);
    const trainer = new b.Trainer(model.handle, { optimizer: { type: 'adamw', lr: 0.01 }, batchSize: 16 });
    await expect(
      trainer.trainEpoch(data.handle, 0, () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow(/progress callback threw: boom/);
    trainer.dispose();
    model.dispose();
  });
});
