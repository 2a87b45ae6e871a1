import { AcmCertificate } from '@cdktf/provider-aws/lib/acm-certificate';
import { Route53Record } from '@cdktf/provider-aws/lib/route53-record';
import { Construct } from 'constructs';
import { requireMatch } from './lib/validate';

export interface CertificateValidationRecordProps {
  /** The name every region's certificate is for, e.g. `api.estate.example.com`. */
  readonly domainName: string;
  /** The zone holding the name (the stack owning it owns the record). */
  readonly zoneId: string;
}

/**
 * The DNS record that validates every region's ACM certificate for one name, owned by one stack. ACM gives
 * an account the same validation record for a name in every region ("the CNAME validation token works for
 * any AWS Region"), so the regional stacks only wait for their certificate to be issued: none writes,
 * overwrites or (when destroyed) deletes the record another region's renewals need. The record comes from a
 * certificate requested here, which this stack does not wait for: the zone may not be delegated yet on the
 * first day (the rollout's delegation preflight runs before the regions, which do wait).
 */
export class CertificateValidationRecord extends Construct {
  readonly record: Route53Record;
  readonly certificate: AcmCertificate;

  constructor(scope: Construct, id: string, props: CertificateValidationRecordProps) {
    super(scope, id);
    requireMatch(
      'CertificateValidationRecord',
      'domainName',
      props.domainName,
      /^([a-z0-9-]{1,63}\.)+[a-z0-9-]{1,63}$/,
      'a lower-case DNS name',
    );
    this.certificate = new AcmCertificate(this, 'Certificate', {
      domainName: props.domainName,
      validationMethod: 'DNS',
      lifecycle: { createBeforeDestroy: true },
    });
    const option = this.certificate.domainValidationOptions.get(0);
    this.record = new Route53Record(this, 'Record', {
      zoneId: props.zoneId,
      name: option.resourceRecordName,
      type: option.resourceRecordType,
      records: [option.resourceRecordValue],
      ttl: 300,
    });
  }
}
