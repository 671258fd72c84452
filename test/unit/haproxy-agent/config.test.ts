import { describe, expect, it } from 'vitest';
import { ConfigErrors, parseConfig } from '../../../src/config/index.js';

const base = `site: a
sites: [{ name: a }]
`;

function errors(text: string): string[] {
  try {
    parseConfig(base + text, 'site.yaml');
  } catch (err) {
    if (err instanceof ConfigErrors) return err.errors.map((e) => e.message).sort();
    throw err;
  }
  return [];
}

describe('agent: and health: config', () => {
  it('fills every default', () => {
    const { config } = parseConfig(
      `${base}agent:
  listen: 127.0.0.1:5555
  database-server: db1
  servers:
    - name: web/w1
      address: 127.0.0.11:8080
      checks: { message: {}, keyword: {}, load: {} }
health:
  load-balancers: [/run/haproxy/admin.sock]
  backend: web
`,
      'site.yaml',
    );
    expect(config.agent).toMatchObject({
      listen: { host: '127.0.0.1', port: 5555 },
      control: '/run/multisite/agent.sock',
      'state-file': '/var/lib/multisite/agent-state.json',
      'client-timeout-ms': 2000,
      'max-line-bytes': 256,
      'max-connections': 'auto',
      haproxy: { 'runtime-api': ['/run/haproxy/admin.sock'], 'timeout-ms': 500, 'retry-ms': 200, 'max-retry-ms': 5000 },
      'ready-window-ms': 30000,
    });
    expect(config.agent!.servers[0]!.checks).toEqual({
      message: { type: 'http', path: '/health', status: 200, 'interval-ms': 100, 'timeout-ms': 500, rise: 2, fall: 2 },
      keyword: {
        path: '/dbcheck',
        status: 200,
        'max-bytes': 65536,
        'interval-ms': 100,
        'timeout-ms': 1000,
        rise: 2,
        fall: 2,
      },
      load: { path: '/load', capacity: 100, 'floor-percent': 10, 'interval-ms': 1000, 'timeout-ms': 1000 },
    });
    expect(config.health).toEqual({
      'load-balancers': ['/run/haproxy/admin.sock'],
      backend: 'web',
      'interval-ms': 250,
      'event-ring': 'multisite',
      'safety-interval-ms': 5000,
      'timeout-ms': 1000,
      'min-servers': 1,
    });
  });

  it('names the key and line of each mistake', () => {
    expect(
      errors(`agent:
  listen: localhost:5555
  servers:
    - name: web/w1
      address: 127.0.0.11:8080
      checks: { keyword: {} }
    - name: web/w1
      address: 127.0.0.12
      checks: { load: {}, mesage: {} }
health:
  load-balancers: []
  backend: web
  interval-ms: 0
`),
    ).toEqual([
      'site.yaml:10:7: agent.servers[1].address: expected HOST:PORT, e.g. 127.0.0.11:8080',
      "site.yaml:11:27: agent.servers[1].checks.mesage: unknown key 'mesage'",
      'site.yaml:11:7: agent.servers[1].checks: give at least a message or a keyword check',
      'site.yaml:13:3: health.load-balancers: Too small: expected array to have >=1 items',
      'site.yaml:15:3: health.interval-ms: Too small: expected number to be >=10',
      'site.yaml:4:3: agent.listen: expected ADDRESS:PORT, e.g. 127.0.0.1:5555',
      'site.yaml:8:17: agent.servers[0].checks.keyword: give keyword, or agent.database-server (the default keyword)',
      "site.yaml:9:7: agent.servers[1].name: duplicate server name 'web/w1'",
    ]);
    expect(
      errors(`agent:
  listen: 127.0.0.1:5555
  servers:
    - { name: web/w1, address: "127.0.0.11:8080", checks: { keyword: {} } }
    - { name: web/w1, address: "127.0.0.12:8080", checks: { load: {} } }
`),
    ).toHaveLength(3);
  });
});
