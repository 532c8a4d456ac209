// What a config may ask for when it arrives over HTTP (or from the queue): the schema of
// `torchlet train --config`, data only from under an allowed data directory, and no output
// path (a queued run's weights live in the store).
import { existsSync, realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { ConfigError, parseConfig, resolveConfig, type ResolvedConfig } from '../config.js';
import type { Recipe } from '../recipe.js';

/** The allowed data directory: TORCHLET_DATA_ROOT, else ./data. */
export function defaultDataRoot(): string {
  return resolve(process.env.TORCHLET_DATA_ROOT || 'data');
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * Validates a job's config. `dataDir` is resolved against `dataRoot` and must stay under
 * it (after following symbolic links); `out` is refused.
 */
export function checkJobConfig(raw: unknown, dataRoot: string, source = 'config'): { config: ResolvedConfig; recipe: Recipe } {
  const cfg = parseConfig(raw, source);
  if (cfg.out !== undefined) throw new ConfigError(source, [{ field: 'out', message: "not accepted for a queued run: its weights are kept in the run store (GET /runs/{id}/artifacts/best.pt)" }]);
  const resolved = resolveConfig(cfg, source);
  if (cfg.dataDir !== undefined) {
    const root = existsSync(dataRoot) ? realpathSync(dataRoot) : resolve(dataRoot);
    let dir = resolve(root, cfg.dataDir);
    if (existsSync(dir)) dir = realpathSync(dir);
    if (!inside(root, dir)) throw new ConfigError(source, [{ field: 'dataDir', message: `must name a folder under the allowed data directory (${dataRoot}), not '${cfg.dataDir}'` }]);
    resolved.config.dataDir = dir;
  }
  return resolved;
}
