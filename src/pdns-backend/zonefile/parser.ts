import { readFileSync } from 'node:fs';
import { dirname, isAbsolute as isAbsolutePath, join, resolve } from 'node:path';
import { ZoneFileError, ZoneSyntaxError } from './errors.js';
import { expandTemplate, parseRange } from './generate.js';
import { chopComment, findUnquoted, leadingBlanks, RecordData, splitParts, trimEnd, type Part } from './lexer.js';
import { canonicalName, isAtOrBelow } from './names.js';
import { canonicalContent, IGNORED_TYPES } from './rdata.js';
import { looksLikeTtl, MAX_TTL, parseTtl } from './ttl.js';
import { recordType } from './types.js';

export interface ZoneRecord {
  /** Absolute owner name with the final dot, case as written, escaped as PowerDNS prints it. */
  name: string;
  /** Seconds. */
  ttl: number;
  /** Type as PowerDNS names it (upper-case mnemonic), or TYPEnnn. */
  type: string;
  /** Record data in the presentation form PowerDNS's remote backend accepts: names absolute. */
  content: string;
}

export interface ParseOptions {
  /** The zone apex ("example.com" or "example.com."): relative names are relative to it until $ORIGIN. */
  origin: string;
  /** For error messages, and the directory $INCLUDE paths are relative to. */
  file?: string;
  /** TTL for records without one before any $TTL or explicit TTL (PowerDNS: 3600). */
  defaultTtl?: number;
  /**
   * Called for a record whose owner is not at or below the zone apex, with where it is; the record
   * is then left out. It may throw to stop the parse. Without it such records are kept.
   */
  onOutOfZone?: (problem: ZoneFileError) => void;
}

/** PowerDNS's max-include-depth default. */
const MAX_INCLUDE_DEPTH = 20;
/** Bounds work on hostile input; PowerDNS's max-generate-steps is unlimited by default. */
const MAX_GENERATED = 1_000_000;

interface Source {
  /** As shown in errors. */
  file: string;
  /** Resolved, to detect $INCLUDE loops. */
  path: string;
  lines: string[];
  /** Line number of each entry, when not index + 1. */
  lineOf?: number[];
  next: number;
  /** $ORIGIN to restore when this included file ends (RFC 1035 §5.1). */
  savedOrigin?: string;
}

interface Template {
  parts: Part[];
  counter: number;
  stop: number;
  step: number;
  lineNo: number;
}

/**
 * A master-file parser that splits lines exactly as PowerDNS's ZoneParserTNG does, applies the
 * same TTL rules, and canonicalises record data so that PowerDNS serving our records answers as
 * it does serving the file with its bind backend.
 */
class Parser {
  private readonly records: ZoneRecord[] = [];
  private readonly stack: Source[] = [];
  private origin = '.';
  /** The zone's own name, lower-case: records must be at or below it. */
  private apex = '.';
  private defaultTtl: number;
  private haveDollarTtl = false;
  private prevOwner?: string;
  private template?: Template;
  private generated = 0;
  private current!: Source;
  private lineNo = 0;

  constructor(
    private readonly opts: ParseOptions,
    private readonly fromFile: boolean,
  ) {
    this.defaultTtl = opts.defaultTtl ?? 3600;
  }

  run(source: Source): ZoneRecord[] {
    this.current = source;
    this.lineNo = 1;
    const apex = this.opts.origin.endsWith('.') ? this.opts.origin : `${this.opts.origin}.`;
    this.origin = this.at(1, () => canonicalName(apex, '.'), 'origin: ');
    this.apex = this.origin.toLowerCase();
    this.stack.push(source);
    for (let line = this.nextLine(); line !== undefined; line = this.nextLine()) this.parseLine(line);
    return this.records;
  }

  private nextLine(): string | undefined {
    if (this.template) return this.templateLine(this.template);
    while (this.stack.length > 0) {
      const src = this.stack[this.stack.length - 1]!;
      if (src.next < src.lines.length) return this.readLine(src);
      this.stack.pop();
      if (src.savedOrigin !== undefined) this.origin = src.savedOrigin;
    }
    return undefined;
  }

  private readLine(src: Source): string {
    this.current = src;
    this.lineNo = src.lineOf?.[src.next] ?? src.next + 1;
    return src.lines[src.next++]!;
  }

  private templateLine(t: Template): string {
    this.lineNo = t.lineNo;
    const line = this.at(1, () => expandTemplate(t.parts, t.counter));
    if (t.stop - t.counter < t.step) this.template = undefined;
    else t.counter += t.step;
    if (++this.generated > MAX_GENERATED) this.fail(`$GENERATE: more than ${MAX_GENERATED} records in all`);
    return line;
  }

  private fail(problem: string, column = 1, line = this.lineNo): never {
    throw new ZoneFileError(this.current.file, line, column, problem);
  }

  /** Runs `fn`, turning a ZoneSyntaxError into a ZoneFileError at `column` plus its offset. */
  private at<T>(column: number, fn: () => T, prefix = ''): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof ZoneSyntaxError) this.fail(prefix + err.message, column + err.offset);
      throw err;
    }
  }

  private parseLine(raw: string): void {
    const line = trimEnd(raw);
    const parts = splitParts(line);
    if (parts.length === 0 || parts[0]!.text.startsWith(';')) return;
    if (line[0] === '$') return this.directive(line, splitParts(chopComment(line)), parts);
    let owner: string;
    if (/^[ \t\r]/.test(line)) {
      if (this.prevOwner === undefined)
        this.fail('the line starts with a blank (same owner as the record before) but no record comes before it');
      owner = this.prevOwner;
    } else {
      const first = parts.shift()!;
      owner = this.at(1, () => canonicalName(first.text, this.origin));
    }
    this.prevOwner = owner;
    this.record(owner, line, parts);
  }

  /** TTL and class (IN, optional) in either order, then the type; the rest of the line is the data. */
  private record(owner: string, line: string, parts: Part[]): void {
    let ttl = this.defaultTtl;
    let haveTtl = false;
    let type: string | undefined;
    let i = 0;
    for (; i < parts.length && !type; i++) {
      const part = parts[i]!;
      if (part.text.includes(';')) break; // a comment ends the line (ZoneParserTNG stops at any part with ';')
      if (part.text.toUpperCase() === 'IN') continue;
      if (looksLikeTtl(part.text)) {
        if (haveTtl) this.fail(`a second TTL '${part.text}' (one TTL per record)`, part.start + 1);
        ttl = this.at(part.start + 1, () => parseTtl(part.text, MAX_TTL));
        // RFC 2308 / ZoneParserTNG: before any $TTL, an explicit TTL becomes the default
        if (!this.haveDollarTtl) this.defaultTtl = ttl;
        haveTtl = true;
        continue;
      }
      type = this.at(part.start + 1, () => recordType(part.text));
    }
    if (!type)
      this.fail(
        'no record type on this line (expected [TTL] [IN] TYPE DATA after the owner)',
        (parts[0]?.start ?? 0) + 1,
      );
    const start = parts[i]?.start;
    if (start === undefined) this.fail(`${type}: record data is missing`, line.length + 1);
    const data = this.recordData(line, start);
    if (data.text === '') this.fail(`${type}: record data is missing`, start + 1);
    if (IGNORED_TYPES.has(type)) return;
    const content = this.dataAt(data, () => canonicalContent(type!, data.text, this.origin));
    if (this.opts.onOutOfZone && !isAtOrBelow(owner.toLowerCase(), this.apex)) {
      this.opts.onOutOfZone(
        new ZoneFileError(this.current.file, this.lineNo, 1, `${owner} ${type} is outside zone ${this.apex}`),
      );
      return;
    }
    this.records.push({ name: owner, ttl, type, content });
  }

  private dataAt<T>(data: RecordData, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (!(err instanceof ZoneSyntaxError)) throw err;
      const pos = data.position(err.offset);
      this.fail(err.message, pos.column, pos.line);
    }
  }

  /** The data from `start`: comments dropped, `(` ... `)` joined over lines with a space. */
  private recordData(line: string, start: number): RecordData {
    const data = new RecordData();
    data.add(chopComment(line.slice(start)), this.lineNo, start + 1);
    data.trim();
    const open = findUnquoted(data.text, '(');
    if (open >= 0) {
      const opened = data.position(open);
      data.elide('(');
      if (!data.elide(')')) this.continueData(data, opened);
    }
    data.trim();
    for (const c of ['(', ')']) {
      const extra = findUnquoted(data.text, c);
      if (extra < 0) continue;
      const pos = data.position(extra);
      this.fail(
        open < 0 && c === ')' ? "')' without '(' before it" : `a second '${c}': one pair of parentheses per record`,
        pos.column,
        pos.line,
      );
    }
    return data;
  }

  private continueData(data: RecordData, opened: { line: number; column: number }): void {
    const src = this.current;
    for (;;) {
      if (src.next >= src.lines.length) {
        this.fail(
          `unbalanced parenthesis opened at ${opened.line}:${opened.column} (no ')' before the end of the file)`,
          opened.column,
          opened.line,
        );
      }
      this.readLine(src);
      const raw = chopComment(trimEnd(src.lines[src.next - 1]!));
      const lead = leadingBlanks(raw);
      const from = data.text.length + 1;
      data.add(` ${trimEnd(raw.slice(lead))}`, this.lineNo, lead);
      if (data.elide(')', from)) return;
    }
  }

  /**
   * `parts` are without the comment; a $GENERATE template keeps all of `raw` (its lines are comment-chopped when
   * read).
   */
  private directive(line: string, parts: Part[], raw: Part[]): void {
    const cmd = parts[0]!.text.toUpperCase();
    const args = parts.slice(1);
    const arg = args[0];
    if (cmd === '$TTL' && arg && args.length === 1) {
      this.defaultTtl = this.at(arg.start + 1, () => parseTtl(arg.text, MAX_TTL));
      this.haveDollarTtl = true;
    } else if (cmd === '$ORIGIN' && arg && args.length === 1) {
      this.origin = this.at(arg.start + 1, () => canonicalName(arg.text, this.origin));
    } else if (cmd === '$INCLUDE' && arg && args.length <= 2) {
      this.include(arg, args[1]);
    } else if (cmd === '$GENERATE' && arg && args.length > 1) {
      const range = this.at(arg.start + 1, () => parseRange(arg.text));
      this.template = {
        parts: raw.slice(2),
        counter: range.start,
        stop: range.stop,
        step: range.step,
        lineNo: this.lineNo,
      };
    } else {
      this.fail(
        `cannot read directive '${line.trim().slice(0, 80)}' (expected $ORIGIN name, $TTL ttl, $INCLUDE file [origin] or $GENERATE range template)`,
      );
    }
  }

  /**
   * Paths are relative to the top zone file's directory, as PowerDNS's bind backend resolves them against one
   * `directory`.
   */
  private include(arg: Part, originPart?: Part): void {
    if (!this.fromFile) this.fail('$INCLUDE is only allowed in zone files');
    const name = arg.text.replace(/^"(.*)"$/, '$1');
    const top = this.stack[0]!;
    const file = isAbsolutePath(name) ? name : join(dirname(top.file), name);
    const path = resolve(dirname(top.path), name);
    if (this.stack.some((s) => s.path === path))
      this.fail(`$INCLUDE loop: ${[...this.stack.map((s) => s.file), file].join(' -> ')}`, arg.start + 1);
    if (this.stack.length >= MAX_INCLUDE_DEPTH)
      this.fail(`$INCLUDE nested deeper than ${MAX_INCLUDE_DEPTH} files`, arg.start + 1);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      this.fail(`$INCLUDE: cannot read ${file}: ${(err as Error).message}`, arg.start + 1);
    }
    const savedOrigin = this.origin;
    if (originPart) this.origin = this.at(originPart.start + 1, () => canonicalName(originPart.text, this.origin));
    this.stack.push({ file, path, lines: text.split('\n'), next: 0, savedOrigin });
  }
}

export function parseZone(text: string, opts: ParseOptions): ZoneRecord[] {
  const file = opts.file ?? '<zone>';
  const source = { file, path: resolve(file), lines: text.split('\n'), next: 0 };
  return new Parser(opts, opts.file !== undefined).run(source);
}

/** Inline records, one master-file line each (relative to the origin); errors name line = index + 1. */
export function parseRecordLines(lines: string[], opts: ParseOptions): ZoneRecord[] {
  const split = lines.map((l, i) =>
    String(l)
      .split('\n')
      .map((text) => ({ text, line: i + 1 })),
  );
  const flat = split.flat();
  const file = opts.file ?? '<records>';
  const source = {
    file,
    path: resolve(file),
    lines: flat.map((l) => l.text),
    lineOf: flat.map((l) => l.line),
    next: 0,
  };
  return new Parser(opts, false).run(source);
}
