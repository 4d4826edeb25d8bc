'use strict';
// index.d.ts against the seed: tsc --noEmit (strict) on test/types/
// seed-usage.mts, which holds the seed's samples and declarations, exact
// signature checks and what must not compile (@ts-expect-error). A control
// file with one type error must fail, so the check cannot pass vacuously.

const test = require('node:test');
const assert = require('assert');
const childProcess = require('child_process');
const path = require('path');

const here = path.join(__dirname, 'types');
const tsc = require.resolve('typescript/bin/tsc');

// Both compilations at once: tsc takes seconds to start.
function runTsc(project) {
  return new Promise((resolve) => {
    childProcess.execFile(process.execPath, [tsc, '-p', path.join(here, project)], { timeout: 180000 }, (err, stdout, stderr) => {
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}
const usage = runTsc('tsconfig.json');
const control = runTsc('tsconfig.broken.json');

test('tsc --noEmit: the seed\'s usage type-checks against index.d.ts', async () => {
  const r = await usage;
  assert.strictEqual(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});

test('tsc --noEmit: a type error is reported (the control)', async () => {
  const r = await control;
  assert.notStrictEqual(r.status, 0, 'tsc accepted a file with a type error');
  assert.match(r.stdout, /broken\.mts\(6,7\): error TS2322: Type 'string' is not assignable to type 'Promise<string>'/);
});
