import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { BodyTooLargeError, readBody } from '../../peer-http.js';
import { failure } from '../handler.js';
import type { Connector, ConnectorDeps } from './connector.js';

/**
 * PowerDNS's HTTP connector with `post=1,post_json=1` (the JSON request is the body), and plain
 * `post=1` (form field `parameters`, method from the last path segment). REST GETs are refused
 * with a pointer to the supported settings.
 */
export class HttpConnector implements Connector {
  readonly name = 'http';
  private server?: Server;
  readonly address: string;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly deps: ConnectorDeps,
  ) {
    this.address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  /** The port actually bound (useful with port 0). */
  get boundPort(): number {
    const a = this.server?.address();
    return typeof a === 'object' && a ? a.port : this.port;
  }

  async start(): Promise<void> {
    const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => this.serve(req, res));
    server.on('connection', () => this.deps.metrics?.connections.inc({ connector: 'http' }));
    server.on('clientError', (err, socket) => {
      this.deps.metrics?.errors.inc({ kind: 'http' });
      this.deps.logger.debug({ err }, 'bad HTTP request');
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.host, () => resolve());
    });
    this.server = server;
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'POST') {
      return reply(res, 405, failure('use remote-connection-string=http:url=...,post=1,post_json=1'));
    }
    readBody(req, this.deps.maxRequestBytes).then(
      (body) => reply(res, 200, this.answer(req, body)),
      (err: Error) => {
        if (!(err instanceof BodyTooLargeError)) return void this.deps.metrics?.errors.inc({ kind: 'http' });
        this.deps.metrics?.errors.inc({ kind: 'oversized' });
        reply(res, 413, failure(`request longer than ${this.deps.maxRequestBytes} bytes`));
      },
    );
  }

  private answer(req: IncomingMessage, body: string): string {
    const type = req.headers['content-type'] ?? '';
    if (!type.startsWith('application/x-www-form-urlencoded')) return this.deps.handleLine(body);
    const form = new URLSearchParams(body);
    const method = (req.url ?? '').split('?')[0]!.split('/').filter(Boolean).pop() ?? '';
    let parameters: unknown = {};
    try {
      parameters = JSON.parse(form.get('parameters') ?? '{}');
    } catch (err) {
      this.deps.metrics?.errors.inc({ kind: 'json' });
      return failure(`malformed JSON in form field parameters: ${(err as Error).message}`);
    }
    return this.deps.handle({ method, parameters });
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 1000).unref();
    });
  }
}

function reply(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
