'use strict';
// The shared bad-input cases (bad-input.json here) run by the Node client
// against its own fake broker (client-lib/node/test/fake-broker.js).

const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');

const NODE_DIR = path.resolve(__dirname, '../../client-lib/node');
const { DaemonClientError } = require(NODE_DIR);
const { FakeBroker, fakeClient } = require(path.join(NODE_DIR, 'test/fake-broker'));
const h = require(path.join(NODE_DIR, 'test/helpers'));

const SPEC = JSON.parse(fs.readFileSync(path.join(__dirname, 'bad-input.json'), 'utf8'));
const unhandled = h.trackUnhandled();
test.after(() => unhandled.assertNone());

for (const bad of SPEC.cases) {
  test(bad.name, async () => {
    const fake = await new FakeBroker().start();
    const c = fakeClient(fake);
    const errors = c.errors;
    const show = () => errors.map((e) => `${e.code}: ${e.message}`).join('; ');
    try {
      await h.within(c.connect(), 5000, 'connect()');
      let settled = 0;
      const inFlight = h.rejection(c.sendCommand('never', {}).finally(() => settled++), 5000, 'the command in flight');
      await h.waitFor(() => fake.frames.some((f) => f.op === 'request'), 5000, 'the command at the fake broker');
      fake.conns[0].raw(Buffer.from(bad.hex, 'hex'));
      if (bad.close) fake.conns[0].end();
      const e = await inFlight;
      assert.ok(e instanceof DaemonClientError, `expected a DaemonClientError, got ${e}`);
      assert.strictEqual(e.code, 'SOCKET_NOT_READY', `the command in flight: expected SOCKET_NOT_READY, got ${e.code}: ${e.message}`);
      await h.waitFor(() => errors.some((x) => x.code === bad.error), 5000, `an error ${bad.error} (got: ${show()})`);
      await h.waitFor(() => fake.hellos === 2 && c.isReady(), 5000, 'the reconnect');
      assert.deepStrictEqual(await h.within(c.sendCommand('echo', { after: bad.name }), 5000, 'echo'), { after: bad.name });
      assert.strictEqual(settled, 1, `the command in flight: expected 1 settlement, got ${settled}`);
    } finally {
      c.disconnect();
      await fake.stop();
    }
  });
}
