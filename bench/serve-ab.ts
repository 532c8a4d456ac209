// Same-run A/B of the serving path of two torchlet checkouts (each with its own sources and
// native build): `torchlet serve` from each, as bench:serve starts it, loaded in turn by
// wrk with bench:serve's two images at concurrency 1 and 16. Besides req/s, p50 and
// p99 it reports the server's CPU time per request (all its threads, from /proc: Linux
// only), which a busy machine disturbs less than latency. For judging a change on a shared
// machine: the absolute figures are the load's, compare the two columns.
//
//   npx tsx bench/serve-ab.ts --a ../torchlet-before --b . [--duration 3] [--reps 5]
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { benchImages, load, serveArgs, startServer, stop, type Point, type Server } from './serve.js';
import { fixed, int, log, median } from './runner.js';

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** CPU time (ms) of a process and all its descendants: tsx runs the server in a child. */
function treeCpuMs(pid: number): number {
  let ms = 0;
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0; // exited
  }
  for (const task of tasks) {
    try {
      const fields = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      ms += (Number(fields[11]) + Number(fields[12])) * TICK_MS;
      for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) ms += treeCpuMs(Number(child));
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return ms;
}

interface Sample extends Point {
  cpuUsPerRequest: number;
}

async function measure(server: Server, form: { body: Buffer; contentType: string }, connections: number, seconds: number): Promise<Sample> {
  const pid = server.proc.pid ?? 0;
  const before = treeCpuMs(pid);
  const p = await load(server, form, connections, seconds);
  return { ...p, cpuUsPerRequest: ((treeCpuMs(pid) - before) * 1000) / Math.max(1, p.ok + p.errors) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { a: { type: 'string' }, b: { type: 'string' }, duration: { type: 'string', default: '3' }, reps: { type: 'string', default: '5' } },
  });
  if (values.a === undefined || values.b === undefined) throw new Error('give the two checkouts: --a DIR --b DIR (each built: node_modules and build/)');
  const duration = Number(values.duration);
  const reps = Number(values.reps);
  if (!(duration > 0) || !(reps >= 1)) throw new RangeError('--duration and --reps must be positive');
  const roots = { a: resolve(values.a), b: resolve(values.b) };
  const images = await benchImages();
  const servers: Server[] = [];
  try {
    for (const [i, [label, root]] of Object.entries(roots).entries()) {
      const port = 21_000 + ((process.pid * 7 + i * 101) % 20_000);
      servers.push(await startServer(`${label}: ${root}`, 'torchlet', process.execPath, [...serveArgs(root), '--port', String(port)], port));
    }
    for (const s of servers) for (const img of images) await load(s, img.form, 16, 1);
    for (const img of images) {
      for (const c of [1, 16]) {
        const samples = new Map<Server, Sample[]>(servers.map((s) => [s, []]));
        for (let r = 0; r < reps; r++) for (const s of servers) samples.get(s)?.push(await measure(s, img.form, c, duration));
        for (const [s, xs] of samples) {
          const m = (f: (x: Sample) => number): number => median(xs.map(f));
          log(
            `${img.name}, c${c}, ${s.label}: median of ${reps}: ${int(m((x) => x.requestsPerSecond))} req/s, p50 ${fixed(2)(m((x) => x.p50Ms))} ms, ` +
              `p99 ${fixed(2)(m((x) => x.p99Ms))} ms, server CPU ${int(m((x) => x.cpuUsPerRequest))} us per request` +
              `${xs.some((x) => x.errors) ? `, ${xs.reduce((a, x) => a + x.errors, 0)} errors` : ''}`,
          );
        }
      }
    }
  } finally {
    await Promise.all(servers.map(stop));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`serve-ab failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
