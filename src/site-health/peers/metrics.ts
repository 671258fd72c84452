import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PeerState } from './machine.js';

const STATES: PeerState[] = ['up', 'suspect', 'down'];

/** Heartbeats sent/received/rejected, peer states and transitions, verification probes, announces. */
export class PeerMetrics {
  readonly sent: Counter<'site'>;
  readonly received: Counter<'site'>;
  readonly rejected: Counter<'reason'>;
  readonly state: Gauge<'site' | 'state'>;
  readonly transitions: Counter<'site' | 'from' | 'to'>;
  readonly probes: Counter<'site' | 'result'>;
  readonly probeSeconds: Histogram;
  readonly announces: Counter<'direction'>;

  constructor(registry?: Registry) {
    const registers = registry ? [registry] : [];
    this.sent = new Counter({
      name: 'multisite_peers_heartbeats_sent_total',
      help: 'Heartbeats sent, by peer site',
      labelNames: ['site'],
      registers,
    });
    this.received = new Counter({
      name: 'multisite_peers_heartbeats_received_total',
      help: 'Authenticated, fresh heartbeats received, by peer site',
      labelNames: ['site'],
      registers,
    });
    this.rejected = new Counter({
      name: 'multisite_peers_messages_rejected_total',
      help: 'Datagrams refused, by reason (malformed, version, bad-mac, replay, skew, unknown-site, own-site)',
      labelNames: ['reason'],
      registers,
    });
    this.state = new Gauge({
      name: 'multisite_peers_state',
      help: 'Peer state: 1 on the current state of each peer site',
      labelNames: ['site', 'state'],
      registers,
    });
    this.transitions = new Counter({
      name: 'multisite_peers_transitions_total',
      help: 'Peer state transitions',
      labelNames: ['site', 'from', 'to'],
      registers,
    });
    this.probes = new Counter({
      name: 'multisite_peers_probes_total',
      help: 'Verification probes of suspect peers, by result',
      labelNames: ['site', 'result'],
      registers,
    });
    this.probeSeconds = new Histogram({
      name: 'multisite_peers_probe_seconds',
      help: 'Time a verification probe took',
      buckets: [0.001, 0.005, 0.02, 0.1, 0.25, 0.5, 1, 2, 5],
      registers,
    });
    this.announces = new Counter({
      name: 'multisite_peers_announces_total',
      help: 'Down announcements sent to and received from peers',
      labelNames: ['direction'],
      registers,
    });
  }

  setState(site: string, state: PeerState): void {
    for (const s of STATES) this.state.set({ site, state: s }, s === state ? 1 : 0);
  }
}
