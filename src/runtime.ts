// Process-wide libtorch settings.
import { native, type CpuKernels } from './native.js';

export const cuda = {
  isAvailable: (): boolean => native().cudaIsAvailable(),
  deviceCount: (): number => native().cudaDeviceCount(),
};

/**
 * Intra-op threads for libtorch's multi-threaded work (training, evaluation, passes over more
 * than 64 rows), which runs on the addon's one compute thread; the addon starts with one per
 * core. Every other thread, the JS thread included, runs libtorch with one thread.
 */
export function setThreads(n: number): void {
  native().setNumThreads(n);
}

export function getThreads(): number {
  return native().getNumThreads();
}

/** The switches as the addon starts: every path on. */
export const DEFAULT_CPU_KERNELS: Readonly<CpuKernels> = Object.freeze({ channelsLast: true, fusedBatchNorm: true, cropConvs: true, inferencePlan: true, fusedAttention: true, fusedOptimizer: true, onednnGemm: true });

/**
 * Switches torchlet's own CPU paths on or off, process-wide, for every model; the switches
 * left out keep their value. They change how results are computed, not what they are:
 * switch one off to measure what it gives (`npm run bench:zoo -- --ablate`) or to rule it
 * out. Returns every switch's value.
 */
export function setCpuKernels(switches: Partial<CpuKernels>): CpuKernels {
  return native().setCpuKernels(switches);
}

export function getCpuKernels(): CpuKernels {
  return native().getCpuKernels();
}
