// Types for the parts of libtorch.mjs that TypeScript code (bench/, tests/) imports.
export interface FoundLibtorch {
  source: string;
  includes: string[];
  libdir: string;
}
export function findLibtorch(env?: NodeJS.ProcessEnv): FoundLibtorch | undefined;
export function blasOf(found: FoundLibtorch): { path: string; reference: boolean } | undefined;
export function isReferenceBlas(path: string): boolean;
