'use strict';
// DaemonClientError: the one error type every promise of this package
// rejects with and every onError callback receives, as in the seed.
//
// `code` is a wire name. The seed's own codes come first: what
// sendCommand() rejects with (SOCKET_NOT_READY, COMMAND_TIMEOUT,
// COMMAND_REJECTED), what connect() rejects with (EnrollmentFailed,
// SocketConnectionFailed, SocketRegistrationFailed) and what onError
// reports (HandlerError, EmitFailed, HeartbeatFailed). The broker's codes
// (proto/PROTOCOL.md, "Error codes") pass through as they are, so nothing
// the broker says is lost in translation; BrokerGone is the client
// libraries' own (the connection to the broker was lost).

class DaemonClientError extends Error {
  /**
   * @param {string} code a wire name, e.g. 'COMMAND_REJECTED'
   * @param {string} message for people
   * @param {{serverCode?: string, cause?: unknown}} [options]
   *   serverCode: the VOLT server's own code of a COMMAND_REJECTED;
   *   cause: the error underneath (a broker refusal under a
   *   SocketConnectionFailed, say)
   */
  constructor(code, message, options) {
    super(message, options && options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'DaemonClientError';
    this.code = String(code);
    if (options && options.serverCode !== undefined) this.serverCode = options.serverCode;
  }
}

module.exports = { DaemonClientError };
