// What a config may ask for when it arrives over HTTP (or from the queue): the schema of
// `torchlet train --config`, data only from under an allowed data directory, and no output
// path (a queued run's weights live in the store).
import { existsSync, realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { ConfigError, parseConfig, parseDataset, resolveConfig, type ResolvedConfig } from '../config.js';
import type { Recipe } from '../recipe.js';
import { models } from '../zoo/index.js';

/** The allowed data directory: TORCHLET_DATA_ROOT, else ./data. */
export function defaultDataRoot(): string {
  return resolve(process.env.TORCHLET_DATA_ROOT || 'data');
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** `path` resolved against `root`, following symbolic links; undefined when it leaves root. */
function underRoot(root: string, path: string): string | undefined {
  const real = existsSync(root) ? realpathSync(root) : resolve(root);
  let dir = resolve(real, path);
  if (existsSync(dir)) dir = realpathSync(dir);
  return inside(real, dir) ? dir : undefined;
}

/**
 * Validates a job's config. `dataDir`, and a Kaggle dataset's folder, are resolved against
 * `dataRoot` and must stay under it (after following symbolic links); `out` is refused.
 */
export function checkJobConfig(raw: unknown, dataRoot: string, source = 'config'): { config: ResolvedConfig; recipe: Recipe } {
  const cfg = parseConfig(raw, source);
  if (cfg.out !== undefined) throw new ConfigError(source, [{ field: 'out', message: "not accepted for a queued run: its weights are kept in the run store (GET /runs/{id}/artifacts/best.pt)" }]);
  const resolved = resolveConfig(cfg, source, models);
  const outside = (field: string, given: string): ConfigError =>
    new ConfigError(source, [{ field, message: `must name a folder under the allowed data directory (${dataRoot}), not '${given}'` }]);
  if (cfg.dataDir !== undefined) {
    const dir = underRoot(dataRoot, cfg.dataDir);
    if (dir === undefined) throw outside('dataDir', cfg.dataDir);
    resolved.config.dataDir = dir;
  }
  const dataset = parseDataset(resolved.config.dataset);
  if (dataset.kind === 'kaggle') {
    const dir = underRoot(dataRoot, dataset.dir);
    if (dir === undefined) throw outside('dataset', dataset.dir);
    resolved.config.dataset = `kaggle:${dir}`;
  }
  return resolved;
}
