/**
 * Errors of the HAProxy Runtime API client. Every one carries the command that failed, so a log
 * line says what was asked of which socket, not only what went wrong.
 */
export class RuntimeApiError extends Error {
  override name = 'RuntimeApiError';
  constructor(
    readonly command: string,
    readonly socket: string,
    message: string,
  ) {
    super(`haproxy ${socket}: '${command}': ${message}`);
  }
}

/** The socket is missing or refuses connections (HAProxy not running, wrong path). */
export class RuntimeUnavailableError extends RuntimeApiError {
  override name = 'RuntimeUnavailableError';
  constructor(
    command: string,
    socket: string,
    readonly code: string,
  ) {
    super(command, socket, `cannot connect (${code})`);
  }
}

/** No complete answer within the command's timeout. */
export class RuntimeTimeoutError extends RuntimeApiError {
  override name = 'RuntimeTimeoutError';
  constructor(
    command: string,
    socket: string,
    readonly timeoutMs: number,
  ) {
    super(command, socket, `no answer within ${timeoutMs} ms`);
  }
}

/** HAProxy answered with an error message ("No such server.", "Permission denied", ...). */
export class RuntimeCommandError extends RuntimeApiError {
  override name = 'RuntimeCommandError';
  constructor(
    command: string,
    socket: string,
    readonly reply: string,
  ) {
    super(command, socket, reply);
  }
}

export class NoSuchBackendError extends RuntimeCommandError {
  override name = 'NoSuchBackendError';
}
export class NoSuchServerError extends RuntimeCommandError {
  override name = 'NoSuchServerError';
}
/** The socket is not `level admin` (or `operator`) for a command that changes state. */
export class PermissionDeniedError extends RuntimeCommandError {
  override name = 'PermissionDeniedError';
}
export class UnknownCommandError extends RuntimeCommandError {
  override name = 'UnknownCommandError';
}

/** HAProxy answered, but not in the shape this client understands (another version?). */
export class RuntimeParseError extends RuntimeApiError {
  override name = 'RuntimeParseError';
}

/** Maps HAProxy's error texts (2.6 src/cli.c, src/server.c, src/proxy.c) to typed errors. */
export function commandError(command: string, socket: string, reply: string): RuntimeCommandError {
  const text = reply.trim();
  if (/^No such server\b/i.test(text)) return new NoSuchServerError(command, socket, text);
  if (/^(No such backend|Can't find backend)\b/i.test(text)) return new NoSuchBackendError(command, socket, text);
  if (/^Permission denied\b/i.test(text)) return new PermissionDeniedError(command, socket, text);
  if (/^Unknown command\b/i.test(text)) return new UnknownCommandError(command, socket, text);
  return new RuntimeCommandError(command, socket, text);
}
