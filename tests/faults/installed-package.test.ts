// The package as users get it: `npm pack`, installed as a dependency of a fresh project
// (offline, from the local npm cache), must predict out of the box with the weights it
// ships, on a PNG that its own `extract` wrote. Slow: the install compiles the addon.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MNIST_DIR, ROOT, finished, type CliResult } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'torchlet-installed-'));

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return finished(spawn(command, args, { cwd, env: { ...process.env, TORCHLET_NO_APT: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
}

describe('torchlet installed from its npm tarball', () => {
  it('predicts the digit that extract printed, with the shipped weights', { timeout: 1_800_000 }, async () => {
    const packed = await run('npm', ['pack', '--pack-destination', work], ROOT);
    expect(packed.code, packed.stderr).toBe(0);
    expect(packed.stderr).toMatch(/weights\/super_light\.pt/);
    const tarball = join(work, readdirSync(work).find((f) => f.endsWith('.tgz'))!);

    const app = join(work, 'app');
    await run('mkdir', ['-p', app], work);
    writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`);
    const installed = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], app);
    expect(installed.code, installed.stdout + installed.stderr).toBe(0);

    const env = { TORCHLET_DATA: MNIST_DIR };
    const extracted = await run('npx', ['--no-install', 'torchlet', 'extract', '--index', '0', '--out', 'digit.png'], app, env);
    expect(extracted.code, extracted.stderr).toBe(0);
    const label = extracted.stdout.trim();
    expect(label).toBe('7');

    const predicted = await run('npx', ['--no-install', 'torchlet', 'predict', 'digit.png'], app, env);
    expect(predicted.code, predicted.stderr).toBe(0);
    expect(predicted.stdout).toMatch(new RegExp(`^digit\\.png\\s+${label}\\s+\\(`));

    // The library too, from the installed copy: its weights are inside node_modules.
    const script = [
      "import { Model, models, preprocessImage, releasedWeightsPath } from 'torchlet';",
      "const path = releasedWeightsPath('super_light');",
      "const model = Model.fromFile(models.super_light, path);",
      "const img = await preprocessImage('digit.png');",
      'console.log(JSON.stringify({ path, digit: model.predict(img.pixels).digit }));',
    ].join('\n');
    writeFileSync(join(app, 'use.mjs'), script);
    const used = await run(process.execPath, ['use.mjs'], app);
    expect(used.code, used.stderr).toBe(0);
    const out = JSON.parse(used.stdout) as { path: string; digit: number };
    expect(out.path).toBe(join(app, 'node_modules', 'torchlet', 'weights', 'super_light.pt'));
    expect(out.digit).toBe(7);
  });
});
