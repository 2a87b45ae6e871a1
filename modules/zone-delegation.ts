import { Route53Record } from '@cdktf/provider-aws/lib/route53-record';
import { Fn, Token } from 'cdktf';
import { Construct } from 'constructs';
import { fail, requireIntInRange, requireMatch } from './lib/validate';

export interface ZoneDelegationProps {
  /** The parent zone, which this stack's account owns. */
  readonly parentZoneId: string;
  /** The parent zone's name, e.g. `estate.example.com`. */
  readonly parentZoneName: string;
  /** The child zone's name, e.g. `dev.estate.example.com`, strictly below the parent's. */
  readonly childZoneName: string;
  /**
   * The child zone's name servers, read (never written) from the child's stack, e.g. its remote state's
   * `name_servers` output. Empty until the child zone exists: no record is written then.
   */
  readonly nameServers: string[];
  /** TTL of the NS record in seconds. Default: 172800 (two days, the usual for delegations). */
  readonly ttlSec?: number;
}

/**
 * Delegates a child zone from the parent zone: the parent's account writes the NS record, reading the
 * child's name servers, so the child environment's rollout never needs write access to the parent zone.
 */
export class ZoneDelegation extends Construct {
  readonly record: Route53Record;

  constructor(scope: Construct, id: string, props: ZoneDelegationProps) {
    super(scope, id);
    const child = requireMatch(
      'ZoneDelegation',
      'childZoneName',
      props.childZoneName,
      /^([a-z0-9-]{1,63}\.)+[a-z0-9-]{1,63}$/,
      'a lower-case DNS name',
    );
    if (!child.endsWith(`.${props.parentZoneName}`))
      fail('ZoneDelegation', 'childZoneName', child, `a name below ${props.parentZoneName}`);
    const ttl = requireIntInRange('ZoneDelegation', 'ttlSec', props.ttlSec ?? 172_800, 60, 604_800);
    this.record = new Route53Record(this, 'NameServers', {
      zoneId: props.parentZoneId,
      name: child,
      type: 'NS',
      ttl,
      records: props.nameServers,
      // 0 until the child zone has name servers, then 1.
      count: Token.asNumber(Fn.min([Fn.lengthOf(props.nameServers), 1])),
    });
  }
}
