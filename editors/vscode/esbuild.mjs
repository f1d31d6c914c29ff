// Bundles the extension (src/extension.ts -> out/extension.js, `vscode` left to the host) or,
// with --tests, each test/*.test.ts into out/test/ with `vscode` resolved to test/mock/vscode.js
// (apart, so that ctest can build the tests and the .vsix at the same time).
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';
import * as path from 'node:path';

const production = process.argv.includes('--production');
const tests = process.argv.includes('--tests');
const common = { bundle: true, platform: 'node', format: 'cjs', target: 'node20', sourcemap: !production, logLevel: 'warning' };

if (!tests) await esbuild.build({
  ...common,
  entryPoints: ['src/extension.ts'],
  outfile: 'out/extension.js',
  external: ['vscode'],
  minify: production,
});

if (tests) {
  const entries = fs.readdirSync('test').filter((f) => f.endsWith('.test.ts')).map((f) => path.join('test', f));
  fs.rmSync('out/test', { recursive: true, force: true });
  await esbuild.build({
    ...common,
    entryPoints: entries,
    outdir: 'out/test',
    alias: { vscode: './test/mock/vscode.js' },
  });
}
