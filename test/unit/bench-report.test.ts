import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  appendSection,
  beginMarker,
  benchNames,
  blockContent,
  cleanFigures,
  commandFor,
  endMarker,
  formatDate,
  HEADER_BEGIN,
  HEADER_END,
  ratioLines,
  renderBlock,
  renderHeader,
  replaceBlock,
  replaceHeader,
  selectBenches,
  updateReport,
  type BenchResult,
  type Machine,
  type Run,
} from '../../bench/support/report';

const machine: Machine = {
  cpuModel: 'AMD EPYC 7763 64-Core Processor',
  cpuCount: 2,
  memoryBytes: 8 * 1024 ** 3,
  os: 'Linux 6.8.0 (x64)',
  node: '20.20.2',
};
const known = ['synth', 'crdt', 'quota', 'secrets', 'router', 'sync'];
const date = new Date(Date.UTC(2026, 11, 3, 9, 5));
const run = (selected: readonly string[] = known): Run => ({ machine, date, known, selected });
const ok = (name: string, stdout: string, seconds = 12): BenchResult => ({
  name,
  ok: true,
  stdout,
  startedAt: date,
  seconds,
  load: 0.42,
});

const block = (name: string, content: string) => `${beginMarker(name)}\n\n${content}\n\n${endMarker(name)}`;

/** A report with prose before, between and after two generated blocks, and a hand-made section. */
const REPORT = [
  '# Benchmarks',
  '',
  'Intro written by hand.',
  '',
  '## CRDTs',
  '',
  block('crdt', 'old crdt figures'),
  '',
  'CRDT analysis: **merge** is linear.',
  '',
  '## Unit lane',
  '',
  'Hand-made timing, no markers.',
  '',
  '## Runner control plane',
  '',
  block('router', 'old router figures'),
  '',
  '- router analysis bullet',
  '',
].join('\n');

describe('which benches', () => {
  it('takes bench:<name> scripts of package.json in declared order, and nothing else', () => {
    expect(
      benchNames({
        build: 'tsc',
        'bench:synth': 'tsx bench/synth.ts',
        bench: 'tsx bench/all.ts',
        'bench:crdt': 'tsx bench/crdt.ts',
        benchmarks: 'x',
        'test:bench:x': 'y',
        'bench:': 'z',
      }),
    ).toEqual(['synth', 'crdt']);
  });

  it('finds every bench of the real package.json, not the runner itself', () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const names = benchNames(pkg.scripts);
    expect(names).toEqual(expect.arrayContaining(['crdt', 'router', 'sync']));
    expect(names).not.toContain('');
    expect(pkg.scripts.bench).toBe('tsx bench/all.ts');
  });

  it('runs every bench when none is named, the named ones (once each, in the order given) otherwise', () => {
    expect(selectBenches(known, [])).toEqual(known);
    expect(selectBenches(known, ['router', 'crdt', 'router'])).toEqual(['router', 'crdt']);
  });

  it('refuses an unknown name, naming it and the known benches', () => {
    expect(() => selectBenches(known, ['crdt', 'crdts'])).toThrow(
      'unknown bench "crdts": the benches are synth, crdt, quota, secrets, router, sync',
    );
    expect(() => selectBenches(known, ['bench:crdt', 'x'])).toThrow(/unknown benches "bench:crdt", "x"/);
  });

  it('names the command: npm run bench for every bench, its arguments for a subset', () => {
    expect(commandFor(run())).toBe('npm run bench');
    expect(commandFor(run(['crdt', 'router']))).toBe('npm run bench -- crdt router');
  });
});

describe('blocks between markers', () => {
  it('replaces one bench block and keeps everything else byte for byte', () => {
    const next = replaceBlock(REPORT, 'crdt', 'new crdt figures');
    const [before, rest] = REPORT.split(beginMarker('crdt')) as [string, string];
    const after = rest.slice(rest.indexOf(endMarker('crdt')));
    expect(next).toBe(`${before}${beginMarker('crdt')}\n\nnew crdt figures\n\n${after}`);
    expect(next.startsWith(before)).toBe(true);
    expect(next.endsWith(after)).toBe(true);
    expect(blockContent(next, 'router')).toBe(blockContent(REPORT, 'router'));
    expect(blockContent(next, 'crdt')).toBe('\n\nnew crdt figures\n\n');
  });

  it('is stable: the same content twice gives the same text', () => {
    const once = replaceBlock(REPORT, 'router', 'figures');
    expect(replaceBlock(once, 'router', 'figures')).toBe(once);
  });

  it('finds a begin marker whose note was reworded by hand', () => {
    const text = '<!-- bench:crdt:begin written by a script -->\nold\n<!-- bench:crdt:end -->\nprose';
    expect(replaceBlock(text, 'crdt', 'new')).toBe(
      '<!-- bench:crdt:begin written by a script -->\n\nnew\n\n<!-- bench:crdt:end -->\nprose',
    );
  });

  it('does not take one bench for another whose name it starts or matches as a pattern', () => {
    const text = `${block('sync-writers', 'writers')}\n\n${block('syncXall', 'x')}\n`;
    expect(blockContent(text, 'sync')).toBeUndefined();
    expect(blockContent(text, 'sync.all')).toBeUndefined();
    const next = replaceBlock(text, 'sync', 'sync figures');
    expect(next.startsWith(text.trimEnd())).toBe(true);
    expect(blockContent(next, 'sync-writers')).toBe('\n\nwriters\n\n');
  });

  it('appends a section with markers for a bench that has none, leaving the text before it as it was', () => {
    const next = replaceBlock(REPORT, 'quota', 'quota figures');
    expect(next.startsWith(REPORT.trimEnd())).toBe(true);
    const added = next.slice(REPORT.trimEnd().length);
    expect(added).toBe(
      `\n\n## quota\n\n${beginMarker('quota')}\n\nquota figures\n\n${endMarker('quota')}\n\n` +
        '_No analysis yet: write it here, outside the markers._\n',
    );
    expect(appendSection(REPORT, 'quota', 'quota figures')).toBe(next);
    // The appended section is found by the next run.
    expect(blockContent(replaceBlock(next, 'quota', 'again'), 'quota')).toBe('\n\nagain\n\n');
  });

  it('refuses broken markers rather than rewriting the file around them', () => {
    expect(() => replaceBlock(`${beginMarker('crdt')}\nfigures, no end`, 'crdt', 'x')).toThrow(/end marker/);
    expect(() => replaceBlock(`figures\n${endMarker('crdt')}`, 'crdt', 'x')).toThrow(/without a begin/);
    expect(() => replaceBlock(`${REPORT}\n${block('crdt', 'twice')}`, 'crdt', 'x')).toThrow(
      /2 begin markers/,
    );
    expect(() => replaceBlock(`${REPORT}\n${endMarker('router')}`, 'router', 'x')).toThrow(
      /more than one end/,
    );
  });
});

describe('header', () => {
  it('says the machine (CPU model and count, memory, OS, Node), the date and the command', () => {
    const header = renderHeader(run());
    expect(header).toContain(
      '- Machine: AMD EPYC 7763 64-Core Processor, 2 cores; 8.0 GiB memory; Linux 6.8.0 (x64); Node 20.20.2',
    );
    expect(header).toContain('- Date: 2026-12-03 09:05 UTC');
    expect(header).toContain(
      '- Command: `npm run bench` (every bench, one after another: synth, crdt, quota, secrets, router, sync)',
    );
    expect(header).not.toContain('Failed');
  });

  it('names a subset run and the benches that failed', () => {
    const header = renderHeader(run(['crdt', 'router']), ['router']);
    expect(header).toContain('- Command: `npm run bench -- crdt router` (crdt, router; the other sections');
    expect(header).toContain('- Failed: router (its section keeps earlier figures)');
  });

  it('goes after the title when the file has none, and replaces itself afterwards', () => {
    const first = replaceHeader(REPORT, 'header one');
    expect(first).toBe(
      REPORT.replace(
        '# Benchmarks\n\n',
        `# Benchmarks\n\n${HEADER_BEGIN}\n\nheader one\n\n${HEADER_END}\n\n`,
      ),
    );
    const second = replaceHeader(first, 'header two');
    expect(second).toBe(first.replace('header one', 'header two'));
    expect(replaceHeader('no title', 'h')).toBe(`${HEADER_BEGIN}\n\nh\n\n${HEADER_END}\n\nno title`);
  });

  it('formats dates in UTC', () => {
    expect(formatDate(new Date(Date.UTC(2027, 0, 9, 23, 59, 59)))).toBe('2027-01-09 23:59 UTC');
  });
});

const CRDT_OUTPUT = [
  'OR-Set merge, 2 x 100,000 elements       98.3 ms   (150,000 elements after)',
  'baseline: union of two plain Sets            90.3 ms   ratio 1.1x',
  'delta of one add to a 100,000-element set          120 B',
  'decode it, every invariant checked             337.6 ms   vs JSON.parse 95.3 ms: 3.5x',
  'G-Counter merges (3 replicas)                 1550 per ms',
].join('\n');

describe('a bench block', () => {
  it('holds the exact command, when and where, the figures verbatim in a fence, and the ratio lines', () => {
    const rendered = renderBlock('crdt', `\n${CRDT_OUTPUT}  \r\n\n`, {
      when: '2026-12-03 09:05 UTC',
      detail: '41 s, AMD EPYC, 2 cores, Node 20.20.2',
    });
    expect(rendered).toBe(
      [
        'Command: `npm run bench:crdt` (taken 2026-12-03 09:05 UTC; 41 s, AMD EPYC, 2 cores, Node 20.20.2).',
        '',
        '```',
        CRDT_OUTPUT,
        '```',
        '',
        'Ratio lines (against baselines taken in the same run; ratios in table columns are in the figures above):',
        '',
        '- `baseline: union of two plain Sets 90.3 ms ratio 1.1x`',
        '- `decode it, every invariant checked 337.6 ms vs JSON.parse 95.3 ms: 3.5x`',
      ].join('\n'),
    );
  });

  it('says so when the bench printed no ratio', () => {
    expect(renderBlock('x', 'one figure 12 ms', { when: 'w', detail: 'd' })).toContain(
      'This bench printed no ratio against a baseline of the same run.',
    );
  });

  it('fences figures that contain a fence with a longer one', () => {
    const rendered = renderBlock('x', 'a\n```\nb', { when: 'w', detail: 'd' });
    expect(rendered).toContain('\n````\na\n```\nb\n````\n');
  });

  it('picks the ratio lines the benches print, not figures that merely end in x', () => {
    const output = [
      'ratio full/baseline: wall 0.44x, peak RSS 0.27x',
      'ratio allocate/baseline: 7.8x   (checksum 12)',
      '  new secret: parallel 603 ms, sequential 2213 ms, ratio 0.27x',
      "  ratio: p50 8.9x, p99 4.6x the body's HMAC",
      '         goal, 60 writers: <= 3 loads per committed write: met (2.30; full jitter alone 3.07, 1.3x as many)',
      'demand: home region ~0.3-1.3x the limit, moving every 20-60 windows; 2% bursts of 2-4x',
      'region share    containers   table writes/s   admitted   ratio to one write per request',
      '1,200/s                  1               10      10000   0.010x',
      '  1,000     1,963        1   111,930   |    10,000,  6,340,000 B   |  1/10000, 1/57',
    ].join('\n');
    expect(ratioLines(output)).toEqual([
      'ratio full/baseline: wall 0.44x, peak RSS 0.27x',
      'ratio allocate/baseline: 7.8x (checksum 12)',
      'new secret: parallel 603 ms, sequential 2213 ms, ratio 0.27x',
      "ratio: p50 8.9x, p99 4.6x the body's HMAC",
      'goal, 60 writers: <= 3 loads per committed write: met (2.30; full jitter alone 3.07, 1.3x as many)',
    ]);
  });

  it('cleans only line endings, trailing spaces and blank lines at either end', () => {
    expect(cleanFigures('\n\n  a   b  \r\n\r\n   c\n\n')).toBe('  a   b\n\n   c');
  });
});

describe('a run', () => {
  it('rewrites the blocks of benches that succeeded and keeps a failed bench its earlier figures', () => {
    const results: BenchResult[] = [
      { name: 'crdt', ok: false, reason: 'exit code 1' },
      ok('router', 'routeJob: 1 decisions/s\nratio: a decision costs 0.20x a JSON.parse of its payload'),
    ];
    const next = updateReport(REPORT, run(['crdt', 'router']), results);
    expect(blockContent(next, 'crdt')).toBe(blockContent(REPORT, 'crdt'));
    expect(blockContent(next, 'crdt')).toContain('old crdt figures');
    expect(blockContent(next, 'router')).toContain('```\nrouteJob: 1 decisions/s\nratio: a decision costs');
    expect(blockContent(next, 'router')).toContain(
      'Command: `npm run bench:router` (taken 2026-12-03 09:05 UTC; 12 s, load average 0.4 at start, AMD EPYC',
    );
    expect(blockContent(next, 'router')).not.toContain('old router figures');
    expect(next).toContain('- Failed: crdt (its section keeps earlier figures)');
  });

  it('adds no section for a bench that failed and had none', () => {
    const next = updateReport(REPORT, run(['quota']), [{ name: 'quota', ok: false, reason: 'exit code 1' }]);
    expect(blockContent(next, 'quota')).toBeUndefined();
    expect(next).not.toContain('## quota');
  });

  it('keeps the prose of every section (the real BENCHMARKS.md) through a run of every bench', () => {
    const real = readFileSync(join(__dirname, '../../BENCHMARKS.md'), 'utf8');
    const names = known.filter((name) => blockContent(real, name) !== undefined);
    expect(names.length).toBeGreaterThan(0);
    const next = updateReport(
      real,
      run(),
      known.map((name) => ok(name, `${name} figures 1.0 ms\nratio 2.0x`)),
    );
    /** The text outside every generated block (the header's included), which a run must not touch. */
    const prose = (text: string) => {
      let outside = replaceHeader(text, 'HEADER');
      for (const name of known)
        if (blockContent(outside, name) !== undefined) outside = replaceBlock(outside, name, 'BLOCK');
      return outside;
    };
    const appended = known.filter((name) => !names.includes(name));
    const withoutAppended =
      appended.length > 0 ? next.slice(0, next.indexOf(`\n\n## ${appended[0]}\n`)) : next;
    expect(prose(withoutAppended).trimEnd()).toBe(prose(real).trimEnd());
    for (const name of known) expect(blockContent(next, name)).toContain(`${name} figures 1.0 ms`);
  });
});
