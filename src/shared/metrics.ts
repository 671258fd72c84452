import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { answerClientErrors } from './http-client-error.js';
import { afterBody } from './peer-http.js';

/** One registry per daemon, served at /metrics; /healthz says the process is alive. */
export function createRegistry(prefix: string): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix });
  return registry;
}

/** An extra handler on the metrics server (e.g. /status, the coordinator): returns false if the path is not its. */
export type Route = (req: IncomingMessage, res: ServerResponse) => boolean;

export async function serveMetrics(
  registry: Registry,
  host: string,
  port: number,
  routes: Route[] = [],
): Promise<Server> {
  const server = createServer((req, res) => {
    // A route that throws on a hostile request (e.g. path `//`, which `new URL` refuses) answers
    // 400 instead of leaving the client without a reply.
    try {
      if (routes.some((route) => route(req, res))) return;
    } catch (err) {
      return afterBody(req, () => refuse(res, err as Error));
    }
    // The HTTP fuzz suite found a long path with a large body losing its 404 to the reset.
    afterBody(req, () => serveOwn(registry, req, res));
  });
  answerClientErrors(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

function refuse(res: ServerResponse, err: Error): void {
  if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' });
  res.end(`bad request: ${err.message}\n`);
}

/** /metrics, /healthz, or 404. */
function serveOwn(registry: Registry, req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/metrics') {
    registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(body);
      },
      (err: Error) => {
        res.writeHead(500);
        res.end(err.message);
      },
    );
  } else if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
  } else {
    res.writeHead(404);
    res.end();
  }
}
