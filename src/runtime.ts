// Process-wide libtorch settings.
import { native } from './native.js';

export const cuda = {
  isAvailable: (): boolean => native().cudaIsAvailable(),
  deviceCount: (): number => native().cudaDeviceCount(),
};

/** Intra-op threads for libtorch; the addon starts with one per core. */
export function setThreads(n: number): void {
  native().setNumThreads(n);
}

export function getThreads(): number {
  return native().getNumThreads();
}
