import { createRequire } from 'node:module';

/**
 * systemd's readiness protocol (sd_notify(3)) for `Type=notify` units: READY=1 once the daemon
 * serves, STOPPING=1 when it begins to stop. The message is a datagram on the AF_UNIX socket named
 * by NOTIFY_SOCKET, and Node has no unix datagram sockets, so it is sent by libsystemd's own
 * sd_notify() through koffi (already a dependency, for ICMP probes). Why not `systemd-notify
 * --ready` as a child: systemd attributes a message to the unit by the sender's PID, so a helper
 * needs NotifyAccess=all, and the helper may exit before systemd reads its message (then it is
 * dropped). Sent from the daemon itself, the default NotifyAccess=main accepts it, and libsystemd
 * handles the abstract namespace (`@...`) and credentials exactly as systemd expects.
 */
export type NotifyResult = { sent: true } | { sent: false; why: string };

type SdNotify = (unsetEnvironment: number, state: string) => number;
let sdNotifyFn: SdNotify | null | undefined;
let loadError = '';

function load(): SdNotify | null {
  if (sdNotifyFn !== undefined) return sdNotifyFn;
  try {
    const require = createRequire(import.meta.url);
    const koffi = require('koffi') as typeof import('koffi');
    const lib = koffi.load('libsystemd.so.0');
    sdNotifyFn = lib.func('int sd_notify(int unset_environment, const char *state)') as SdNotify;
  } catch (err) {
    loadError = (err as Error).message;
    sdNotifyFn = null;
  }
  return sdNotifyFn;
}

/**
 * Sends `state` (e.g. "READY=1") to the service manager when NOTIFY_SOCKET is set; otherwise
 * does nothing (not under systemd, or not Type=notify). Never throws: the caller logs `why`.
 */
export function sdNotify(state: string, env: NodeJS.ProcessEnv = process.env): NotifyResult {
  if (!env.NOTIFY_SOCKET) return { sent: false, why: 'NOTIFY_SOCKET is not set' };
  const fn = load();
  if (!fn) return { sent: false, why: `libsystemd.so.0 cannot be loaded through koffi: ${loadError}` };
  const r = fn(0, state);
  if (r > 0) return { sent: true };
  if (r === 0) return { sent: false, why: 'NOTIFY_SOCKET is not set in the process environment' };
  return { sent: false, why: `sd_notify failed: errno ${-r} (NOTIFY_SOCKET=${env.NOTIFY_SOCKET})` };
}
