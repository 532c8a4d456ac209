import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

// Asynchronous on purpose: a synchronous child blocks the test worker, and a worker blocked
// for a minute on a loaded machine loses its RPC link to vitest ("Timeout calling onTaskUpdate").
const exec = promisify(execFile);
const run = async (args: string[]): Promise<string> => (await exec(process.execPath, args, { cwd: process.cwd(), encoding: 'utf8', env: { ...process.env, CI: '1' } })).stdout;

// The examples import 'torchlet' as a user would, which resolves to the built dist/.
beforeAll(async () => {
  await exec('npx', ['tsup', '--silent'], { cwd: process.cwd() });
}, 120_000);

describe('examples/', () => {
  it('holds the examples this test runs', () => {
    expect(readdirSync('examples').sort()).toEqual(['custom-model.ts', 'quickstart.ts', 'tune-super-light.yaml']);
  });

  it('quickstart trains, saves, reloads and predicts', async () => {
    const out = await run(['--import', 'tsx', 'examples/quickstart.ts']);
    expect(out).toMatch(/SuperLight: 4842 parameters on cpu/);
    const accuracies = [...out.matchAll(/test accuracy (\d+\.\d+)%/g)].map((m) => Number(m[1]));
    expect(accuracies.length).toBe(3);
    expect(accuracies[1]).toBeGreaterThan(90);
    // The reloaded weights score exactly what the trained model scored.
    expect(out).toMatch(new RegExp(`reloaded weights: test accuracy ${accuracies[1]!.toFixed(2)}%`));
    expect(out).toMatch(/first test image: predicted 7/);
  });

  it('custom-model builds a concat architecture and trains it', async () => {
    const out = await run(['--import', 'tsx', 'examples/custom-model.ts']);
    const params = Number(/tiny_inception: (\d+) parameters/.exec(out)?.[1]);
    expect(params).toBeGreaterThan(1000);
    expect(params).toBeLessThan(8000);
    expect(Number(/test accuracy (\d+\.\d+)%/.exec(out)?.[1])).toBeGreaterThan(50);
  });
});
