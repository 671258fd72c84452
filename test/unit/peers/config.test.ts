import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { peerTiming } from '../../../src/site-health/peers/index.js';

const base = (
  extra: string,
  sites = `  - { name: a, heartbeat: ["127.0.0.2:7946"] }
  - { name: b, heartbeat: ["127.0.0.3:7946"], status-url: ["http://127.0.0.3:9100/status"] }`,
) => `site: a
sites:
${sites}
backend:
  metrics: 127.0.0.2:9100
${extra}`;

const errors = (text: string) => {
  try {
    parseConfig(text, 'ms.yaml');
    return [];
  } catch (err) {
    return String((err as Error).message).split('\n');
  }
};

describe('peers and coordinator config', () => {
  it('takes the documented defaults', () => {
    const { config } = parseConfig(base('peers:\n  listen: 127.0.0.2:7946\n  key-file: k\n'), 'ms.yaml');
    expect(peerTiming(config.peers!)).toEqual({
      periodMs: 1000,
      suspectAfterMs: 1500,
      recoverPeriods: 3,
      maxSkewMs: 5000,
      probeTimeoutMs: 400,
      probeAttempts: 2,
      probeBudgetMs: 1050,
    });
    expect(config.sites[1]).toMatchObject({ heartbeat: [{ host: '127.0.0.3', port: 7946 }], 'lb-address': [] });
  });

  it('names the key and line of each mistake', () => {
    expect(errors(base('peers:\n  listen: 127.0.0.9:7946\n  key-file: k\n  period-ms: 10\n')).join('\n')).toMatch(
      /ms\.yaml:\d+:\d+: peers\.period-ms: .*50/,
    );
    expect(errors(base('peers:\n  listen: 127.0.0.9:7946\n  key-file: k\n')).join('\n')).toContain(
      "peers.listen: 127.0.0.9:7946 is not one of site 'a' heartbeat addresses",
    );
    expect(errors(base('peers:\n  listen: 127.0.0.2:7946\n')).join('\n')).toContain(
      'give exactly one of key-file or key-env',
    );
    const noProbe = base('peers:\n  listen: 127.0.0.2:7946\n  key-env: K\n', '  - { name: a }\n  - { name: b }');
    expect(errors(noProbe).join('\n')).toMatch(/sites\[1\]: peer site 'b' needs heartbeat/);
    expect(errors(noProbe).join('\n')).toMatch(/sites\[1\]: peer site 'b' needs status-url or lb-address/);
    expect(errors('site: a\nsites: [{ name: a }]\ncoordinator:\n  key-file: k\n').join('\n')).toMatch(
      /coordinator: the coordinator needs backend\.metrics/,
    );
    expect(errors('site: a\nsites: [{ name: a }]\ncoordinator:\n  key-file: k\n').join('\n')).toMatch(
      /give coordinator\.servers \(or agent\.servers\)/,
    );
  });
});
