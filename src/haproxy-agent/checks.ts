import type { KeywordCheckConfig, LoadCheckConfig, MessageCheckConfig } from '../config/index.js';
import { failureOf, httpGet, tcpConnect, type Outcome, type Target } from './probe.js';

/** A check run: must settle; the runner aborts it through `signal` at its timeout. */
export type CheckFn = (signal: AbortSignal) => Promise<Outcome>;

/** `message`: a TCP connect, or GET a health path expecting a status. */
export function messageCheck(target: Target, cfg: MessageCheckConfig): CheckFn {
  if (cfg.type === 'tcp') return (signal) => tcpConnect(target, signal);
  return async (signal) => {
    try {
      const res = await httpGet(target, cfg.path, 4096, signal);
      return res.status === cfg.status
        ? { ok: true }
        : { ok: false, reason: `status ${res.status} from ${cfg.path} (expected ${cfg.status})` };
    } catch (err) {
      return failureOf(err, ` (${cfg.path})`);
    }
  };
}

/** `keyword`: GET the database page; its first max-bytes must contain the keyword. */
export function keywordCheck(target: Target, cfg: KeywordCheckConfig, keyword: string): CheckFn {
  return async (signal) => {
    try {
      const res = await httpGet(target, cfg.path, cfg['max-bytes'], signal);
      if (res.status !== cfg.status)
        return {
          ok: false,
          reason: `status ${res.status} from ${cfg.path} (expected ${cfg.status})${snippet(res.body)}`,
        };
      if (!res.body.includes(keyword)) {
        return {
          ok: false,
          reason: `keyword '${keyword}' not found in ${cfg.path}${res.truncated ? ` (first ${cfg['max-bytes']} bytes)` : ''}`,
        };
      }
      return { ok: true };
    } catch (err) {
      return failureOf(err, ` (${cfg.path})`);
    }
  };
}

/** The start of an error page, on one line: what the database said is the useful part. */
function snippet(body: string): string {
  const text = body
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return text === '' ? '' : `: ${text.length > 100 ? `${text.slice(0, 97)}...` : text}`;
}

/** `load`: GET a number (the first one in the body: "0.73", "load 3.2"). */
export function loadCheck(target: Target, cfg: LoadCheckConfig): CheckFn {
  return async (signal) => {
    try {
      const res = await httpGet(target, cfg.path, 1024, signal);
      if (res.status !== 200) return { ok: false, reason: `status ${res.status} from ${cfg.path}` };
      const m = /-?\d+(\.\d+)?/.exec(res.body);
      if (!m) return { ok: false, reason: `no number in ${cfg.path}` };
      return { ok: true, value: Number(m[0]) };
    } catch (err) {
      return failureOf(err, ` (${cfg.path})`);
    }
  };
}
