// The worker `torchlet serve` starts: a child process, so that a crash in training (or in
// libtorch) cannot take the server down. It is restarted when it dies, and it exits when
// the server does, even on kill -9 (it watches its IPC channel); a run it leaves behind is
// requeued once its lease goes stale and resumed from its last checkpoint.
import { spawn, type ChildProcess } from 'node:child_process';

export interface LocalWorkerOptions {
  /** How to run the torchlet CLI: [node, ...its flags, the CLI's entry file]. */
  cli: string[];
  /** The store's location: an SQLite path or a postgres:// URL. */
  store: string;
  dataRoot: string;
  /** Lease in seconds (the worker's --lease). */
  leaseS: number;
  log: (line: string) => void;
}

export interface LocalWorker {
  readonly pid: number | undefined;
  /** Stops the worker: it ends at once when idle; a run in progress is stopped and resumed later. */
  stop(): Promise<void>;
}

export function startLocalWorker(options: LocalWorkerOptions): LocalWorker {
  const [node, ...prefix] = options.cli;
  if (node === undefined) throw new RangeError('cli must name the node binary');
  let child: ChildProcess | undefined;
  let stopping = false;
  let restarts = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = (): void => {
    const args = [...prefix, 'worker', '--data-root', options.dataRoot, '--lease', String(options.leaseS), '--id', `serve-${process.pid}-${restarts}`];
    const started = Date.now();
    // The store goes by environment, not argv, so a PostgreSQL password does not show in ps.
    const proc = spawn(node, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, TORCHLET_STORE: options.store } });
    child = proc;
    options.log(`local worker started (pid ${proc.pid ?? '?'})`);
    exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        child = undefined;
        resolve();
        if (stopping) return;
        // A worker that lived a while gets restarted at once; one that keeps dying, less and less often.
        restarts++;
        const delay = Date.now() - started > 60_000 ? 1000 : Math.min(30_000, 1000 * 2 ** Math.min(restarts, 5));
        options.log(`local worker exited (${signal ?? `code ${String(code)}`}); restarting in ${delay / 1000} s`);
        restartTimer = setTimeout(start, delay);
      });
      proc.on('error', (err) => options.log(`local worker: ${err.message}`));
    });
  };
  start();

  return {
    get pid() {
      return child?.pid;
    },
    async stop() {
      stopping = true;
      clearTimeout(restartTimer);
      const proc = child;
      if (proc === undefined) return;
      proc.kill('SIGTERM');
      // An idle worker exits at the signal; a busy one would finish its run first, so it is stopped.
      const killer = setTimeout(() => proc.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(killer);
    },
  };
}
