// Per-run training logs: a human-readable .log and a machine-readable .jsonl beside it,
// named <model>-<aug|noaug>-<timestamp>.
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { EpochRecord } from './train.js';

export interface RunHeader {
  model: string;
  aug: boolean;
  params: number;
  device: string;
  threads: number;
  recipe: object;
}

export class RunLog {
  readonly logPath: string;
  readonly jsonlPath: string;

  constructor(dir: string, header: RunHeader, now = new Date()) {
    mkdirSync(dir, { recursive: true });
    const stamp = now.toISOString().replace(/[:.]/g, '-');
    const base = join(dir, `${header.model}-${header.aug ? 'aug' : 'noaug'}-${stamp}`);
    this.logPath = `${base}.log`;
    this.jsonlPath = `${base}.jsonl`;
    appendFileSync(this.logPath, `# ${header.model} (${header.params} params), aug=${header.aug}, device=${header.device}, threads=${header.threads}\n# recipe ${JSON.stringify(header.recipe)}\n`);
    appendFileSync(this.jsonlPath, `${JSON.stringify({ type: 'run', ...header, started: now.toISOString() })}\n`);
  }

  epoch(r: EpochRecord): void {
    appendFileSync(this.logPath, `${formatEpoch(r)}\n`);
    appendFileSync(this.jsonlPath, `${JSON.stringify({ type: 'epoch', ...r })}\n`);
  }
}

const pct = (x: number): string => (100 * x).toFixed(2);

export function formatEpoch(r: EpochRecord): string {
  const val = r.valAccuracy === undefined ? '' : ` | val loss ${r.valLoss?.toFixed(4)} acc ${pct(r.valAccuracy)}%`;
  return (
    `epoch ${String(r.epoch).padStart(2)} | train loss ${r.trainLoss.toFixed(4)} acc ${pct(r.trainAccuracy)}%` +
    ` | test loss ${r.testLoss.toFixed(4)} acc ${pct(r.testAccuracy)}%${val} | lr ${r.lr.toExponential(3)} | ${r.seconds.toFixed(1)}s`
  );
}

/** Reads the epoch records of a .jsonl log. */
export function parseRunLog(text: string, source: string): EpochRecord[] {
  const records: EpochRecord[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new Error(`${source}:${i + 1}: not valid JSON`);
    }
    if (typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'epoch') records.push(value as EpochRecord);
  });
  if (records.length === 0) throw new Error(`${source} holds no epoch records`);
  return records;
}

export function logDir(): string {
  return process.env.TORCHLET_LOG_DIR ?? 'training-logs';
}

