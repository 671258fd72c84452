/**
 * A port of HAProxy 2.6's agent reply parser (src/tcpcheck.c, tcpcheck_agent_expect_reply), to
 * check our replies against the real grammar rather than against our own formatter.
 */
export interface Parsed {
  health?: string;
  admin?: string;
  weight?: string;
  maxconn?: string;
  /** The first unknown word (HAProxy reports "agent reports an error"). */
  error?: string;
  description: string;
  /** False when no CR/LF ended the line (HAProxy ignores the reply). */
  complete: boolean;
}

export function parseAgentReply(reply: string): Parsed {
  const end = reply.search(/[\r\n]/);
  if (end < 0) return { description: '', complete: false };
  const line = reply.slice(0, end);
  const out: Parsed = { description: '', complete: true };
  let i = 0;
  while (i < line.length) {
    const ch = line[i]!;
    if (ch === ' ' || ch === '\t' || ch === ',') {
      i++;
      continue;
    }
    if (ch === '#') {
      i++;
      while (line[i] === ' ' || line[i] === '\t') i++;
      out.description = line.slice(i);
      break;
    }
    let j = i + 1;
    while (j < line.length && !' \t,'.includes(line[j]!)) j++;
    const word = line.slice(i, j);
    const lower = word.toLowerCase();
    if (['up', 'down', 'stopped', 'fail'].includes(lower)) out.health = lower;
    else if (['ready', 'drain', 'maint'].includes(lower)) out.admin = lower;
    else if (/^\d/.test(word) && word.includes('%')) out.weight = word;
    else if (lower.startsWith('maxconn:')) out.maxconn = word.slice(8);
    else out.error ??= word;
    i = j + 1;
  }
  return out;
}
