/** A config problem a person can fix: where (file:line:col), which key, and what is wrong. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly key: string,
    readonly problem: string,
  ) {
    super(`${file}:${line}:${column}: ${key ? `${key}: ` : ''}${problem}`);
  }
}

/** Several problems found in one pass, reported together so an operator fixes them in one go. */
export class ConfigErrors extends Error {
  override name = 'ConfigErrors';
  constructor(readonly errors: ConfigError[]) {
    super(errors.map((e) => e.message).join('\n'));
  }
}
