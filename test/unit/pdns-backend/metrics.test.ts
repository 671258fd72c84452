import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BackendMetrics } from '../../../src/pdns-backend/metrics.js';

describe('backend metrics', () => {
  it('exposes call latency as a Prometheus histogram, unknown methods folded into one series', async () => {
    const registry = new Registry();
    const m = new BackendMetrics(registry);
    m.observe('lookup', 0.003); // 3 µs
    m.observe('lookup', 0.5); // 500 µs
    m.observe('bogus-1', 0.001);
    m.observe('bogus-2', 0.001);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE multisite_backend_call_seconds histogram');
    expect(text).toContain('multisite_backend_call_seconds_bucket{method="lookup",le="0.000005"} 1');
    expect(text).toContain('multisite_backend_call_seconds_bucket{method="lookup",le="0.001"} 2');
    expect(text).toContain('multisite_backend_call_seconds_bucket{method="lookup",le="+Inf"} 2');
    expect(text).toContain('multisite_backend_call_seconds_count{method="lookup"} 2');
    expect(text).toContain('multisite_backend_call_seconds_count{method="other"} 2');
    expect(text).not.toContain('bogus');
  });
});
