// Checked indexing for the numeric code (the project compiles with noUncheckedIndexedAccess
// and forbids non-null assertions): an out-of-range index is a bug, so it throws.
export function at<T>(xs: ArrayLike<T>, i: number): T {
  const v = xs[i];
  if (v === undefined) throw new RangeError(`index ${i} out of range (length ${xs.length})`);
  return v;
}

export function key<T>(record: Partial<Record<string, T>>, k: string): T {
  const v = record[k];
  if (v === undefined) throw new RangeError(`missing key '${k}'`);
  return v;
}
