import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../shared/log.js';
import { BodyTooLargeError, readBody, refuseMethod } from '../shared/peer-http.js';
import { esc } from './render.js';

export const ACTION_PATH = '/status-page/action';
/** Headers the API key may travel in (besides the form's `key` field). */
export const KEY_HEADER = 'x-api-key';
const MAX_BODY = 8 * 1024;

export interface ActionDeps {
  /** The actions' key; undefined: actions are off (403). */
  key?: Buffer;
  sites: readonly string[];
  /** The control socket's drain path (pdns-backend drainSite): true when it changed something. */
  drain(site: string, drained: boolean): boolean;
  /** This site's servers the agent knows (agent.servers), drained through it; none without `agent:`. */
  servers: readonly string[];
  /** The agent's drain path (`multisite agent drain`): true when it changed something. */
  drainServer?(server: string, drained: boolean): Promise<boolean>;
  logger: Logger;
}

interface Action {
  /** Exactly one of site and server is given. */
  site: string;
  server: string;
  action: string;
  key?: string;
  confirm?: string;
  /** A form post from the page (answered with a page), or an API call (answered with JSON). */
  form: boolean;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Compares digests, so neither the time taken nor a length check tells how much of the key was right. */
function keyMatches(expected: Buffer, given: string | undefined): boolean {
  if (given === undefined || given === '') return false;
  const digest = (b: Buffer | string) => createHash('sha256').update(b).digest();
  return timingSafeEqual(digest(expected), digest(given));
}

function parse(req: IncomingMessage, body: string): Action {
  const type = req.headers['content-type'] ?? '';
  const header = req.headers[KEY_HEADER] ?? req.headers.authorization?.replace(/^Bearer\s+/i, '');
  let fields: Record<string, unknown>;
  if (type.startsWith('application/json')) {
    try {
      fields = JSON.parse(body) as Record<string, unknown>;
    } catch {
      throw new Refusal(400, 'body is not JSON; expected {"action":"drain","site":"b"}');
    }
    if (typeof fields !== 'object' || fields === null) throw new Refusal(400, 'body must be a JSON object');
  } else fields = Object.fromEntries(new URLSearchParams(body));
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const key = typeof header === 'string' ? header : str(fields.key);
  const out: Action = {
    site: str(fields.site) ?? '',
    server: str(fields.server) ?? '',
    action: str(fields.action) ?? '',
    form: !type.startsWith('application/json'),
  };
  if (key !== undefined) out.key = key;
  const confirm = str(fields.confirm);
  if (confirm !== undefined) out.confirm = confirm;
  return out;
}

function check(a: Action, deps: ActionDeps): void {
  if (!deps.key) throw new Refusal(403, 'actions are off on this site: status-page.api-key-file (or -env) is not set');
  if (!keyMatches(deps.key, a.key)) throw new Refusal(401, 'refused: a missing or wrong API key');
  if (a.action !== 'drain' && a.action !== 'undrain')
    throw new Refusal(400, `action must be drain or undrain, not '${a.action}'`);
  if ((a.site === '') === (a.server === '')) throw new Refusal(400, 'give a site or a server (one of them)');
  if (a.server !== '') {
    if (!deps.drainServer || !deps.servers.includes(a.server))
      throw new Refusal(
        400,
        `unknown server '${a.server}' (the agent's servers: ${deps.servers.join(', ') || 'none'})`,
      );
  } else if (!deps.sites.includes(a.site))
    throw new Refusal(400, `unknown site '${a.site}' (known: ${deps.sites.join(', ')})`);
  if (a.form && a.confirm !== 'yes') throw new Refusal(400, 'not confirmed: tick "I mean it" and send again');
}

function answer(res: ServerResponse, form: boolean, status: number, message: string, extra: object = {}): void {
  if (res.headersSent) return;
  if (!form) {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(`${JSON.stringify({ ok: status < 300, ...(status < 300 ? {} : { error: message }), ...extra })}\n`);
    return;
  }
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>multisite: ${status}</title></head>` +
      `<body><p id="result">${esc(message)}</p>` +
      '<p><a href="/status-page">back to the status page</a></p></body></html>\n',
  );
}

/** POST /status-page/action: drain or undrain a site or a server, with the API key in a header or the body. */
export function actionRoute(deps: ActionDeps) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.search !== '') {
      // A key in a URL ends up in browser history, proxies' and servers' logs: refuse the form.
      answer(res, true, 400, 'no query string here: the key goes in the form body or a header, never in a URL');
      return;
    }
    if (req.method !== 'POST') return refuseMethod(req, res, 'POST');
    readBody(req, MAX_BODY).then(
      (body) => perform(req, res, body, deps),
      (err: Error) =>
        answer(res, true, err instanceof BodyTooLargeError ? 413 : 400, `could not read the request: ${err.message}`),
    );
  };
}

function perform(req: IncomingMessage, res: ServerResponse, body: string, deps: ActionDeps): void {
  let a: Action | undefined;
  try {
    a = parse(req, body);
    check(a, deps);
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    deps.logger.warn(
      { from: req.socket.remoteAddress, action: a?.action, site: a?.site, server: a?.server, status: err.status },
      `status page action refused: ${err.message}`,
    );
    answer(res, a?.form ?? true, err.status, err.message);
    return;
  }
  const act = a;
  const drained = act.action === 'drain';
  const done = (changed: boolean) => {
    const [kind, name] = act.server ? ['server', act.server] : ['site', act.site];
    if (act.form) {
      res.writeHead(303, { location: `/status-page?did=${act.action}&${kind}=${encodeURIComponent(name)}` });
      res.end();
    } else answer(res, false, 200, '', { [kind]: name, drained, changed });
  };
  if (!act.server) return done(deps.drain(act.site, drained));
  deps.drainServer!(act.server, drained).then(done, (err: Error) => {
    deps.logger.warn({ server: act.server, action: act.action, err: err.message }, 'status page: the agent refused');
    answer(res, act.form, 502, `the agent did not ${act.action} ${act.server}: ${err.message}`);
  });
}
