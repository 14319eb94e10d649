// Lint rules: typescript-eslint's recommended set, with the exceptions this code base needs said plainly.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      'coverage/',
      '.sample-build/',
      '.sample-memcached/',
      '.readme-check-*/',
      'test/compat/*/node_modules/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // TypeScript itself reports undefined names, with the right globals for each file
      'no-undef': 'off',
      // Nest's own types (providers, metadata) are Function-typed; `any` stays visible where it is used
      '@typescript-eslint/no-unsafe-function-type': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { args: 'none', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // the NestJS 11 compatibility app is CommonJS, as its users' apps are
    files: ['test/compat/**/*.js'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
