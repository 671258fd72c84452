/** A zone file problem, with the file, line and column (1-based) where it was found. */
export class ZoneFileError extends Error {
  override name = 'ZoneFileError';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    /** The message without the position. */
    readonly problem: string,
  ) {
    super(`${file}:${line}:${column}: ${problem}`);
  }
}

/** Thrown by the pure helpers; the parser turns it into a ZoneFileError with the position. */
export class ZoneSyntaxError extends Error {
  constructor(
    message: string,
    /** Offset within the token or record data that was wrong, when known. */
    readonly offset = 0,
  ) {
    super(message);
  }
}
