import { cloudRanges, contains, containsRange, type CausalContext } from './causal-context';
import type { Crdt } from './crdt';
import { variantOf, type CrdtDocument } from './document';
import type { GCounter } from './gcounter';
import { compareHlc } from './hlc';
import { isFolded, lineageOf } from './lineage';

const ofGroup = (replica: string, group: string) => lineageOf(replica)?.group === group;

function counterLost(incoming: GCounter, stored: GCounter | undefined, group: string): boolean {
  const storedFold = stored?.folds.get(group);
  const incomingFold = incoming.folds.get(group);
  if (incomingFold && incomingFold.beforeMs > (storedFold?.beforeMs ?? -1)) return true;
  const horizons = new Map(storedFold ? [[group, storedFold.beforeMs]] : []);
  for (const [replica, n] of incoming.counts)
    if (ofGroup(replica, group) && !isFolded(replica, horizons) && n > (stored?.counts.get(replica) ?? 0))
      return true;
  return false;
}

function contextLost(incoming: CausalContext, stored: CausalContext | undefined, group: string): boolean {
  const seen = (replica: string, counter: number) =>
    stored !== undefined && contains(stored, [replica, counter]);
  if ((incoming.horizons.get(group) ?? -1) > (stored?.horizons.get(group) ?? -1)) return true;
  for (const [replica, n] of incoming.vv) if (ofGroup(replica, group) && !seen(replica, n)) return true;
  for (const [replica, from, to] of cloudRanges(incoming))
    if (ofGroup(replica, group) && (stored === undefined || !containsRange(stored, replica, from, to)))
      return true;
  return false;
}

function crdtLost(incoming: Crdt, stored: Crdt | undefined, group: string): boolean {
  switch (incoming.type) {
    case 'gcounter':
      return counterLost(incoming.state, stored?.type === 'gcounter' ? stored.state : undefined, group);
    case 'pncounter': {
      const mine = stored?.type === 'pncounter' ? stored.state : undefined;
      return counterLost(incoming.state.p, mine?.p, group) || counterLost(incoming.state.n, mine?.n, group);
    }
    case 'orset':
      return contextLost(
        incoming.state.context,
        stored?.type === 'orset' ? stored.state.context : undefined,
        group,
      );
    case 'lww': {
      const stamp = incoming.state.stamp;
      if (!ofGroup(stamp.replica, group)) return false;
      return stored?.type !== 'lww' || compareHlc(stamp, stored.state.stamp) > 0;
    }
  }
}

/**
 * Whether `incoming` holds something of `group`'s own replicas (a count, a dot, a fold, a register write)
 * that `stored` lacks. Only the group's region issues those and it stores each before publishing it, so
 * when a message brings one back, that region's stored state went back (a restore, a recreated item).
 */
export function showsLossOf(group: string, stored: CrdtDocument, incoming: CrdtDocument): boolean {
  for (const [key, field] of incoming) {
    for (const variant of field) {
      if (crdtLost(variant.crdt, variantOf(stored.get(key), variant.crdt.type)?.crdt, group)) return true;
    }
  }
  return false;
}
