import * as z from 'zod/mini';
import { HandlerConfigError, loadConfig } from '../../runtime/lib/config';

const schema = z.object({
  TABLE_NAME: z.string().check(z.minLength(1, 'expected the table name')),
  WEBHOOK_SECRET: z.string().check(z.minLength(32, 'expected a secret of at least 32 characters')),
  LIMIT: z.coerce.number().check(z.int('expected an integer limit')),
});

describe('loadConfig', () => {
  it('returns typed settings', () => {
    expect(loadConfig(schema, { TABLE_NAME: 't', WEBHOOK_SECRET: 'x'.repeat(32), LIMIT: '5' })).toEqual({
      TABLE_NAME: 't',
      WEBHOOK_SECRET: 'x'.repeat(32),
      LIMIT: 5,
    });
  });

  it('lists every bad setting at once and never echoes a value', () => {
    let error: unknown;
    try {
      loadConfig(schema, { WEBHOOK_SECRET: 'hunter2-too-short', LIMIT: '1.5' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(HandlerConfigError);
    const message = (error as Error).message;
    expect((error as HandlerConfigError).problems).toHaveLength(3);
    expect(message).toContain('TABLE_NAME:');
    expect(message).toContain('WEBHOOK_SECRET: expected a secret of at least 32 characters');
    expect(message).toContain('LIMIT: expected an integer limit');
    expect(message).not.toContain('hunter2');
  });
});
