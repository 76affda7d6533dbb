import tseslint from 'typescript-eslint'

export default tseslint.config({ ignores: ['dist/', 'node_modules/', 'bench/results/'] }, ...tseslint.configs.recommended, {
  rules: {
    '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    'no-constant-condition': ['error', { checkLoops: false }],
  },
})
