// `torchlet worker`: trains queued runs from a store, on this machine.
import { Command } from 'commander';
import { InputError, message, positiveNumber } from './common.js';

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('claim queued runs from a run store and train them, one at a time (run one per machine, or several against PostgreSQL)')
    .option('--store <url>', 'run store: postgres://... for workers on many machines (default: TORCHLET_STORE or ./torchlet-runs/runs.db)')
    .option('--id <name>', "this worker's name in the store (default: <host>-<pid>)")
    .option('--lease <seconds>', 'a run whose worker has not renewed its lease for this long is requeued', positiveNumber('--lease'), 30)
    .option('--poll <seconds>', 'how often an idle worker looks for queued runs', positiveNumber('--poll'), 1)
    .option('--data-root <dir>', 'the only folder configs may name data under (default: TORCHLET_DATA_ROOT or ./data)')
    .option('--until-empty', 'exit once the queue is empty')
    .action(async (flags: { store?: string; id?: string; lease: number; poll: number; dataRoot?: string; untilEmpty?: boolean }) => {
      const { openStore } = await import('../store/index.js');
      const { runWorker, defaultDataRoot } = await import('../jobs/index.js');
      const store = await openStore(flags.store).catch((err: unknown) => Promise.reject(new InputError(message(err))));
      const stop = new AbortController();
      // The first signal stops after the current run; a second one exits now (the run's lease then goes stale and another worker resumes it).
      const onSignal = (): void => {
        if (stop.signal.aborted) process.exit(130);
        process.stderr.write('torchlet worker: stopping after the current run (signal again to exit now)\n');
        stop.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      // Started by `torchlet serve` (with an IPC channel): when the server goes, even by kill -9,
      // so does its worker; the run's lease then goes stale and the restarted server resumes it.
      if (process.send !== undefined) process.on('disconnect', () => process.exit(1));
      try {
        await runWorker(store, {
          ...(flags.id !== undefined && { id: flags.id }),
          leaseMs: flags.lease * 1000,
          pollMs: flags.poll * 1000,
          dataRoot: flags.dataRoot ?? defaultDataRoot(),
          untilEmpty: flags.untilEmpty ?? false,
          signal: stop.signal,
          log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
        });
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await store.close();
      }
    });
}
