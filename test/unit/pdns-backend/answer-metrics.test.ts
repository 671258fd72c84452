import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { BalancedConfig } from '../../../src/config/index.js';
import { compileBalanced } from '../../../src/pdns-backend/balanced.js';
import { registerAnswerMetrics } from '../../../src/pdns-backend/answer-metrics.js';
import { Orderings } from '../../../src/pdns-backend/orderings.js';
import { MetricsTable } from '../../../src/site-health/metrics-table.js';
import { SiteStateTable } from '../../../src/site-health/state-table.js';

const sites = ['a', 'b'];
const name = (n: string, over: Partial<BalancedConfig> = {}) =>
  compileBalanced(
    {
      name: `${n}.example.com.`,
      ttl: 20,
      fallback: 'all',
      addresses: { a: ['192.0.2.1'], b: ['198.51.100.1'] },
      ...over,
    },
    'a',
    sites,
  );

function setup() {
  const table = new SiteStateTable(sites, () => 0);
  const orderings = new Orderings(
    [name('www'), name('topo', { policy: 'topology', topology: { '10.0.0.0/8': ['b'] } })],
    table,
    new MetricsTable(sites, () => 0),
  );
  const registry = new Registry();
  registerAnswerMetrics(registry, orderings);
  const values = async (metric: string) => {
    const m = await registry.getSingleMetric(metric)!.get();
    return Object.fromEntries(m.values.map((v) => [`${v.labels.name} ${v.labels.site}`, v.value]));
  };
  return { table, values };
}

describe('answer metrics', () => {
  it('say which sites each balanced name answers, and in which place, as of the scrape', async () => {
    const { table, values } = setup();
    expect(await values('multisite_backend_answer_includes')).toEqual({
      'www.example.com. a': 1,
      'www.example.com. b': 1,
      'topo.example.com. a': 1,
      'topo.example.com. b': 1,
    });
    table.setDrained('a', true);
    expect(await values('multisite_backend_answer_includes')).toMatchObject({
      'www.example.com. a': 0,
      'www.example.com. b': 1,
    });
    expect(await values('multisite_backend_answer_position')).toMatchObject({
      'www.example.com. a': 0,
      'www.example.com. b': 1,
    });
    table.setDrained('a', false);
    expect(await values('multisite_backend_answer_position')).toMatchObject({
      'www.example.com. a': 1,
      'www.example.com. b': 2,
    });
  });
});
