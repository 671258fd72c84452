import { getWeight, setServerAgent, setServerState, setServerWeight, type AdminState, type Weight } from './server.js';
import { showServersState, type ServerState } from './servers-state.js';
import { showStat, type StatFilter, type StatRow } from './stat.js';
import { RuntimeTransport, type TransportOptions } from './transport.js';

export * from './errors.js';
export { parseCsv, splitCsvLine } from './csv.js';
export { isUsable, toStatRow, type StatRow, type StatFilter, type StatType } from './stat.js';
export { parseServersState, ADMIN, type ServerState, type OperationalState } from './servers-state.js';
export type { AdminState, Weight } from './server.js';
export { RuntimeTransport, type TransportOptions } from './transport.js';
export {
  EventLineParser,
  parseEventLine,
  messageOf,
  headerOf,
  rfc5424Time,
  MAX_EVENT_LINE,
  type HaproxyEvent,
  type ServerEvent,
  type BackendEvent,
  type ServerEventKind,
} from './events.js';
export { EventStream, type EventStreamOptions, type StreamTimers } from './event-stream.js';

/**
 * A typed client for one HAProxy's Runtime API (`stats socket PATH level admin`). Each method is
 * one command on its own connection, with the transport's per-command timeout; failures are
 * RuntimeApiError subclasses naming the command.
 */
export class RuntimeClient {
  readonly transport: RuntimeTransport;

  constructor(socket: string, opts: TransportOptions = {}) {
    this.transport = new RuntimeTransport(socket, opts);
  }

  get socket(): string {
    return this.transport.socket;
  }

  showStat(filter?: StatFilter): Promise<StatRow[]> {
    return showStat(this.transport, filter);
  }

  showServersState(backend?: string): Promise<ServerState[]> {
    return showServersState(this.transport, backend);
  }

  setServerState(backend: string, server: string, state: AdminState): Promise<void> {
    return setServerState(this.transport, backend, server, state);
  }

  setServerAgent(backend: string, server: string, health: 'up' | 'down'): Promise<void> {
    return setServerAgent(this.transport, backend, server, health);
  }

  setServerWeight(backend: string, server: string, weight: number | `${number}%`): Promise<void> {
    return setServerWeight(this.transport, backend, server, weight);
  }

  getWeight(backend: string, server: string): Promise<Weight> {
    return getWeight(this.transport, backend, server);
  }
}
