import { RuntimeParseError } from './errors.js';
import type { RuntimeTransport } from './transport.js';

/** srv_op_state (HAProxy include/haproxy/server-t.h enum srv_state). */
export type OperationalState = 'stopped' | 'starting' | 'running' | 'stopping';
const OP: OperationalState[] = ['stopped', 'starting', 'running', 'stopping'];

/** srv_admin_state bits (enum srv_admin). */
export const ADMIN = {
  FMAINT: 0x01,
  IMAINT: 0x02,
  CMAINT: 0x04,
  FDRAIN: 0x08,
  IDRAIN: 0x10,
  RMAINT: 0x20,
  HMAINT: 0x40,
} as const;
const MAINT = ADMIN.FMAINT | ADMIN.IMAINT | ADMIN.CMAINT | ADMIN.RMAINT | ADMIN.HMAINT;
const DRAIN = ADMIN.FDRAIN | ADMIN.IDRAIN;

export interface ServerState {
  backend: string;
  server: string;
  address: string;
  operational: OperationalState;
  adminBits: number;
  maint: boolean;
  drain: boolean;
  /** User weight (what `set server weight` and agent percentages change) and initial weight. */
  weight: number;
  initialWeight: number;
  fields: Record<string, string>;
}

/**
 * `show servers state [BACKEND]`: a version line ("1"), a header "# be_id be_name srv_id ...", then
 * space-separated rows. Parsed by the header's names.
 */
export async function showServersState(transport: RuntimeTransport, backend?: string): Promise<ServerState[]> {
  const command = backend === undefined ? 'show servers state' : `show servers state ${backend}`;
  const text = await transport.send(command);
  return parseServersState(text, command, transport.socket);
}

export function parseServersState(text: string, command = 'show servers state', socket = ''): ServerState[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines[0] !== undefined && !lines[0].startsWith('#') && !/^\d+$/.test(lines[0].trim())) {
    // Not a version line: an error message such as "Can't find backend."
    throw new RuntimeParseError(command, socket, lines[0].trim());
  }
  if (lines[0]?.trim() !== '1')
    throw new RuntimeParseError(
      command,
      socket,
      `unsupported servers-state format version '${lines[0]?.trim() ?? ''}'`,
    );
  const headerLine = lines[1];
  if (!headerLine?.startsWith('# '))
    throw new RuntimeParseError(command, socket, 'missing the "# be_id be_name ..." header line');
  const header = headerLine.slice(2).trim().split(/\s+/);
  return lines
    .slice(2)
    .filter((l) => !l.startsWith('#'))
    .map((line) => {
      const values = line.trim().split(/\s+/);
      const f: Record<string, string> = {};
      header.forEach((name, i) => (f[name] = values[i] ?? ''));
      const admin = Number(f.srv_admin_state ?? 0);
      return {
        backend: f.be_name ?? '',
        server: f.srv_name ?? '',
        address: f.srv_addr ?? '',
        operational: OP[Number(f.srv_op_state)] ?? 'stopped',
        adminBits: admin,
        maint: (admin & MAINT) !== 0,
        drain: (admin & DRAIN) !== 0,
        weight: Number(f.srv_uweight ?? 0),
        initialWeight: Number(f.srv_iweight ?? 0),
        fields: f,
      };
    });
}
