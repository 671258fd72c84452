import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { controlSocketRequest } from '../control-socket.js';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';

export type AgentRequest = { cmd: 'status' } | { cmd: 'drain' | 'undrain'; server: string };
export type AgentResponse = { ok: true; [k: string]: unknown } | { ok: false; error: string };

/**
 * The agent's local control socket (mode 0600) for `multisite agent drain|undrain|status`: one
 * JSON request per line, one JSON reply per line.
 */
export class AgentControl {
  private server?: Server;

  constructor(
    readonly path: string,
    private readonly execute: (req: AgentRequest) => AgentResponse,
  ) {}

  async start(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true });
    removeSocket(this.path);
    const server = createServer((s) => this.serve(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o600);
    this.server = server;
  }

  private serve(socket: Socket): void {
    socket.setEncoding('utf8');
    socket.setTimeout(5000, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    let buf = '';
    socket.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 4096) return void socket.end(`${JSON.stringify({ ok: false, error: 'request too long' })}\n`);
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let res: AgentResponse;
        try {
          res = this.execute(JSON.parse(line) as AgentRequest);
        } catch (err) {
          res = { ok: false, error: err instanceof SyntaxError ? 'malformed JSON' : (err as Error).message };
        }
        socket.write(`${JSON.stringify(res)}\n`);
      }
    });
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    removeSocket(this.path);
  }
}

function removeSocket(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* none */
  }
}

/** One request to a running agent's control socket. */
export function agentRequest(path: string, req: AgentRequest, timeoutMs = 3000): Promise<AgentResponse> {
  return controlSocketRequest<AgentResponse>(path, req, 'agent', timeoutMs);
}
