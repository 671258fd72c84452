import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { partFailures, Supervisor, type Loop } from '../../../src/site/index.js';
import { VirtualTimers } from '../haproxy-agent/virtual-timers.js';

/** A loop the test ends by hand: fail(err) rejects finished(), as a crashed replicator loop does. */
function fakeLoop(): Loop & { fail(err: Error): void; stopped: boolean } {
  let fail!: (err: Error) => void;
  let done!: () => void;
  const finished = new Promise<void>((res, rej) => ((done = res), (fail = rej)));
  const loop = {
    stopped: false,
    finished: () => finished,
    fail,
    async stop() {
      loop.stopped = true;
      done();
      await finished;
    },
  };
  return loop;
}

async function counted(registry: Registry): Promise<number> {
  const m = await registry.getSingleMetric('multisite_part_failures_total')!.get();
  return m.values.find((v) => v.labels.part === 'replication')?.value ?? 0;
}

describe('Supervisor', () => {
  const setup = () => {
    const timers = new VirtualTimers();
    const registry = new Registry();
    const loops: ReturnType<typeof fakeLoop>[] = [];
    const sup = new Supervisor({
      part: 'replication',
      logger: pino({ level: 'silent' }),
      failures: partFailures(registry),
      timers,
      minBackoffMs: 1000,
      maxBackoffMs: 8000,
      start: () => {
        const l = fakeLoop();
        loops.push(l);
        return Promise.resolve(l);
      },
    });
    return { timers, registry, loops, sup };
  };

  it('counts a loop that fails later and restarts it after a backoff that doubles', async () => {
    const { timers, registry, loops, sup } = setup();
    await sup.start();
    loops[0]!.fail(new Error('connection reset'));
    await timers.settle();
    expect(await counted(registry)).toBe(1);
    await timers.advance(999);
    expect(loops).toHaveLength(1);
    await timers.advance(1);
    expect(loops).toHaveLength(2);
    loops[1]!.fail(new Error('again'));
    await timers.advance(1999);
    expect(loops).toHaveLength(2);
    await timers.advance(1);
    expect(loops).toHaveLength(3);
    expect(await counted(registry)).toBe(2);
    await sup.stop();
    expect(loops[2]!.stopped).toBe(true);
  });

  it('a stop is not a failure, and no restart is pending after it', async () => {
    const { timers, registry, loops, sup } = setup();
    await sup.start();
    loops[0]!.fail(new Error('x'));
    await timers.settle();
    await sup.stop();
    await timers.advance(60_000);
    expect(loops).toHaveLength(1);
    expect(timers.pending()).toBe(0);
    expect(await counted(registry)).toBe(1);
  });
});
