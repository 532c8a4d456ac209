// The released weights ship inside the package, under weights/.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelName } from './models.js';
import { packageRoot } from './package-root.js';

/** Path of the released state_dict of `model` (weights/<model>.pt in the package), checked to exist. */
export function releasedWeightsPath(model: ModelName): string {
  const root = packageRoot();
  const path = root === undefined ? undefined : join(root, 'weights', `${model}.pt`);
  if (path === undefined || !existsSync(path)) {
    throw new Error(`the released weights of '${model}' are missing (looked for ${path ?? `weights/${model}.pt beside binding.gyp`}); reinstall torchlet`);
  }
  return path;
}
