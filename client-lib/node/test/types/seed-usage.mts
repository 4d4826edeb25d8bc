// Type-checked (tsc --noEmit, strict) by types.test.js, never run: the
// seed document's samples and declarations against index.d.ts. Each sample
// sits in a block of its own, as written in the seed but for the import
// line; what the seed leaves to the reader (payload, runPlugin, ...) is
// declared first.
import * as fs from 'fs';
import { ClusterDaemonClient, DaemonClientError } from '@volt/broker-client';
import type {
  ClusterDaemonClientOptions,
  DaemonCredentials,
  HeartbeatOptions,
  EnrollmentOptions,
  SocketOptions,
  DaemonMessage,
} from '@volt/broker-client';

declare const payload: unknown;
declare const analysisId: string;
declare const timestep: number;
declare function runPlugin(pluginId: string, params: unknown): Promise<unknown>;

// ---- the seed's declarations, as written there: ours must match them both ways

interface SeedDaemonCredentials {
  teamClusterId: string;
  daemonPassword: string;
  // Used during first-time enrollment
  enrollmentToken?: string;
}

interface SeedHeartbeatOptions {
  // Interval in ms (default: 30000)
  interval?: number;
}

interface SeedClusterDaemonClientOptions {
  // Base URL of the VOLT server
  serverUrl: string;
  // socket.io control namespace URL
  controlSocketUrl: string;
  // Authentication credentials
  credentials: SeedDaemonCredentials;
  // Optional: enrollment configuration
  enrollment?: EnrollmentOptions;
  // Optional: heartbeat configuration
  heartbeat?: SeedHeartbeatOptions;
  // Optional: socket.io options
  socket?: SocketOptions;
  // Optional: default command timeout in ms (default: 30000)
  commandTimeout?: number;
}

declare const seedOptions: SeedClusterDaemonClientOptions;
declare const ourOptions: ClusterDaemonClientOptions;
const toOurs: ClusterDaemonClientOptions = seedOptions;
const toSeed: SeedClusterDaemonClientOptions = ourOptions;
const creds: SeedDaemonCredentials = {} as DaemonCredentials;
const creds2: DaemonCredentials = {} as SeedDaemonCredentials;
const hb: SeedHeartbeatOptions = {} as HeartbeatOptions;
const hb2: HeartbeatOptions = {} as SeedHeartbeatOptions;
void [toOurs, toSeed, creds, creds2, hb, hb2];

// ---- the seed's samples

// Quick Start
{
const client = new ClusterDaemonClient({
  serverUrl: 'https://api.voltcloud.dev',
  controlSocketUrl: 'wss://api.voltcloud.dev/control',
  credentials: {
    teamClusterId: 'cluster-abc123',
    daemonPassword: 'password',
  },
});

await client.connect();

client.registerHandler('execute-plugin', async (payload) => {
  // Handle inbound command from server
  return { success: true };
});
}

declare const client: ClusterDaemonClient;

{
await client.connect();
}
{
client.disconnect();
}
{
if (client.isReady()) {
  await client.sendCommand('status');
}
}
{
// Send a command and wait for response
const result = await client.sendCommand('get-container-stats', {
  containerId: 'container-123',
});
}
{
// With custom timeout (ms)
const result = await client.sendCommand('long-operation', payload, 60000);
}
{
client.emit({
  type: 'exposure-snapshot',
  data: { analysisId, timestep, status: 'complete' },
});
}
{
client.registerHandler('execute-plugin', async (payload) => {
  const result = await runPlugin(payload.pluginId, payload.params);
  return result;
});

client.registerHandler('list-files', async (payload) => {
  return fs.readdirSync(payload.path);
});
}
{
client.unregisterHandler('execute-plugin');
}
{
client.onMessage((message) => {
  console.log(message.type, message.data);
});
}
{
client.onConnected(() => {
  console.log('Daemon connected and registered');
});
}
{
client.onDisconnected((reason) => {
  console.log('Disconnected:', reason);
});
}
{
client.onError((err) => {
  console.error(err.code, err.message);
});
}
{
try {
  await client.sendCommand('some-command');
} catch (err) {
  if (err instanceof DaemonClientError) {
    switch (err.code) {
      case 'COMMAND_TIMEOUT':
        // Handle timeout
        break;
      case 'SOCKET_NOT_READY':
        // Handle not connected
        break;
      case 'COMMAND_REJECTED':
        // Handle rejection
        break;
    }
  }
}
}

// ---- the signatures, exactly

type Equal<A, B> = (<G>() => G extends A ? 1 : 2) extends <G>() => G extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;
type C = ClusterDaemonClient;

export type Checks = [
  Expect<Equal<ReturnType<C['connect']>, Promise<void>>>,
  Expect<Equal<ReturnType<C['disconnect']>, void>>,
  Expect<Equal<ReturnType<C['isReady']>, boolean>>,
  Expect<Equal<ReturnType<C['getTeamClusterId']>, string>>,
  Expect<Equal<ReturnType<C['getDaemonPassword']>, string>>,
  Expect<Equal<ReturnType<C['emit']>, void>>,
  Expect<Equal<ReturnType<C['registerHandler']>, C>>,
  Expect<Equal<ReturnType<C['unregisterHandler']>, C>>,
  Expect<Equal<ReturnType<C['onMessage']>, C>>,
  Expect<Equal<ReturnType<C['onConnected']>, C>>,
  Expect<Equal<ReturnType<C['onDisconnected']>, C>>,
  Expect<Equal<ReturnType<C['onError']>, C>>,
  Expect<Equal<Parameters<C['sendCommand']>, [command: string, payload?: unknown, timeout?: number]>>,
  Expect<Equal<Parameters<C['onDisconnected']>[0], (reason: string) => void>>,
];

// sendCommand<T>: the caller's type, or undefined.
{
  const stats = await client.sendCommand<{ cpu: number }>('get-container-stats', { containerId: 'c-1' });
  const cpu: number | undefined = stats?.cpu;
  void cpu;
  // @ts-expect-error T | undefined is not T
  const sure: { cpu: number } = await client.sendCommand<{ cpu: number }>('x');
  void sure;
}

// Chaining, as the seed's `this` returns allow.
{
  const same: ClusterDaemonClient = client
    .registerHandler('a', async () => 1)
    .registerHandler('b', () => 'sync is fine too')
    .onMessage((m: DaemonMessage) => void m.type)
    .onConnected(() => undefined)
    .onError((e) => void e.serverCode);
  void same;
}

// Extensions.
{
  const c2 = new ClusterDaemonClient({ ...ourOptions, brokerSocket: '/run/volt/broker.sock', bigInt: true });
  c2.emit({ type: 't', data: Buffer.from('x') }, { volatile: true });
  const e = new DaemonClientError('PluginNotFound', 'no such plugin');
  const code: string = e.code;
  void code;
}

// What must not compile.
{
  // @ts-expect-error the command is a string
  void client.sendCommand(42);
  // @ts-expect-error options need the seed's required fields
  void new ClusterDaemonClient({ serverUrl: 'x' });
  // @ts-expect-error the getter is synchronous
  const p: Promise<string> = client.getDaemonPassword();
  void p;
  // @ts-expect-error a message needs a type
  client.emit({ data: 1 });
  // @ts-expect-error handlers are functions
  client.registerHandler('x', 'not a function');
}
