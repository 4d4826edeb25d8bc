'use strict';
// The dev server's event log: bounded however long it runs, and never
// short of its last MAX_EVENTS events (what a test's `since` cursor reads).
const test = require('node:test');
const assert = require('node:assert');
const { State } = require('../lib/state');

function newState() {
  const cfg = { cluster: 'c', password: 'p', tokens: [] };
  return new State(cfg, { event() {} });
}

test('the event log keeps at least the last 10000 events and at most a quarter more', () => {
  const state = newState();
  let longest = 0;
  for (let i = 1; i <= 30000; i++) {
    state.record('request', { i });
    longest = Math.max(longest, state.events.length);
    const kept = Math.min(i, 10000);
    assert.ok(state.events.length >= kept, `${state.events.length} events after ${i}`);
  }
  assert.strictEqual(longest, 12500);
  const seqs = state.events.map((e) => e.seq);
  assert.strictEqual(seqs[seqs.length - 1], 30000);
  seqs.forEach((s, k) => assert.strictEqual(s, seqs[0] + k, 'no gap'));
});

test('eventsSince reads the tail after the oldest events went', () => {
  const state = newState();
  for (let i = 0; i < 25000; i++) state.record(i % 2 ? 'request' : 'response');
  const got = state.eventsSince(24990, new Set(['request']));
  assert.deepStrictEqual(got.map((e) => e.seq), [24992, 24994, 24996, 24998, 25000]);
});
