/* The settings table (see config_table.h). Rows are in the order --help,
 * --print-config and the man page show them. */
#include "config_table.h"

#define OFF(field) offsetof(struct broker_config, field)

const struct setting config_settings[] = {
    /* ---- upstream: the TypeScript options ---- */
    {S_UPSTREAM, "serverUrl", "VOLT_SERVER_URL", "server-url", T_STR, OFF(server_url), NULL, NULL,
     false, "base URL of the VOLT server (enrollment)",
     "Base URL of the VOLT server, for enrollment; must start with http:// or https://. Required "
     "to enroll with an enrollment token."},
    {S_UPSTREAM, "controlSocketUrl", "VOLT_CONTROL_SOCKET_URL", "control-socket-url", T_STR,
     OFF(control_socket_url), NULL, NULL, false,
     "socket.io URL with the namespace, e.g. wss://host/control",
     "The socket.io URL with the namespace, e.g. wss://volt.example.com/control; ws://, wss://, "
     "http:// and https:// are accepted (http(s) means ws(s)). Without it the broker has no "
     "upstream."},
    {S_UPSTREAM, "credentials.teamClusterId", "VOLT_TEAM_CLUSTER_ID", "team-cluster-id", T_STR,
     OFF(team_cluster_id), NULL, NULL, false, "team cluster id",
     "The team cluster id. Required with controlSocketUrl. Stored credentials, and the answer of "
     "an enrollment, replace it."},
    {S_UPSTREAM, "credentials.daemonPassword", "VOLT_DAEMON_PASSWORD", NULL, T_SECRET,
     OFF(daemon_password), NULL, NULL, false, "daemon password (file or environment only)",
     "The daemon password. A secret: only in the file or the environment (the variable is wiped "
     "from the broker's environment once read). Set it, or daemonPasswordFile, or the systemd "
     "credential daemon-password, not two of them. Stored credentials replace it."},
    {S_UPSTREAM, "credentials.daemonPasswordFile", "VOLT_DAEMON_PASSWORD_FILE",
     "daemon-password-file", T_STR, OFF(daemon_password_file), NULL, NULL, false,
     "file holding the daemon password",
     "A file holding the daemon password (trailing newlines are removed). It is read when the "
     "configuration is loaded and must not be empty. When neither this nor daemonPassword is "
     "set, the systemd credential daemon-password ($CREDENTIALS_DIRECTORY/daemon-password, from "
     "LoadCredential=) is used when present and not empty."},
    {S_UPSTREAM, "credentials.enrollmentToken", "VOLT_ENROLLMENT_TOKEN", NULL, T_SECRET,
     OFF(enrollment_token), NULL, NULL, false,
     "one-time enrollment token (file or environment only)",
     "The one-time enrollment token. A secret: only in the file or the environment (wiped from "
     "the environment once read). Used only when no credentials are stored."},
    {S_UPSTREAM, "credentials.enrollmentTokenFile", "VOLT_ENROLLMENT_TOKEN_FILE",
     "enrollment-token-file", T_STR, OFF(enrollment_token_file), NULL, NULL, false,
     "file holding the enrollment token",
     "A file holding the enrollment token, read like daemonPasswordFile. When neither this nor "
     "enrollmentToken is set, the systemd credential enrollment-token is used when present."},
    {S_UPSTREAM, "hostname", "VOLT_HOSTNAME", "hostname", T_STR, OFF(hostname), NULL,
     "the system's host name", false, "host name announced to the server",
     "The host name announced to the server at enrollment and registration."},
    {S_UPSTREAM, "heartbeat.interval", "VOLT_HEARTBEAT_INTERVAL", "heartbeat-interval", T_U32,
     OFF(heartbeat_interval_ms), "30000", NULL, false, "heartbeat interval, ms",
     "Heartbeat interval while ready, in ms; must be above 0."},
    {S_UPSTREAM, "heartbeat.timeout", NULL, "heartbeat-timeout", T_U32, OFF(heartbeat_timeout_ms),
     "0", NULL, false, "how long a heartbeat may wait for its answer, ms (0: derived)",
     "How long one heartbeat may wait for the server's answer, in ms; three failed heartbeats in "
     "a row drop the session. 0 means the smaller of commandTimeout and heartbeat.interval."},
    {S_UPSTREAM, "commandTimeout", "VOLT_COMMAND_TIMEOUT", "command-timeout", T_U32,
     OFF(command_timeout_ms), "30000", NULL, true, "timeout of a request that gives none, ms",
     "The timeout of a request that gives none (the seed's default), in ms; announced to clients "
     "in welcome. It bounds nothing else: see broker.handlerTimeout, socket.registrationTimeout "
     "and heartbeat.timeout. Must be above 0."},
    {S_UPSTREAM, "socket.path", "VOLT_SOCKET_PATH", "socket-path", T_STR, OFF(engineio_path),
     "/socket.io/", NULL, false, "Engine.IO path on the server",
     "The Engine.IO path on the server."},
    {S_UPSTREAM, "socket.reconnection", NULL, "reconnection", T_BOOL, OFF(reconnection), "true",
     NULL, false, "reconnect after losing the session",
     "Reconnect after losing the session; when false, the first loss leaves the upstream failed."},
    {S_UPSTREAM, "socket.reconnectionAttempts", NULL, "reconnection-attempts", T_U32,
     OFF(reconnection_attempts), "0", NULL, false, "attempts before giving up (0 = forever)",
     "Attempts before giving up (the upstream is then failed); the count starts again after each "
     "successful registration. 0 means forever."},
    {S_UPSTREAM, "socket.reconnectionDelay", NULL, "reconnection-delay", T_U32,
     OFF(reconnection_delay_ms), "1000", NULL, false, "first reconnect delay, ms",
     "The first reconnection delay, before jitter, in ms; must be above 0."},
    {S_UPSTREAM, "socket.reconnectionDelayMax", NULL, "reconnection-delay-max", T_U32,
     OFF(reconnection_delay_max_ms), "5000", NULL, false, "largest reconnect delay, ms",
     "The largest reconnection delay, in ms; at least socket.reconnectionDelay."},
    {S_UPSTREAM, "socket.randomizationFactor", NULL, "randomization-factor", T_RATIO,
     OFF(randomization_factor), "0.5", NULL, false, "reconnect delay jitter, 0..1",
     "Jitter of the reconnection delay, a number from 0 (none) to 1."},
    {S_UPSTREAM, "socket.timeout", NULL, "connect-timeout", T_U32, OFF(connect_timeout_ms), "20000",
     NULL, false, "connection attempt timeout, ms",
     "How long one connection attempt may take, in ms: the WebSocket upgrade, the Engine.IO "
     "handshake and the namespace CONNECT together."},
    {S_UPSTREAM, "socket.registrationTimeout", NULL, "registration-timeout", T_U32,
     OFF(registration_timeout_ms), "0", NULL, false,
     "how long daemon:register may wait for its ack, ms (0: commandTimeout)",
     "How long the server's acknowledgement of daemon:register may take, in ms, before the "
     "attempt counts as SocketRegistrationFailed. 0 means commandTimeout."},
    {S_UPSTREAM, "socket.caFile", "VOLT_CA_FILE", "ca-file", T_STR, OFF(ca_file), NULL,
     "the system's trust store", false, "CA certificates (PEM) to verify the server with",
     "CA certificates (PEM) to verify the server with, instead of the system's."},
    {S_UPSTREAM, "socket.insecure", NULL, "insecure", T_BOOL, OFF(tls_insecure), "false", NULL,
     false, "DEVELOPMENT ONLY: do not verify the server's certificate",
     "DEVELOPMENT ONLY: do not verify the certificate of a wss:// server. Logged as a warning."},

    /* ---- the broker's own ---- */
    {S_BROKER, "broker.listen", "VOLT_LISTEN", "listen", T_STR, OFF(listen_path), NULL,
     "/run/volt/broker.sock for root; otherwise $XDG_RUNTIME_DIR/volt/broker.sock, or "
     "/tmp/volt-UID/broker.sock without XDG_RUNTIME_DIR",
     false, "local socket path",
     "The local socket; an absolute path of at most 107 bytes. Missing parent directories are "
     "created (mode 0755); the directory must belong to the broker's user or root and must not "
     "be writable by others. A lock file, PATH.lock, keeps a second broker off a live one's "
     "socket; a socket left by a dead broker is replaced, any other file at PATH is an error. "
     "Ignored under socket activation."},
    {S_BROKER, "broker.mode", NULL, "mode", T_MODE, OFF(listen_mode), "0660", NULL, false,
     "local socket file mode (octal)",
     "The local socket's file mode, in octal (in the file preferably a string, \"0660\"). "
     "Ignored under socket activation."},
    {S_BROKER, "broker.group", NULL, "group", T_STR, OFF(listen_group), NULL,
     "the broker's own group", false, "local socket group",
     "The group the local socket is given; the group must exist. Ignored under socket "
     "activation."},
    {S_BROKER, "broker.allowedUids", NULL, "allowed-uids", T_UIDS, OFF(allowed_uids), NULL, "empty",
     true, "users allowed to connect (empty: anyone the file mode lets in)",
     "Who may use the broker, checked at accept against the peer's credentials: user ids or "
     "names (at most 32; an array in the file, comma-separated elsewhere). When both lists are "
     "empty, anyone the socket's mode and group let in may. Otherwise only root, the broker's "
     "own user, the listed users and members of the listed groups; others get PermissionDenied "
     "and are disconnected."},
    {S_BROKER, "broker.allowedGids", NULL, "allowed-gids", T_GIDS, OFF(allowed_gids), NULL, "empty",
     true, "groups allowed to connect",
     "Groups whose members may use the broker (ids or names, at most 32). A peer's primary "
     "group and its supplementary groups both count (SO_PEERGROUPS)."},
    {S_BROKER, "broker.passwordReaders", NULL, "password-readers", T_UIDS, OFF(password_readers),
     NULL, "empty", true, "users besides root and the broker's own who may read the password",
     "Users (ids or names) who may read the daemon password with the credential operation, "
     "besides root and the broker's own user, who always may. Others get PermissionDenied."},
    {S_BROKER, "broker.stateDir", "VOLT_STATE_DIR", "state-dir", T_STR, OFF(state_dir), NULL,
     "/var/lib/volt-broker for root; otherwise $XDG_STATE_HOME/volt-broker, else "
     "$HOME/.local/state/volt-broker, else /tmp/volt-UID/state",
     false, "where enrolled credentials and the last handler list are kept",
     "Where enrolled credentials (credentials.json) and the handlers registered at the last "
     "graceful stop (handlers.json, see broker.announceDelay) are kept. The directory must "
     "belong to the broker's user or root and must not be accessible by others (created "
     "0700)."},
    {S_BROKER, "broker.logLevel", "VOLT_LOG_LEVEL", "log-level", T_LOGLEVEL, OFF(log_level), "info",
     NULL, true, "error, warn, info or debug", "error, warn, info or debug."},
    {S_BROKER, "broker.logFormat", "VOLT_LOG_FORMAT", "log-format", T_LOGFORMAT, OFF(log_format),
     "text", NULL, true, "text (one line per event) or json (one JSON object per line)",
     "text: one line per event, with a journald priority prefix when stderr is the journal. "
     "json: one JSON object per line (time, level, message and the event's fields), for log "
     "pipelines."},
    {S_BROKER, "broker.drainTimeout", NULL, "drain-timeout", T_U32, OFF(drain_timeout_ms), "5000",
     NULL, true, "on stop, how long to wait for in-flight handlers, ms",
     "On stop, how long local handlers may take to answer the commands from the server they are "
     "working on, in ms; 0 does not wait."},
    {S_BROKER, "broker.handlerTimeout", NULL, "handler-timeout", T_U32, OFF(handler_timeout_ms),
     "0", NULL, true, "how long a local handler has to reply, ms (0: commandTimeout)",
     "How long a local handler has to reply to a command from the server, in ms, before the "
     "broker answers HandlerTimeout for it. 0 means commandTimeout."},
    {S_BROKER, "broker.announceDelay", NULL, "announce-delay", T_U32, OFF(announce_delay_ms),
     "2000", NULL, false, "after start, the longest hold of the first registration, ms",
     "After the broker starts, how long at most the first daemon:register is held back, in ms, "
     "so that the services that were connected before a restart can register their handlers "
     "again first: a command arriving meanwhile would otherwise get NoHandler. A graceful stop "
     "keeps the registered command names in handlers.json in broker.stateDir; the next start "
     "holds until all of them are registered again (no hold when there were none, nor on a "
     "first start, when there is no such file). After a crash, or when the file cannot be "
     "used, the names are unknown: the hold then ends once no client has connected or "
     "registered for a tenth of it. Reconnections never wait. 0 registers at once."},
    {S_BROKER, "broker.metrics.textfile", "VOLT_METRICS_TEXTFILE", "metrics-textfile", T_STR,
     OFF(metrics_textfile), NULL, NULL, true,
     "write the metrics there (node_exporter textfile collector)",
     "A file to write the metrics to (the OpenMetrics text of volt-inspect metrics), replaced "
     "atomically every broker.metrics.interval, for node_exporter's textfile collector; its name "
     "must end in .prom."},
    {S_BROKER, "broker.metrics.interval", NULL, "metrics-interval", T_U32, OFF(metrics_interval_ms),
     "15000", NULL, true, "how often the metrics textfile is written, ms",
     "How often the metrics textfile is written, in ms."},

    /* ---- broker.limits ---- */
    {S_LIMITS, "broker.limits.maxClients", NULL, "max-clients", T_U32, OFF(max_clients), "1024",
     NULL, true, "local clients at once",
     "Local clients at once; a client over it gets LimitExceeded and is disconnected. Each "
     "client is an open file: at start the broker raises its soft RLIMIT_NOFILE to maxClients + "
     "64 when it is lower, and when the hard limit does not allow that it says so and serves as "
     "many clients as fit."},
    {S_LIMITS, "broker.limits.reservedClients", NULL, "reserved-clients", T_U32,
     OFF(reserved_clients), "8", NULL, true,
     "of maxClients, slots only root and the broker's user get",
     "Of maxClients, the slots kept for root and the broker's own user, so that status and "
     "monitor always get in (at most half of maxClients)."},
    {S_LIMITS, "broker.limits.maxClientsPerUid", NULL, "max-clients-per-uid", T_U32,
     OFF(max_clients_per_uid), "256", NULL, true, "connections of one user at once",
     "Connections one user may hold at once."},
    {S_LIMITS, "broker.limits.helloTimeout", NULL, "hello-timeout", T_U32, OFF(hello_timeout_ms),
     "5000", NULL, true, "time a new connection has to say hello, ms",
     "How long a new connection has to complete hello, in ms; then it is closed."},
    {S_LIMITS, "broker.limits.maxHandlersPerClient", NULL, "max-handlers-per-client", T_U32,
     OFF(max_handlers_per_client), "1024", NULL, true, "commands one client may register",
     "Commands one client may register. Whatever the limits, the handler list of all clients "
     "must fit in one packet within the server's maxPayload: a registration that would not fit "
     "is refused."},
    {S_LIMITS, "broker.limits.maxSubscriptionsPerClient", NULL, "max-subscriptions-per-client",
     T_U32, OFF(max_subscriptions_per_client), "256", NULL, true, "subscriptions of one client",
     "Subscriptions of one client."},
    {S_LIMITS, "broker.limits.maxInFlightPerClient", NULL, "max-in-flight-per-client", T_U32,
     OFF(max_in_flight_per_client), "10000", NULL, true, "requests one client may have waiting",
     "Requests one client may have waiting for the server."},
    {S_LIMITS, "broker.limits.maxInFlightPerUid", NULL, "max-in-flight-per-uid", T_U32,
     OFF(max_in_flight_per_uid), "50000", NULL, true, "requests one user may have waiting",
     "Requests the clients of one user may have waiting for the server, together."},
    {S_LIMITS, "broker.limits.maxPending", NULL, "max-pending", T_U32, OFF(max_pending), "200000",
     NULL, false, "requests waiting upstream, all clients together",
     "Requests waiting for the server, all clients together."},
    {S_LIMITS, "broker.limits.maxCommandTimeout", NULL, "max-command-timeout", T_U32,
     OFF(max_command_timeout_ms), "600000", NULL, true,
     "largest timeout a request may ask for, ms (more is lowered)",
     "The largest timeout a request may ask for, in ms; a longer one is lowered to it, so that "
     "no request holds a slot for longer. At least commandTimeout."},
    {S_LIMITS, "broker.limits.maxQueueBytes", NULL, "max-queue-bytes", T_U32, OFF(max_queue_bytes),
     "67108864", NULL, true, "bytes queued to one client; more: it is closed as slow",
     "Bytes queued to one client that does not read them; a client that falls this far behind "
     "is disconnected and counted as a slow consumer. At least maxFrame. Applies to clients that "
     "connect after a reload."},
    {S_LIMITS, "broker.limits.maxBytesPerUid", NULL, "max-bytes-per-uid", T_U32,
     OFF(max_bytes_per_uid), "134217728", NULL, true, "bytes held for one user's clients",
     "Bytes the broker holds for the clients of one user together (read buffers, outbound "
     "queues, kept emits); over it, that user's client holding the most is disconnected."},
    {S_LIMITS, "broker.limits.memoryBudget", NULL, "memory-budget", T_U32, OFF(memory_budget),
     "268435456", NULL, true, "bytes held for all clients together",
     "Bytes the broker holds for all clients together (read buffers, outbound queues, kept "
     "emits); when the total would go over it, the client holding the most is disconnected "
     "first. At least maxFrame."},
    {S_LIMITS, "broker.limits.maxFrame", NULL, "max-frame", T_U32, OFF(max_frame), "16777216", NULL,
     false, "largest local frame, bytes",
     "The largest local frame, in bytes, announced to clients in welcome; from 1024 to "
     "268435456. A larger frame is FrameTooLarge and ends the connection."},
    {S_LIMITS, "broker.limits.frameTimeout", NULL, "frame-timeout", T_U32, OFF(frame_timeout_ms),
     "10000", NULL, true, "time a frame has to arrive whole after its first byte, ms",
     "How long a frame may take to arrive whole after its first byte, in ms; a client that "
     "stalls part-way through a frame is disconnected, so that it cannot hold a read buffer "
     "forever."},
    {S_LIMITS, "broker.limits.maxUpstreamQueueBytes", NULL, "max-upstream-queue-bytes", T_U32,
     OFF(max_upstream_queue_bytes), "16777216", NULL, false,
     "bytes waiting to be written to the server",
     "Bytes waiting to be written to the server. A packet that does not fit is refused whole (a "
     "request gets SOCKET_NOT_READY, an emit EmitFailed) and the session goes on; answers to the "
     "server's requests may go a quarter beyond it."},
    {S_LIMITS, "broker.limits.maxEmitBuffer", NULL, "max-emit-buffer", T_U32, OFF(max_emit_buffer),
     "1048576", NULL, false, "bytes of emits kept while the upstream is not ready",
     "Bytes of emits kept while the upstream is not ready, sent in order once it is registered "
     "again; an emit that does not fit fails with EmitFailed. 0 keeps none (every emit while "
     "not ready fails)."},
};

const size_t config_n_settings = sizeof(config_settings) / sizeof(config_settings[0]);
