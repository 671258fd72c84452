import { controlSocketRequest, JsonLineServer } from '../shared/control-socket.js';

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
    this.server = new JsonLineServer(path, (line) => this.answer(line));
  }

  start(): Promise<void> {
    return this.server.start();
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  private answer(line: string): AgentResponse {
    try {
      return this.execute(JSON.parse(line) as AgentRequest);
    } catch (err) {
      return { ok: false, error: err instanceof SyntaxError ? 'malformed JSON' : (err as Error).message };
    }
  }
}

/** One request to a running agent's control socket. */
export function agentRequest(path: string, req: AgentRequest, timeoutMs = 3000): Promise<AgentResponse> {
  return controlSocketRequest<AgentResponse>(path, req, 'agent', timeoutMs);
}
