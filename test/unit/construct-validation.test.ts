import { fail, requireIntInRange, requireMatch } from '../../modules/lib/validate';

function messageOf(validate: () => unknown): string {
  try {
    validate();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected a validation error');
}

describe('construct validation', () => {
  it.each([
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
    [-Infinity, '-Infinity'],
  ])('shows %p as %s', (value, shown) => {
    expect(messageOf(() => requireIntInRange('Queue', 'batchSize', value, 1, 10))).toBe(
      `Queue: invalid batchSize: received ${shown}; expected an integer between 1 and 10`,
    );
  });

  it('bounds the message however large the value received', () => {
    const deep = Array.from({ length: 10_000 }).reduce<unknown>((inner) => ({ inner }), 1);
    const huge = ['x'.repeat(1_000_000), Array.from({ length: 100_000 }, (_, i) => `route-${i}`), deep];
    for (const value of huge) {
      const message = messageOf(() => fail('RegionalHttpApi', 'routes', value, 'distinct route keys'));
      expect(message).toMatch(/^RegionalHttpApi: invalid routes: received .+; expected distinct route keys$/);
      expect(message.length).toBeLessThan(200);
    }
    expect(
      messageOf(() => requireMatch('Bucket', 'name', 'x'.repeat(1_000_000), /^[a-z]{3,63}$/, 'a name'))
        .length,
    ).toBeLessThan(200);
  });

  it('names a value that refers to itself instead of failing to render it', () => {
    const cyclic: Record<string, unknown> = { name: 'a' };
    cyclic.self = cyclic;
    expect(messageOf(() => fail('Thing', 'props', cyclic, 'a plain value'))).toMatch(
      /^Thing: invalid props: received \{"name":"a","self":\{"name":"a","self":/,
    );
  });
});
