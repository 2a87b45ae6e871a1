import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../modules/bundled-function';
import { TABLE_END, TABLE_START, withStackTable } from '../../scripts/lib/stack-table';
import { currentStackTable } from '../../scripts/readme-stacks';

describe('README', () => {
  it('shows the stacks and resource counts the code synthesizes (npm run readme:stacks refreshes it)', () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    expect(withStackTable(readme, currentStackTable())).toBe(readme);
  });

  it('replaces only the generated section', () => {
    const text = `before\n${TABLE_START}\nold\n${TABLE_END}\nafter`;
    expect(withStackTable(text, `${TABLE_START}\nnew\n${TABLE_END}`)).toBe(
      `before\n${TABLE_START}\nnew\n${TABLE_END}\nafter`,
    );
  });
});
