// Test lanes (DESIGN §6): each is a jest project, run alone with `npm run test:<lane>`, all with `npm test`.
const base = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  // Transpile only: `npm run typecheck` type-checks the whole tree once.
  transform: {
    '^.+\\.ts$': ['ts-jest', { diagnostics: false }],
    // ESM-only packages (their exports name no `require` condition): transpiled to CommonJS for jest.
    '^.+/node_modules/(@octokit|universal-user-agent|universal-github-app-jwt|content-type)/.+\\.js$': [
      'ts-jest',
      { diagnostics: false, tsconfig: { allowJs: true } },
    ],
  },
  transformIgnorePatterns: [
    '/node_modules/(?!(@octokit|universal-user-agent|universal-github-app-jwt|content-type)/)',
  ],
  moduleNameMapper: {
    '^@octokit/webhooks-methods$': '<rootDir>/node_modules/@octokit/webhooks-methods/dist-node/index.js',
  },
  moduleFileExtensions: ['ts', 'js', 'json'],
};

/** @type {import('jest').Config} */
module.exports = {
  reporters: ['default', '<rootDir>/test/support/summary-reporter.js'],
  // The terraform and deploy lanes mostly wait on Terraform and the emulator: run two test files at once.
  maxWorkers: 2,
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...base,
      displayName: 'synth',
      testMatch: ['<rootDir>/test/synth/**/*.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/test/support/cdktf-matchers.ts'],
    },
    { ...base, displayName: 'policy', testMatch: ['<rootDir>/test/policy/**/*.test.ts'] },
    { ...base, displayName: 'terraform', testMatch: ['<rootDir>/test/terraform/**/*.test.ts'] },
    {
      ...base,
      displayName: 'emulator',
      testMatch: ['<rootDir>/test/emulator/**/*.test.ts'],
      globalSetup: '<rootDir>/test/support/emulator-lane-setup.ts',
      globalTeardown: '<rootDir>/test/support/emulator-lane-teardown.ts',
    },
    {
      ...base,
      displayName: 'deploy',
      testMatch: ['<rootDir>/test/deploy/**/*.test.ts'],
      globalSetup: '<rootDir>/test/support/deploy-lane-setup.ts',
      globalTeardown: '<rootDir>/test/support/deploy-lane-teardown.ts',
    },
    {
      ...base,
      displayName: 'deploy-3-regions',
      testMatch: ['<rootDir>/test/deploy-three-regions/**/*.test.ts'],
      globalSetup: '<rootDir>/test/support/three-region-lane-setup.ts',
      globalTeardown: '<rootDir>/test/support/three-region-lane-teardown.ts',
    },
  ],
};
