// Types of @volt/broker-client: the signatures of
// @voltstack/daemon-cluster-client's ClusterDaemonClient, so that a
// TypeScript service changes its import line and nothing else. The
// extensions (brokerSocket, bigInt, emit's volatile, resolveSocketPath)
// are marked as such.

/** Authentication credentials (the broker holds the ones in force). */
export interface DaemonCredentials {
  teamClusterId: string;
  daemonPassword: string;
  /** Used during first-time enrollment */
  enrollmentToken?: string;
}

/** Enrollment configuration (the broker enrolls; accepted and not used here). */
export interface EnrollmentOptions {
  [option: string]: unknown;
}

export interface HeartbeatOptions {
  /** Interval in ms (default: 30000); the broker's heartbeat governs. */
  interval?: number;
}

/**
 * socket.io options. Here `timeout` is connect()'s deadline (default
 * 20000 ms), and the reconnection options pace reconnecting to the broker;
 * the broker's own configuration governs its upstream session.
 */
export interface SocketOptions {
  path?: string;
  reconnection?: boolean;
  reconnectionAttempts?: number;
  reconnectionDelay?: number;
  reconnectionDelayMax?: number;
  randomizationFactor?: number;
  timeout?: number;
  [option: string]: unknown;
}

export interface ClusterDaemonClientOptions {
  /** Base URL of the VOLT server */
  serverUrl: string;
  /** socket.io control namespace URL */
  controlSocketUrl: string;
  /** Authentication credentials; teamClusterId must be the broker's */
  credentials: DaemonCredentials;
  /** Optional: enrollment configuration */
  enrollment?: EnrollmentOptions;
  /** Optional: heartbeat configuration */
  heartbeat?: HeartbeatOptions;
  /** Optional: socket.io options */
  socket?: SocketOptions;
  /** Optional: default command timeout in ms (default: the broker's commandTimeout) */
  commandTimeout?: number;
  /**
   * Extension: the broker's socket. Default: $VOLT_BROKER_SOCKET, else the
   * per-user broker's socket if it exists, else /run/volt/broker.sock.
   */
  brokerSocket?: string;
  /**
   * Extension: integers beyond 2^53 in payloads arrive as BigInt (default:
   * numbers, as JSON would give them).
   */
  bigInt?: boolean;
}

/** A non-command message, both ways. */
export interface DaemonMessage {
  type: string;
  data?: any;
}

/** Extension: options of emit(). */
export interface EmitOptions {
  /** Fail with EmitFailed (onError) instead of keeping the message while not connected. */
  volatile?: boolean;
}

/**
 * An inbound command's handler: its result is the answer's data; a thrown
 * error or rejected promise reaches the server as HandlerError with its
 * message (a DaemonClientError's code is used as the code).
 */
export type CommandHandler = (payload: any) => unknown | Promise<unknown>;

export type DaemonClientErrorCode =
  | 'SOCKET_NOT_READY'
  | 'COMMAND_TIMEOUT'
  | 'COMMAND_REJECTED'
  | 'EnrollmentFailed'
  | 'SocketConnectionFailed'
  | 'SocketRegistrationFailed'
  | 'HandlerError'
  | 'EmitFailed'
  | 'HeartbeatFailed'
  | 'NoHandler'
  | 'HandlerTimeout'
  | 'PermissionDenied'
  | 'PayloadTooLarge'
  | 'LimitExceeded'
  | 'NotJson'
  | 'BadRequest'
  | 'BadFrame'
  | 'FrameTooLarge'
  | 'VersionMismatch'
  | 'ShuttingDown'
  | 'BrokerGone'
  | 'Timeout'
  | 'Internal'
  | (string & {});

export declare class DaemonClientError extends Error {
  readonly name: 'DaemonClientError';
  readonly code: DaemonClientErrorCode;
  /** The VOLT server's own code of a COMMAND_REJECTED. */
  readonly serverCode?: string;
  constructor(code: DaemonClientErrorCode, message: string, options?: { serverCode?: string; cause?: unknown });
}

export declare class ClusterDaemonClient {
  constructor(options: ClusterDaemonClientOptions);

  /** Resolves when the upstream session is ready and registered. */
  connect(): Promise<void>;
  disconnect(): void;
  isReady(): boolean;

  sendCommand<T = unknown>(command: string, payload?: unknown, timeout?: number): Promise<T | undefined>;
  emit(message: DaemonMessage, options?: EmitOptions): void;

  registerHandler(command: string, handler: CommandHandler): this;
  unregisterHandler(command: string): this;
  onMessage(callback: (message: DaemonMessage) => void): this;

  onConnected(callback: () => void): this;
  onDisconnected(callback: (reason: string) => void): this;
  onError(callback: (err: DaemonClientError) => void): this;

  getTeamClusterId(): string;
  /** Throws DaemonClientError PermissionDenied when the broker does not give it to this process. */
  getDaemonPassword(): string;
}

/** Extension: the broker socket a client would use (see brokerSocket). */
export declare function resolveSocketPath(explicit?: string, env?: Record<string, string | undefined>, uid?: number): string;
