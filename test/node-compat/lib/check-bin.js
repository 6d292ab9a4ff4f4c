'use strict';
// `npm test` runs this first (pretest) so a missing binary is one clear error,
// not a wall of cancelled tests.
const { meridianBin, assertBinary } = require('./harness');

try {
  assertBinary(meridianBin());
} catch (e) {
  console.error(`node-compat: ${e.message}`);
  process.exit(1);
}
