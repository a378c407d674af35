// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'out/', 'node_modules/', 'e2e/.work/', '*.vsix'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
      curly: ['error', 'all'],
    },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
  {
    // The end-to-end driver: Node, plus the functions it runs in the page (page.evaluate).
    files: ['e2e/**/*.mjs'],
    languageOptions: {
      globals: {
        setTimeout: 'readonly', fetch: 'readonly',
        window: 'readonly', document: 'readonly', MutationObserver: 'readonly',
      },
    },
  },
);
