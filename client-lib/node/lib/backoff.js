'use strict';
// The delay before the next attempt to reach the broker again, with the
// meaning of socket.io-client's reconnection options (reconnectionDelay,
// reconnectionDelayMax, randomizationFactor): a service moved onto the
// broker reconnects to it on the schedule it had for the server. The first
// delay is `min`, each next one doubles, capped at `max`; then a random
// share of up to `jitter` of it is added or taken away, so that the
// services of a node do not all knock at the same moment after a broker
// restart. The result never exceeds `max`.

class Backoff {
  constructor({ min, max, jitter }) {
    this.min = Math.max(1, min);
    this.max = Math.max(this.min, max);
    this.jitter = Math.min(Math.max(jitter, 0), 1);
    this.attempts = 0;
  }

  /** The next delay in ms; each call counts one attempt. */
  next() {
    const base = Math.min(this.max, this.min * 2 ** Math.min(this.attempts, 30));
    this.attempts++;
    const swing = base * this.jitter * (Math.random() * 2 - 1);
    return Math.max(1, Math.min(this.max, Math.round(base + swing)));
  }

  reset() {
    this.attempts = 0;
  }
}

module.exports = { Backoff };
