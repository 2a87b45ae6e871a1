// What `terraform apply -json` reports, line by line (Terraform's machine-readable UI), folded into a tally.

/** The progress of one apply, as its JSON lines tell it. */
export interface ApplyTally {
  /** Resource changes the plan holds (add + change + remove); undefined until the plan is made. */
  readonly planned?: number;
  /** Addresses of the managed resources whose change completed. */
  readonly completed: ReadonlySet<string>;
  /** Addresses being changed now. */
  readonly inFlight: ReadonlySet<string>;
  /** Seconds each completed change took, by address. */
  readonly elapsed: ReadonlyMap<string, number>;
  /** Error diagnostics, as `address: summary` (or the summary alone). */
  readonly errors: readonly string[];
  /** The root module's outputs, once the apply reported them. */
  readonly outputs?: Readonly<Record<string, unknown>>;
}

export const emptyTally = (): ApplyTally => ({
  completed: new Set(),
  inFlight: new Set(),
  elapsed: new Map(),
  errors: [],
});

interface Hook {
  readonly resource?: { readonly addr?: unknown };
  readonly action?: unknown;
  readonly elapsed_seconds?: unknown;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** One line of `terraform apply -json` folded into a tally; lines that are not its JSON leave it as it was. */
export function foldApplyLine(tally: ApplyTally, line: string): ApplyTally {
  let message: unknown;
  try {
    message = JSON.parse(line);
  } catch {
    return tally;
  }
  if (!isRecord(message)) return tally;
  const hook = (isRecord(message.hook) ? message.hook : {}) as Hook;
  const address = typeof hook.resource?.addr === 'string' ? hook.resource.addr : undefined;
  // Data sources are read, not changed: they count toward nothing.
  const managed = address !== undefined && hook.action !== 'read';
  switch (message.type) {
    case 'change_summary': {
      const changes = isRecord(message.changes) ? message.changes : {};
      if (changes.operation !== 'plan') return tally;
      const count = (key: string) => (typeof changes[key] === 'number' ? changes[key] : 0);
      return { ...tally, planned: count('add') + count('change') + count('remove') };
    }
    case 'apply_start':
      return managed ? { ...tally, inFlight: new Set([...tally.inFlight, address]) } : tally;
    case 'apply_complete': {
      if (!managed) return tally;
      const inFlight = new Set(tally.inFlight);
      inFlight.delete(address);
      const seconds = typeof hook.elapsed_seconds === 'number' ? hook.elapsed_seconds : 0;
      return {
        ...tally,
        inFlight,
        completed: new Set([...tally.completed, address]),
        elapsed: new Map([...tally.elapsed, [address, seconds]]),
      };
    }
    case 'apply_errored': {
      if (!managed) return tally;
      const inFlight = new Set(tally.inFlight);
      inFlight.delete(address);
      return { ...tally, inFlight };
    }
    case 'diagnostic': {
      const diagnostic = isRecord(message.diagnostic) ? message.diagnostic : {};
      if (diagnostic.severity !== 'error') return tally;
      const summary = typeof diagnostic.summary === 'string' ? diagnostic.summary : 'error';
      const detail =
        typeof diagnostic.detail === 'string' && diagnostic.detail ? `: ${diagnostic.detail}` : '';
      const where = typeof diagnostic.address === 'string' ? `${diagnostic.address}: ` : '';
      return { ...tally, errors: [...tally.errors, `${where}${summary}${detail}`] };
    }
    case 'outputs': {
      const outputs = isRecord(message.outputs) ? message.outputs : {};
      return {
        ...tally,
        outputs: Object.fromEntries(
          Object.entries(outputs).map(([key, output]) => [key, isRecord(output) ? output.value : undefined]),
        ),
      };
    }
    default:
      return tally;
  }
}

/** The `limit` slowest changes of a tally, slowest first. */
export function slowest(tally: ApplyTally, limit: number): Array<{ address: string; seconds: number }> {
  return [...tally.elapsed]
    .map(([address, seconds]) => ({ address, seconds }))
    .sort((a, b) => b.seconds - a.seconds || a.address.localeCompare(b.address))
    .slice(0, limit);
}
