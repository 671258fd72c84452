import { commandError, RuntimeParseError } from './errors.js';
import type { RuntimeTransport } from './transport.js';

export type AdminState = 'ready' | 'drain' | 'maint';

/** Names go into a command line: refuse anything that could split or extend it. */
function serverRef(backend: string, server: string): string {
  for (const part of [backend, server]) {
    if (!/^[A-Za-z0-9_.:-]+$/.test(part)) throw new TypeError(`not a valid HAProxy proxy or server name: '${part}'`);
  }
  return `${backend}/${server}`;
}

/** `set server B/S state ready|drain|maint`. Throws NoSuchServerError, PermissionDeniedError, ... */
export function setServerState(
  transport: RuntimeTransport,
  backend: string,
  server: string,
  state: AdminState,
): Promise<void> {
  return transport.execute(`set server ${serverRef(backend, server)} state ${state}`);
}

/**
 * `set server B/S agent up|down`: what an agent-check reply of `up`/`down` does, at once (HAProxy
 * 2.6 src/server.c, cli_parse_set_server): sets the agent check's health and the operational state.
 * It never touches the administrative state, so an operator's MAINT or DRAIN stays; in MAINT the
 * operational change waits underneath. Fails ("agent checks are not enabled on this server.") on a
 * server without agent-check.
 */
export function setServerAgent(
  transport: RuntimeTransport,
  backend: string,
  server: string,
  health: 'up' | 'down',
): Promise<void> {
  return transport.execute(`set server ${serverRef(backend, server)} agent ${health}`);
}

/** `set server B/S weight W` with W an absolute weight (0-256) or a percentage of the initial one ("50%"). */
export function setServerWeight(
  transport: RuntimeTransport,
  backend: string,
  server: string,
  weight: number | `${number}%`,
): Promise<void> {
  if (typeof weight === 'number' && (!Number.isInteger(weight) || weight < 0 || weight > 256))
    throw new RangeError(`weight must be 0..256, got ${weight}`);
  return transport.execute(`set server ${serverRef(backend, server)} weight ${weight}`);
}

export interface Weight {
  current: number;
  initial: number;
}

/** `get weight B/S` answers "12 (initial 10)". */
export async function getWeight(transport: RuntimeTransport, backend: string, server: string): Promise<Weight> {
  const command = `get weight ${serverRef(backend, server)}`;
  const reply = (await transport.send(command)).trim();
  const m = /^(\d+) \(initial (\d+)\)$/.exec(reply);
  if (!m) {
    if (reply !== '' && !/^\d/.test(reply)) throw commandError(command, transport.socket, reply);
    throw new RuntimeParseError(command, transport.socket, `unexpected answer '${reply}'`);
  }
  return { current: Number(m[1]), initial: Number(m[2]) };
}
