/**
 * The GSLB backend's public surface: PowerDNS's remote-backend protocol (connectors, handler),
 * the zones it serves, balanced names and their live order, cache flushes, the control socket.
 * The site (src/site/) composes these with site health; nothing imports past this file.
 */
export {
  compileBalanced,
  decide,
  addressesFor,
  POLICY_DEFAULTS,
  type BalancedName,
  type Decision,
} from './balanced.js';
export {
  applyPolicy,
  POLICIES,
  dependenceOf,
  type PolicyName,
  type SiteFigures,
  type ProbeFigures,
} from './policies.js';
export { Orderings, type OrderingsOptions } from './orderings.js';
export { currentAnswers, registerAnswerMetrics } from './answer-metrics.js';
export { decideRoute, RemoteDecider } from './decided-by.js';
export { explain, formatExplanation, type Explanation } from './explain.js';
export { ControlServer, controlRequest, drainSite, type ControlRequest, type ControlResponse } from './control.js';
export { DrainRelay, DRAIN_PATH, type DrainResult } from './drain-everywhere.js';
export { Flusher } from './flusher.js';
export {
  FailoverLog,
  FAILOVERS_PATH,
  STAGES,
  type FailoverRecord,
  type Stage,
  type StageTime,
} from './failover-log.js';
export { dnsdistConf, DNSDIST_FLUSH_PATH, type DnsdistConfOptions } from './dnsdist-conf.js';
export { Handler } from './handler.js';
export { BackendMetrics } from './metrics.js';
export { buildZone, type ServedZone } from './zone-index.js';
export { describeZoneProblems, loadZones, type LoadedZone } from './zones.js';
export type { Connector, ConnectorDeps } from './connectors/connector.js';
export { HttpConnector } from './connectors/http.js';
export { UnixConnector } from './connectors/unix.js';
export { balancedNames, createBackend, type Backend, type BackendDeps } from './serve.js';
