import { describe, expect, it } from 'vitest';
import { LogFormatError, logFormat, textLine } from '../../../src/shared/log.js';

describe('log format', () => {
  it('text on a terminal, JSON otherwise; MULTISITE_LOG_FORMAT decides when set', () => {
    expect(logFormat({}, true)).toBe('text');
    expect(logFormat({}, false)).toBe('json');
    expect(logFormat({ MULTISITE_LOG_FORMAT: 'json' }, true)).toBe('json');
    expect(logFormat({ MULTISITE_LOG_FORMAT: 'text' }, false)).toBe('text');
    expect(() => logFormat({ MULTISITE_LOG_FORMAT: 'xml' }, false)).toThrow(LogFormatError);
    expect(() => logFormat({ MULTISITE_LOG_FORMAT: 'xml' }, false)).toThrow(/MULTISITE_LOG_FORMAT: 'xml'/);
  });

  it('a text line: local time, level, part, message, then the fields a person needs', () => {
    const prev = process.env.TZ;
    process.env.TZ = 'UTC';
    try {
      const line = textLine(
        JSON.stringify({
          level: 40,
          time: '2026-12-06T00:20:01.123Z',
          pid: 42,
          name: 'backend',
          msg: 'peer suspected',
          site: 'b',
          silentMs: 1500,
          why: 'no heartbeat',
          err: { type: 'Error', message: 'connect ECONNREFUSED', stack: 'Error: ...' },
        }),
      );
      expect(line).toBe(
        '2026-12-06 00:20:01.123 WARN  backend: peer suspected site=b silentMs=1500 why="no heartbeat" err="connect ECONNREFUSED"\n',
      );
    } finally {
      process.env.TZ = prev;
    }
  });

  it('a line that is not JSON is passed through whole', () => {
    expect(textLine('not json')).toBe('not json\n');
  });
});
