'use strict';
// Where the broker is, when the service does not say: the rule every
// client of volt-broker follows (libvoltclient, the Python client, this
// one), so that all of them find the same broker:
//
//   1. $VOLT_BROKER_SOCKET, when set and not empty;
//   2. the per-user broker's socket, if it exists: $XDG_RUNTIME_DIR/volt/
//      broker.sock when XDG_RUNTIME_DIR is an absolute path, else
//      /tmp/volt-UID/broker.sock (where a broker run by that user listens);
//   3. the system broker's /run/volt/broker.sock.

const fs = require('fs');
const path = require('path');

const SYSTEM_SOCKET = '/run/volt/broker.sock';

function userSocketPath(env, uid) {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'volt', 'broker.sock');
  return `/tmp/volt-${uid}/broker.sock`;
}

/**
 * The broker socket to use. `explicit` (the brokerSocket option) wins over
 * everything; env and uid are for tests.
 */
function resolveSocketPath(explicit, env = process.env, uid = process.getuid()) {
  if (explicit) return explicit;
  if (env.VOLT_BROKER_SOCKET) return env.VOLT_BROKER_SOCKET;
  const user = userSocketPath(env, uid);
  let isSocket = false;
  try {
    isSocket = fs.statSync(user).isSocket();
  } catch {
    isSocket = false;
  }
  return isSocket ? user : SYSTEM_SOCKET;
}

module.exports = { resolveSocketPath, userSocketPath, SYSTEM_SOCKET };
