// A model removed from the registry while a request holds it (as /predict?run= evicts the
// least recently used run) keeps answering that request, and is disposed only after it.
import { describe, expect, it } from 'vitest';
import { loadServedModel } from '../../src/serve/models.js';
import { ModelRegistry, readOutput } from '../../src/serve/registry.js';
import { mnistDigits } from './helpers.js';

describe('ModelRegistry.hold and remove', () => {
  it('a held model answers its request after remove() began; remove() waits for release()', async () => {
    const registry = new ModelRegistry();
    try {
      registry.add(loadServedModel('super_light'));
      registry.add(loadServedModel('super_light', { as: 'evicted' }));
      const [digit] = await mnistDigits([0]);
      const held = registry.hold('evicted');
      let removed = false;
      const removing = registry.remove('evicted').then(() => (removed = true));
      // Gone for new requests at once...
      expect(registry.has('evicted')).toBe(false);
      expect(() => registry.hold('evicted')).toThrow(/unknown model 'evicted'/);
      // ...but the request that held it still gets its answer.
      const { digit: predicted } = readOutput(held.model, await held.batcher.submit(digit!.pixels));
      expect(predicted).toBe(digit!.label);
      await new Promise((r) => setTimeout(r, 20));
      expect(removed).toBe(false);
      held.release();
      held.release(); // twice is harmless
      await removing;
      expect(removed).toBe(true);
    } finally {
      await registry.close();
    }
  });
});

describe('a served model run inline', () => {
  it('gives a lone image the same scores on the event loop as through a worker, in the registry as alone', async () => {
    const digits = await mnistDigits([0, 1, 2, 3]);
    const inline = loadServedModel('super_light', { inline: true });
    const offThread = loadServedModel('super_light', { inline: false });
    const registry = new ModelRegistry();
    try {
      expect(inline.classifyInline).toBeTypeOf('function');
      expect(offThread.classifyInline).toBeUndefined();
      for (const d of digits) {
        expect(Array.from(inline.classifyInline!(d.pixels))).toEqual(Array.from(await offThread.classify(d.pixels, 1)));
      }
      registry.add(inline);
      const held = registry.hold();
      try {
        for (const d of digits) expect(readOutput(held.model, await held.batcher.submit(d.pixels)).digit).toBe(d.label);
      } finally {
        held.release();
      }
    } finally {
      offThread.dispose?.();
      await registry.close();
    }
  });
});
