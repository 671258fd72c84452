import { ZoneSyntaxError } from './errors.js';
import type { Part } from './lexer.js';

/** The most lines one $GENERATE may produce (PowerDNS's max-generate-steps is unlimited by default). */
export const MAX_GENERATE_STEPS = 65536;

export interface GenerateRange {
  start: number;
  stop: number;
  step: number;
}

/** `start-stop` or `start-stop/step`, as PowerDNS reads it. */
export function parseRange(text: string): GenerateRange {
  const m = /^(\d+)-(\d+)(?:\/(\d+))?$/.exec(text);
  if (!m) throw new ZoneSyntaxError(`$GENERATE: range '${text}' is not START-STOP or START-STOP/STEP`);
  const [start, stop, step] = [Number(m[1]), Number(m[2]), m[3] === undefined ? 1 : Number(m[3])];
  if (stop > 0xffffffff || step > 0xffffffff)
    throw new ZoneSyntaxError(`$GENERATE: range '${text}' has a number above 4294967295`);
  if (step < 1 || stop < start)
    throw new ZoneSyntaxError(`$GENERATE: range '${text}' needs START <= STOP and STEP >= 1`);
  if ((stop - start) / step > MAX_GENERATE_STEPS)
    throw new ZoneSyntaxError(`$GENERATE: range '${text}' makes more than ${MAX_GENERATE_STEPS} records`);
  return { start, stop, step };
}

/** One template line for `counter`: `$` is the counter, `${offset,width,radix}` formats it, `\x` is x. */
export function expandTemplate(parts: Part[], counter: number): string {
  return parts.map((p) => expandPart(p.text, counter)).join(' ');
}

function expandPart(part: string, counter: number): string {
  let out = '';
  for (let i = 0; i < part.length; i++) {
    const c = part[i]!;
    if (c === '\\') {
      if (i + 1 < part.length) out += part[++i];
      continue;
    }
    if (c !== '$') {
      out += c;
      continue;
    }
    if (part[i + 1] !== '{') {
      out += String(counter);
      continue;
    }
    const close = part.indexOf('}', i + 2);
    if (close < 0) break; // a partial spec ends the part, as in PowerDNS
    out += formatSpec(part.slice(i + 2, close), counter);
    i = close;
  }
  return out;
}

function formatSpec(spec: string, counter: number): string {
  const m = /^(-?\d+)(?:,(\d+)(?:,([doxX]))?)?$/.exec(spec);
  if (!m)
    throw new ZoneSyntaxError(
      `$GENERATE: cannot read '\${${spec}}' (expected \${offset[,width[,radix]]}, radix d o x X)`,
    );
  const value = (counter + Number(m[1])) | 0; // printf's int
  const width = Math.min(Number(m[2] ?? 0), 80);
  const radix = m[3] ?? 'd';
  if (radix === 'd')
    return value < 0 ? `-${String(-value).padStart(width - 1, '0')}` : String(value).padStart(width, '0');
  // %o %x %X print the int as unsigned
  const text = (value >>> 0).toString(radix === 'o' ? 8 : 16);
  return (radix === 'X' ? text.toUpperCase() : text).padStart(width, '0');
}
