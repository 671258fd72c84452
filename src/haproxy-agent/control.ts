import { type ControlRequestObject, controlSocketRequest, describe, JsonLineServer } from '../shared/control-socket.js';

export type AgentRequest = { cmd: 'status' } | { cmd: 'drain' | 'undrain'; server: string };
export type AgentResponse = { ok: true; [k: string]: unknown } | { ok: false; error: string };

/**
 * The agent's local control socket (mode 0600) for `multisite agent drain|undrain|status`: one
 * JSON request per line, one JSON reply per line.
 */
export class AgentControl {
  private readonly server: JsonLineServer;

  constructor(
    readonly path: string,
    private readonly execute: (req: AgentRequest) => AgentResponse,
  ) {
    this.server = new JsonLineServer(path, (req) => this.answer(req));
  }

  start(): Promise<void> {
    return this.server.start();
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  /** JsonLineServer already checked the shape and turns a throw into `{ok: false, error}`. */
  private answer(raw: ControlRequestObject): AgentResponse {
    const req = raw as AgentRequest;
    if ((req.cmd === 'drain' || req.cmd === 'undrain') && (typeof req.server !== 'string' || req.server === ''))
      return { ok: false, error: `${req.cmd} needs "server", a non-empty string, not ${describe(req.server)}` };
    return this.execute(req);
  }
}

/** One request to a running agent's control socket. */
export function agentRequest(path: string, req: AgentRequest, timeoutMs = 3000): Promise<AgentResponse> {
  return controlSocketRequest<AgentResponse>(path, req, 'agent', timeoutMs);
}
