import {
  emptyORSet,
  emptyPNCounter,
  isElement,
  isFieldKey,
  jsonValueProblem,
  laterHlc,
  lwwSet,
  mergeDocument,
  orsetAdd,
  orsetRemove,
  pncounterAdd,
  tick,
  visibleVariant,
  type Crdt,
  type CrdtDocument,
  type CrdtType,
  type Hlc,
  type JsonValue,
} from '../crdt';
import { PermanentError } from '../lib/failures';

/** A change a caller makes to one field of a document. */
export type Operation =
  | { readonly kind: 'increment'; readonly field: string; readonly by: number }
  | { readonly kind: 'add'; readonly field: string; readonly element: string }
  | { readonly kind: 'remove'; readonly field: string; readonly element: string }
  | { readonly kind: 'set'; readonly field: string; readonly value: JsonValue };

/** An operation that is malformed or does not fit the field's type. Never quotes the input. */
export class OperationError extends PermanentError {
  constructor(reason: string) {
    super('invalid-operation', reason);
    this.name = 'OperationError';
  }
}

const TYPE_OF: Record<Operation['kind'], CrdtType> = {
  increment: 'pncounter',
  add: 'orset',
  remove: 'orset',
  set: 'lww',
};

/** Throws `OperationError` naming the part of the operation that breaks its rule. */
export function checkOperation(operation: Operation): void {
  if (!isFieldKey(operation.field))
    throw new OperationError(
      'field: expected 1-256 UTF-8 bytes of well-formed Unicode without control characters',
    );
  switch (operation.kind) {
    case 'increment':
      if (!Number.isSafeInteger(operation.by)) throw new OperationError('by: expected a safe integer');
      return;
    case 'add':
    case 'remove':
      if (!isElement(operation.element))
        throw new OperationError('element: expected 0-1024 UTF-8 bytes of well-formed Unicode');
      return;
    case 'set': {
      const problem = jsonValueProblem(operation.value);
      if (problem) throw new OperationError(`value: ${problem}`);
      return;
    }
    default:
      throw new OperationError('kind: expected increment, add, remove or set');
  }
}

/** The outcome of applying an operation at a replica: the delta to ship, and the state with it merged. */
export interface Applied {
  readonly delta: CrdtDocument;
  readonly next: CrdtDocument;
  readonly clock: Hlc;
}

/**
 * Applies an operation at `replica`: the delta a remote region needs, and the new local state. Counters are
 * PN-counters, sets OR-Sets, values LWW registers stamped by the hybrid logical clock, which the returned
 * clock advances. A field is written as the type it reads as; the first write creates it, stamped.
 */
export function applyOperation(
  state: CrdtDocument,
  operation: Operation,
  replica: string,
  clock: Hlc | undefined,
  nowMs: number,
): Applied {
  checkOperation(operation);
  const expected = TYPE_OF[operation.kind];
  const field = state.get(operation.field);
  const current = field ? visibleVariant(field) : undefined;
  if (current && current.crdt.type !== expected)
    throw new OperationError(`field: it is a ${current.crdt.type}; ${operation.kind} needs a ${expected}`);
  // Stamps only move forward: past the clock and past anything the field already carries.
  const carried =
    current && laterHlc(current.created, current.crdt.type === 'lww' ? current.crdt.state.stamp : undefined);
  const stamp = tick(laterHlc(clock, carried), replica, nowMs);
  let delta: Crdt;
  switch (operation.kind) {
    case 'increment': {
      const counter = current?.crdt.type === 'pncounter' ? current.crdt.state : emptyPNCounter();
      delta = { type: 'pncounter', state: pncounterAdd(counter, replica, operation.by) };
      break;
    }
    case 'add':
    case 'remove': {
      const set = current?.crdt.type === 'orset' ? current.crdt.state : emptyORSet();
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
  const deltaDocument: CrdtDocument = new Map([
    [operation.field, [{ created: current?.created ?? stamp, crdt: delta }]],
  ]);
  return { delta: deltaDocument, next: mergeDocument(state, deltaDocument), clock: stamp };
}
