import type { Logger } from '../../shared/log.js';
import type { BackendMetrics } from '../metrics.js';

/** A transport between PowerDNS and the handler; the methods are the same on each. */
export interface Connector {
  readonly name: string;
  /** Where it listens, for logs: a socket path or host:port. */
  readonly address: string;
  start(): Promise<void>;
  /** Stops accepting, closes idle connections, waits for the rest up to a bound. */
  stop(): Promise<void>;
}

export interface ConnectorDeps {
  /** One request in, one response out: Handler.handleLine / Handler.handle. */
  handleLine(line: string): string;
  handle(request: unknown): string;
  logger: Logger;
  metrics?: BackendMetrics;
  maxRequestBytes: number;
}
