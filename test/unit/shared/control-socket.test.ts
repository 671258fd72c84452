import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LineSplitter, OVERSIZED_LINE } from '../../../src/shared/line-splitter.js';
import { isStatusReply, PROBE, startControl } from '../../fuzz/support/control-socket.js';

/** Regressions of issue 15 on the control sockets (each failed on the code before the fix). */

let ctl: Awaited<ReturnType<typeof startControl>>;
beforeAll(async () => {
  ctl = await startControl();
});
afterAll(() => ctl?.stop());

async function ask(lines: string[]): Promise<Array<{ ok: boolean; error?: string }>> {
  const c = await ctl.open();
  try {
    await c.write(lines.map((l) => `${l}\n`).join(''));
    const replies = [];
    for (const l of lines) replies.push(JSON.parse(await c.next(l.slice(0, 80))) as { ok: boolean; error?: string });
    return replies;
  } finally {
    c.close();
  }
}

describe('control socket framing', () => {
  it('answers every short request of a chunk longer than the line limit', async () => {
    const name = `${'a'.repeat(1500)}.example.`;
    const lines = [1, 2, 3].map(() => JSON.stringify({ cmd: 'explain', name }));
    const replies = await ask(lines);
    expect(replies.map((r) => r.error)).toEqual(lines.map(() => `'${name}' is not a balanced name`));
  });

  it('answers an over-long line once, at its newline, and stays in step on the same connection', async () => {
    const c = await ctl.open();
    try {
      await c.write(`{"cmd":"explain","name":"${'x'.repeat(10_000)}`);
      await c.write(`"}\n${PROBE}\n`);
      expect(JSON.parse(await c.next('the over-long line'))).toEqual({
        ok: false,
        error: 'request longer than 4096 bytes',
      });
      expect(isStatusReply(await c.next('the probe'))).toBe(true);
      expect(c.unclaimed).toEqual([]);
    } finally {
      c.close();
    }
  });

  it('keeps at most the limit of an unfinished line, however much arrives before its newline', () => {
    const lines = new LineSplitter(4096);
    for (let i = 0; i < 100; i++) {
      lines.push('y'.repeat(10_000));
      expect(lines.next()).toBeUndefined();
      expect(lines.unfinishedBytes).toBeLessThanOrEqual(4096);
    }
    lines.push('\n{"cmd":"status"}\n');
    expect([lines.next(), lines.next(), lines.next()]).toEqual([OVERSIZED_LINE, '{"cmd":"status"}', undefined]);
  });
});

describe('control socket values', () => {
  it('names what is wrong with a request that is not an object with a string cmd', async () => {
    const replies = await ask(['null', '5', '[]', '"status"', '{}', '{"cmd":7}', '{"cmd":null}']);
    expect(replies).toEqual([
      { ok: false, error: 'a request is a JSON object like {"cmd":"status"}, not null' },
      { ok: false, error: 'a request is a JSON object like {"cmd":"status"}, not a number' },
      { ok: false, error: 'a request is a JSON object like {"cmd":"status"}, not an array' },
      { ok: false, error: 'a request is a JSON object like {"cmd":"status"}, not a string' },
      { ok: false, error: '"cmd" must be a string, not missing' },
      { ok: false, error: '"cmd" must be a string, not a number' },
      { ok: false, error: '"cmd" must be a string, not null' },
    ]);
  });

  it('names a drain whose site is missing, empty or not a string', async () => {
    const replies = await ask(['{"cmd":"drain"}', '{"cmd":"drain","site":""}', '{"cmd":"undrain","site":{"a":1}}']);
    expect(replies.map((r) => r.error)).toEqual([
      'drain needs "site", a non-empty string, not missing',
      'drain needs "site", a non-empty string, not an empty string',
      'undrain needs "site", a non-empty string, not an object',
    ]);
  });
});

describe("the agent's control socket (same JsonLineServer)", () => {
  it('names a non-object request and a drain without a server, and still answers status', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { AgentControl, agentRequest } = await import('../../../src/haproxy-agent/control.js');
    const dir = mkdtempSync(join(tmpdir(), 'ms-agentctl-'));
    const control = new AgentControl(join(dir, 'agent.sock'), (req) =>
      req.cmd === 'status'
        ? { ok: true, servers: [] }
        : { ok: false, error: `unknown server '${String((req as { server?: unknown }).server)}'` },
    );
    await control.start();
    try {
      const ask = (req: unknown) => agentRequest(control.path, req as never);
      expect(await ask(null)).toEqual({
        ok: false,
        error: 'a request is a JSON object like {"cmd":"status"}, not null',
      });
      expect(await ask({ cmd: 'drain' })).toEqual({
        ok: false,
        error: 'drain needs "server", a non-empty string, not missing',
      });
      expect(await ask({ cmd: 'undrain', server: 7 })).toEqual({
        ok: false,
        error: 'undrain needs "server", a non-empty string, not a number',
      });
      expect(await ask({ cmd: 'status' })).toEqual({ ok: true, servers: [] });
    } finally {
      await control.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
