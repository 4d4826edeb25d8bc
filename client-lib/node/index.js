'use strict';
// @volt/broker-client: the API of @voltstack/daemon-cluster-client over a
// local volt-broker. A service changes its import line and nothing else.
const { ClusterDaemonClient } = require('./lib/client');
const { DaemonClientError } = require('./lib/errors');
const { resolveSocketPath } = require('./lib/socket-path');

module.exports = { ClusterDaemonClient, DaemonClientError, resolveSocketPath };
