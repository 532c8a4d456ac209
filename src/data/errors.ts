// A dedicated error type lets the CLI print data problems as user errors (exit 2, no
// stack) and lets callers branch on `code` instead of matching message text.

export type DataErrorCode =
  | 'NOT_FOUND'
  | 'IS_DIRECTORY'
  | 'EMPTY_FILE'
  | 'READ_FAILED'
  | 'TRUNCATED_GZIP'
  | 'CORRUPT_GZIP'
  | 'TRUNCATED'
  | 'BAD_MAGIC'
  | 'BAD_DTYPE'
  | 'BAD_DIMS'
  | 'SIZE_MISMATCH'
  | 'BAD_SHAPE'
  | 'COUNT_MISMATCH'
  | 'LABEL_RANGE'
  | 'CHECKSUM'
  | 'DOWNLOAD_FAILED'
  | 'BAD_CSV';

export class DataError extends Error {
  override readonly name = 'DataError';
  readonly code: DataErrorCode;
  /** The file (or, for download failures, the target file) the problem concerns. */
  readonly file: string;

  constructor(code: DataErrorCode, file: string, problem: string, options?: ErrorOptions) {
    super(`${file}: ${problem}`, options);
    this.code = code;
    this.file = file;
  }
}
