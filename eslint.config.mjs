// The explore page's script (netsight/report/pages/*.js): eslint's recommended rules, a browser script (no modules,
// no imports), plus a few rules that catch what the browser tests would find late.
import js from '@eslint/js';

export default [
  js.configs.recommended,
  {
    files: ['netsight/report/pages/**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'script',
      globals: {
        window: 'readonly', document: 'readonly', location: 'readonly', history: 'readonly',
        ResizeObserver: 'readonly', IntersectionObserver: 'readonly', console: 'readonly',
      },
    },
    rules: {
      'no-var': 'error',
      'prefer-const': 'error',
      eqeqeq: 'error',
      'no-implicit-globals': 'error',
      'no-shadow': 'error',
      'no-use-before-define': ['error', {functions: false, classes: true, variables: true}],
      strict: ['error', 'function'],
      'max-len': ['error', {code: 130}],
    },
  },
];
