// `torchlet serve --processes 2`: two server processes behind one port (node:cluster). Both
// answer, /metrics sums them, a killed process is replaced while the other keeps serving,
// SIGTERM drains both and exits 0, and a bad flag is one error and exit code 2.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finished, spawnCli } from '../helpers/spawn.js';
import { mnistDigits, mnistPng, spawnServer } from './helpers.js';

/** GET on a fresh connection (fetch would keep one alive, and so one process), as JSON. */
function getFresh(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject).end();
  });
}

/** The pid of the cluster's process `index`, a child of the primary with TORCHLET_SERVE_PROCESS=index. */
function processPid(primary: number, index: number): number | undefined {
  const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(primary)], { encoding: 'utf8' }).split('\n').map(Number).filter((p) => p > 0);
  return children.find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`TORCHLET_SERVE_PROCESS=${index}`);
    } catch {
      return false;
    }
  });
}

async function answeringProcesses(url: string, requests: number): Promise<Set<unknown>> {
  const seen = new Set<unknown>();
  for (let i = 0; i < requests; i++) {
    const r = await getFresh(`${url}/healthz`);
    expect(r.status).toBe(200);
    seen.add(r.body.process);
  }
  return seen;
}

describe('serve --processes 2', () => {
  let server: Awaited<ReturnType<typeof spawnServer>>;
  beforeAll(async () => {
    server = await spawnServer(['--processes', '2', '--no-runs']);
  }, 120_000);
  afterAll(() => {
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
  });

  it('answers from both processes on one port, and predicts', async () => {
    expect(await answeringProcesses(server.url, 20)).toEqual(new Set([0, 1]));
    const [digit] = await mnistDigits([0]);
    const r = await fetch(`${server.url}/predict`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: mnistPng(digit!) });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { digit: number }).digit).toBe(digit!.label);
  });

  it("sums both processes' counters in /metrics, whichever one is scraped", async () => {
    const count = async (): Promise<number> => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const m = /^torchlet_http_requests_total\{method="GET",route="\/healthz",status="200"\} (\d+)/m.exec(text);
      return Number(m?.[1] ?? 0);
    };
    const before = await count();
    expect(await answeringProcesses(server.url, 10)).toEqual(new Set([0, 1]));
    expect(await count()).toBe(before + 10);
    expect(await (await fetch(`${server.url}/metrics`)).text()).toMatch(/^torchlet_models_loaded 3$/m);
  });

  it('replaces a process killed with SIGKILL; the other answers meanwhile', async () => {
    const pid = processPid(server.child.pid!, 1);
    expect(pid).toBeGreaterThan(0);
    process.kill(pid!, 'SIGKILL');
    const r = await getFresh(`${server.url}/healthz`);
    expect(r.status).toBe(200);
    let replaced: number | undefined;
    for (let i = 0; i < 600 && (replaced === undefined || replaced === pid); i++) {
      await sleep(100);
      replaced = processPid(server.child.pid!, 1);
    }
    expect(replaced).toBeGreaterThan(0);
    expect(replaced).not.toBe(pid);
    // The new process listens once it has loaded its models.
    let seen = new Set<unknown>();
    for (let i = 0; i < 60 && !seen.has(1); i++) {
      seen = await answeringProcesses(server.url, 10);
      if (!seen.has(1)) await sleep(500);
    }
    expect(seen).toEqual(new Set([0, 1]));
  }, 120_000);

  it('drains both processes on SIGTERM and exits 0', async () => {
    const pids = [processPid(server.child.pid!, 0), processPid(server.child.pid!, 1)];
    server.child.kill('SIGTERM');
    const r = await server.result;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/server process 1 died \(SIGKILL\); restarting it/);
    for (const pid of pids) expect(() => process.kill(pid!, 0)).toThrow();
  }, 60_000);
});

it('serve --processes 2 with weights that do not exist: one error, exit code 2', async () => {
  const r = await finished(spawnCli(['serve', '--port', '0', '--no-runs', '--processes', '2', '--weights', '/nonexistent/w.pt']));
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/cannot load weights '\/nonexistent\/w\.pt'/);
  expect(r.stderr.match(/^torchlet: /gm), r.stderr).toHaveLength(1);
}, 120_000);

it('serve --processes 2 drains on Ctrl-C, which the terminal sends to every process of the group', async () => {
  const server = await spawnServer(['--processes', '2', '--no-runs']);
  try {
    expect(await answeringProcesses(server.url, 20)).toEqual(new Set([0, 1]));
    const servers = [processPid(server.child.pid!, 0), processPid(server.child.pid!, 1)];
    for (const pid of [...servers, server.child.pid]) process.kill(pid!, 'SIGINT');
    const r = await server.result;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/without waiting/);
    expect(r.stderr.match(/drained; bye/g)).toHaveLength(2);
  } finally {
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
  }
}, 120_000);
