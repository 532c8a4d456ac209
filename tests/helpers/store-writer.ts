// A child process for the multi-process store tests: creates, claims and records runs in
// a loop against the store named on the command line, then prints what it claimed.
import { RunStore } from '../../src/store/store.js';

const [location, worker, rounds] = process.argv.slice(2) as [string, string, string];
const store = await RunStore.open(location);
const claimed: string[] = [];
const record = { epoch: 1, trainLoss: 1, trainAccuracy: 0.5, testLoss: 1, testAccuracy: 0.5, stepLoss: 1, stepAccuracy: 0.5, lr: 0.01, seconds: 1 };
for (let i = 0; i < Number(rounds); i++) {
  const own = await store.createRun({ config: { i }, experiment: 'processes', name: `${worker}-${i}` });
  await store.putArtifact(own.id, 'blob.bin', Buffer.alloc(64 * 1024, i));
  const run = await store.claimRun(worker, 60_000);
  if (run !== undefined) {
    claimed.push(run.id);
    await store.heartbeat(run.id, worker, 60_000, { epoch: 0, step: i, steps: 10, loss: 1, accuracy: 0.1, lr: 0.01 });
    await store.recorder(run.id, worker).epoch(record);
  }
}
await store.close();
process.stdout.write(`${JSON.stringify(claimed)}\n`);
