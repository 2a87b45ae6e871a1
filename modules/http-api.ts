import { AcmCertificate } from '@cdktf/provider-aws/lib/acm-certificate';
import { AcmCertificateValidation } from '@cdktf/provider-aws/lib/acm-certificate-validation';
import { Apigatewayv2Api } from '@cdktf/provider-aws/lib/apigatewayv2-api';
import { Apigatewayv2ApiMapping } from '@cdktf/provider-aws/lib/apigatewayv2-api-mapping';
import { Apigatewayv2DomainName } from '@cdktf/provider-aws/lib/apigatewayv2-domain-name';
import { Apigatewayv2Integration } from '@cdktf/provider-aws/lib/apigatewayv2-integration';
import { Apigatewayv2Route } from '@cdktf/provider-aws/lib/apigatewayv2-route';
import { Apigatewayv2Stage } from '@cdktf/provider-aws/lib/apigatewayv2-stage';
import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group';
import { LambdaPermission } from '@cdktf/provider-aws/lib/lambda-permission';
import { Fn } from 'cdktf';
import { Construct } from 'constructs';
import type { BundledFunction } from './bundled-function';
import type { KmsKey } from './kms-key';
import { fail, requireIntInRange, requireMatch } from './lib/validate';

/** A route of the API and the function serving it (through its `live` alias). */
export interface HttpRoute {
  /** `METHOD /path`, e.g. `GET /health`. */
  readonly routeKey: string;
  readonly handler: BundledFunction;
  /**
   * A throttle of the route's own (steady requests per second; burst twice that), apart from the API's
   * default: a flood on other routes cannot starve it. Default: the API's default route settings.
   */
  readonly ownThrottleRatePerSec?: number;
  /**
   * `iam`: callers sign with SigV4 and API Gateway admits only principals whose IAM policies allow
   * `execute-api:Invoke` on the route. Default: none (the function authenticates, e.g. a webhook signature).
   */
  readonly authorization?: 'iam';
}

/**
 * The regional custom domain the API serves under. Its certificate is validated by the record that one
 * stack owns for every region (CertificateValidationRecord): this API only waits for the certificate.
 */
export interface CustomDomain {
  /** Fully qualified name, e.g. `api.estate.example.com` (the same in every region). */
  readonly domainName: string;
}

export interface RegionalHttpApiProps {
  /** API name, e.g. `dev-api`. */
  readonly name: string;
  readonly routes: readonly HttpRoute[];
  /** Key for the access-log group. */
  readonly kmsKey: KmsKey;
  /** Access-log retention in days. Default: 365. */
  readonly logRetentionDays?: number;
  /** Serve under a regional custom domain. Default: the execute-api host only. */
  readonly customDomain?: CustomDomain;
  /** Steady-state requests per second on every route. Default: 100. */
  readonly throttleRatePerSec?: number;
}

/**
 * A region's HTTP API (API Gateway v2): Lambda proxy routes to `live` aliases with permissions scoped to
 * their route, a `$default` stage with JSON access logs and throttling, and optionally a regional custom
 * domain with a DNS-validated certificate. `endpointHost` is what a health check probes and, without a
 * custom domain, what the latency record points at.
 */
export class RegionalHttpApi extends Construct {
  readonly api: Apigatewayv2Api;
  readonly stage: Apigatewayv2Stage;
  readonly domain?: Apigatewayv2DomainName;

  constructor(scope: Construct, id: string, props: RegionalHttpApiProps) {
    super(scope, id);
    requireMatch(
      'RegionalHttpApi',
      'name',
      props.name,
      /^[a-zA-Z0-9_-]{1,128}$/,
      '1-128 letters, digits, - or _',
    );
    if (props.routes.length === 0) fail('RegionalHttpApi', 'routes', [], 'at least one route');
    const keys = props.routes.map((r) => r.routeKey);
    keys.forEach((key) =>
      requireMatch(
        'RegionalHttpApi',
        'routeKey',
        key,
        /^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|ANY) \/[^\s]*$/,
        'METHOD /path',
      ),
    );
    if (new Set(keys).size !== keys.length) fail('RegionalHttpApi', 'routes', keys, 'distinct route keys');

    this.api = new Apigatewayv2Api(this, 'Api', { name: props.name, protocolType: 'HTTP' });
    const routes = props.routes.map((route, index) => {
      const integration = new Apigatewayv2Integration(this, `Integration${index}`, {
        apiId: this.api.id,
        integrationType: 'AWS_PROXY',
        integrationUri: route.handler.alias.invokeArn,
        payloadFormatVersion: '2.0',
        timeoutMilliseconds: 10_000,
      });
      const created = new Apigatewayv2Route(this, `Route${index}`, {
        apiId: this.api.id,
        routeKey: route.routeKey,
        target: `integrations/${integration.id}`,
        ...(route.authorization === 'iam' ? { authorizationType: 'AWS_IAM' } : {}),
      });
      const [method, routePath] = route.routeKey.split(' ');
      // A path parameter matches one segment of the execute-api ARN: `{region}` becomes `*`.
      const path = (routePath ?? '').replace(/\{[^}/]+\}/g, '*');
      new LambdaPermission(this, `Invoke${index}`, {
        statementId: `HttpApi${index}`,
        action: 'lambda:InvokeFunction',
        functionName: route.handler.function.functionName,
        qualifier: route.handler.alias.name,
        principal: 'apigateway.amazonaws.com',
        sourceArn: `${this.api.executionArn}/*/${method === 'ANY' ? '*' : method}${path}`,
      });
      return created;
    });

    const accessLogs = new CloudwatchLogGroup(this, 'AccessLogs', {
      name: `/aws/apigateway/${props.name}`,
      retentionInDays: props.logRetentionDays ?? 365,
      kmsKeyId: props.kmsKey.arn,
    });
    const rate = requireIntInRange(
      'RegionalHttpApi',
      'throttleRatePerSec',
      props.throttleRatePerSec ?? 100,
      1,
      10_000,
    );
    const ownThrottles = props.routes.flatMap((route) =>
      route.ownThrottleRatePerSec === undefined
        ? []
        : [
            {
              routeKey: route.routeKey,
              throttlingRateLimit: requireIntInRange(
                'RegionalHttpApi',
                `ownThrottleRatePerSec of ${route.routeKey}`,
                route.ownThrottleRatePerSec,
                1,
                10_000,
              ),
              throttlingBurstLimit: route.ownThrottleRatePerSec * 2,
            },
          ],
    );
    this.stage = new Apigatewayv2Stage(this, 'Stage', {
      apiId: this.api.id,
      name: '$default',
      autoDeploy: true,
      defaultRouteSettings: { throttlingRateLimit: rate, throttlingBurstLimit: rate * 2 },
      ...(ownThrottles.length > 0 ? { routeSettings: ownThrottles } : {}),
      // A stage's route settings name routes that must exist first.
      dependsOn: routes,
      accessLogSettings: {
        destinationArn: accessLogs.arn,
        format: JSON.stringify({
          requestId: '$context.requestId',
          routeKey: '$context.routeKey',
          status: '$context.status',
          latencyMs: '$context.responseLatency',
          integrationError: '$context.integrationErrorMessage',
        }),
      },
    });

    if (props.customDomain) {
      this.domain = this.addCustomDomain(props.customDomain);
    }
  }

  /** Host of the API's own regional endpoint (`<id>.execute-api.<region>.amazonaws.com`). */
  get endpointHost(): string {
    return Fn.replace(this.api.apiEndpoint, 'https://', '');
  }

  private addCustomDomain(custom: CustomDomain): Apigatewayv2DomainName {
    const certificate = new AcmCertificate(this, 'Certificate', {
      domainName: custom.domainName,
      validationMethod: 'DNS',
      lifecycle: { createBeforeDestroy: true },
    });
    // The validation record is the global stack's: waiting here writes nothing.
    const validated = new AcmCertificateValidation(this, 'Validated', { certificateArn: certificate.arn });
    const domain = new Apigatewayv2DomainName(this, 'Domain', {
      domainName: custom.domainName,
      domainNameConfiguration: {
        certificateArn: validated.certificateArn,
        endpointType: 'REGIONAL',
        securityPolicy: 'TLS_1_2',
      },
    });
    new Apigatewayv2ApiMapping(this, 'Mapping', {
      apiId: this.api.id,
      domainName: domain.id,
      stage: this.stage.id,
    });
    return domain;
  }
}
