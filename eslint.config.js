import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'coverage/', 'prebuilds/'] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    languageOptions: { globals: globals.node },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // The dashboard's page scripts run in the browser, with vega-embed loaded before them.
    files: ['src/dashboard/assets/**/*.js', 'src/tune/assets/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser, vegaEmbed: 'readonly' } },
  },
  {
    // ...and common.js before the page's own script: its helpers are the page's globals.
    files: ['src/dashboard/assets/dashboard.js', 'src/tune/assets/study.js'],
    languageOptions: { globals: { $: 'readonly', el: 'readonly', getJson: 'readonly', draw: 'readonly' } },
  },

  {
    // The page's script runs in the browser.
    files: ['src/web/**/*.js'],
    languageOptions: { globals: globals.browser },
  },
  {
    // In tests an absent value should fail loudly at the assertion, not be guarded.
    files: ['tests/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
