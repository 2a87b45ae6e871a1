/** What one probe of one dependency found. */
export interface ProbeResult {
  /** What was probed, e.g. `dynamodb:dev-region-state`. */
  readonly dependency: string;
  readonly healthy: boolean;
  /** Why the probe failed, or the state it saw. */
  readonly detail: string;
  readonly latencyMs: number;
}

/** The region's verdict, as the health endpoint reports it. */
export interface HealthVerdict {
  readonly status: 'healthy' | 'unhealthy';
  readonly region: string;
  readonly checkedAt: string;
  /** Dependencies whose probe failed, in probe order. */
  readonly failing: readonly string[];
  readonly checks: readonly ProbeResult[];
}

/** A region is healthy when every dependency it needs answered; with nothing probed it is not. */
export function assessHealth(region: string, probes: readonly ProbeResult[], now: Date): HealthVerdict {
  const failing = probes.filter((p) => !p.healthy).map((p) => p.dependency);
  const healthy = probes.length > 0 && failing.length === 0;
  return {
    status: healthy ? 'healthy' : 'unhealthy',
    region,
    checkedAt: now.toISOString(),
    failing: probes.length === 0 ? ['(no dependencies probed)'] : failing,
    checks: probes,
  };
}

/**
 * What the public endpoint answers: the verdict and the names of failing dependencies only. Probe details
 * (error names, latencies) go to the log, never to the caller.
 */
export interface PublicVerdict {
  readonly status: HealthVerdict['status'];
  readonly region: string;
  readonly checkedAt: string;
  readonly failing: readonly string[];
}

export const publicVerdict = (verdict: HealthVerdict): PublicVerdict => ({
  status: verdict.status,
  region: verdict.region,
  checkedAt: verdict.checkedAt,
  failing: verdict.failing,
});

/** Route 53 health checks read the status code: 200 keeps the region in DNS, 503 takes it out. */
export function verdictStatusCode(verdict: HealthVerdict): 200 | 503 {
  return verdict.status === 'healthy' ? 200 : 503;
}
