import {
  emptyORSet,
  emptyPNCounter,
  lwwSet,
  orsetAdd,
  orsetRemove,
  mergeMap,
  pncounterAdd,
  tick,
  type Crdt,
  type CrdtMap,
  type Hlc,
  type JsonValue,
} from '../crdt';

/** A change a caller makes to one field of a document. */
export type Operation =
  | { readonly kind: 'increment'; readonly field: string; readonly by: number }
  | { readonly kind: 'add'; readonly field: string; readonly element: string }
  | { readonly kind: 'remove'; readonly field: string; readonly element: string }
  | { readonly kind: 'set'; readonly field: string; readonly value: JsonValue };

/** Thrown when an operation does not fit the field's type (a counter incremented as a set, ...). */
export class OperationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OperationError';
  }
}

const TYPE_OF: Record<Operation['kind'], Crdt['type']> = {
  increment: 'pncounter',
  add: 'orset',
  remove: 'orset',
  set: 'lww',
};

/** The outcome of applying an operation at a replica: the delta to ship, and the state with it merged. */
export interface Applied {
  readonly delta: CrdtMap;
  readonly next: CrdtMap;
  readonly clock: Hlc;
}

/**
 * Applies an operation at `replica` (the region): the delta a remote region needs, and the new local
 * state. Counters are PN-counters, sets OR-Sets, values LWW registers stamped by the replica's hybrid
 * logical clock, which the returned clock advances.
 */
export function applyOperation(
  state: CrdtMap,
  operation: Operation,
  replica: string,
  clock: Hlc | undefined,
  nowMs: number,
): Applied {
  const expected = TYPE_OF[operation.kind];
  const current = state.get(operation.field);
  if (current && current.type !== expected) {
    throw new OperationError(
      `${operation.field} is a ${current.type}; ${operation.kind} needs a ${expected}`,
    );
  }
  const stamp = tick(clock, replica, nowMs);
  let delta: Crdt;
  switch (operation.kind) {
    case 'increment': {
      const counter = current?.type === 'pncounter' ? current.state : emptyPNCounter();
      delta = { type: 'pncounter', state: pncounterAdd(counter, replica, operation.by) };
      break;
    }
    case 'add':
    case 'remove': {
      const set = current?.type === 'orset' ? current.state : emptyORSet();
      const next =
        operation.kind === 'add'
          ? orsetAdd(set, replica, operation.element)
          : orsetRemove(set, operation.element);
      delta = { type: 'orset', state: next };
      break;
    }
    case 'set':
      delta = { type: 'lww', state: lwwSet(operation.value, stamp) };
      break;
  }
  const deltaMap: CrdtMap = new Map([[operation.field, delta]]);
  return { delta: deltaMap, next: mergeMap(state, deltaMap), clock: stamp };
}
