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
