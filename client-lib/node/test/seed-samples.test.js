'use strict';
// Every code sample of the seed document (shared/seed/daemon-cluster-client
// .txt, the documentation of @voltstack/daemon-cluster-client) runs here
// unchanged but for its import line, against a real broker and the real
// dev server, which accepts the samples' own credentials (cluster-abc123 /
// password). What a sample does is then checked at the server.
//
// A sample that declares its client (the Quick Start) runs as a module of
// its own in a child process, exactly as a service file would. The others
// are fragments of a service: they use `client` (and `payload`, `fs`,
// `runPlugin`, ... where the seed leaves those to the reader); they run as
// the body of a module function given those names, with `console` one we
// can read. The type declarations of the seed (options, credentials) are
// checked by tsc in types.test.js.

const test = require('node:test');
const assert = require('assert');
const childProcess = require('child_process');
const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');
const { ClusterDaemonClient } = require('..');
const h = require('./helpers');

const SEED_IMPORT = "from '@voltstack/daemon-cluster-client';";
const OUR_IMPORT = "from '@volt/broker-client';";

// The samples, verbatim, in the order of the document.
const SAMPLES = {
  quickStart: `import { ClusterDaemonClient } from '@voltstack/daemon-cluster-client';

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
});`,
  connect: 'await client.connect();',
  disconnect: 'client.disconnect();',
  isReady: `if (client.isReady()) {
  await client.sendCommand('status');
}`,
  sendCommand: `// Send a command and wait for response
const result = await client.sendCommand('get-container-stats', {
  containerId: 'container-123',
});`,
  sendCommandTimeout: `// With custom timeout (ms)
const result = await client.sendCommand('long-operation', payload, 60000);`,
  emit: `client.emit({
  type: 'exposure-snapshot',
  data: { analysisId, timestep, status: 'complete' },
});`,
  registerHandler: `client.registerHandler('execute-plugin', async (payload) => {
  const result = await runPlugin(payload.pluginId, payload.params);
  return result;
});

client.registerHandler('list-files', async (payload) => {
  return fs.readdirSync(payload.path);
});`,
  unregisterHandler: "client.unregisterHandler('execute-plugin');",
  onMessage: `client.onMessage((message) => {
  console.log(message.type, message.data);
});`,
  onConnected: `client.onConnected(() => {
  console.log('Daemon connected and registered');
});`,
  onDisconnected: `client.onDisconnected((reason) => {
  console.log('Disconnected:', reason);
});`,
  onError: `client.onError((err) => {
  console.error(err.code, err.message);
});`,
  errorHandling: `import { DaemonClientError } from '@voltstack/daemon-cluster-client';

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
}`,
};

const unhandled = h.trackUnhandled();
let server;
let broker;
let work; // temp dir: the sample modules, and node_modules/@volt/broker-client
const clients = [];

test.before(async () => {
  server = await h.startDevServer(['--cluster', 'cluster-abc123', '--password', 'password']);
  broker = await h.startBroker(server, { credentials: { teamClusterId: 'cluster-abc123', daemonPassword: 'password' } });
  await broker.waitState('ready', 10000);
  work = h.tempDir('seed');
  // What `npm install @volt/broker-client` gives a service.
  fs.mkdirSync(path.join(work, 'node_modules', '@volt'), { recursive: true });
  fs.symlinkSync(path.resolve(__dirname, '..'), path.join(work, 'node_modules', '@volt', 'broker-client'));
});

test.after(async () => {
  for (const c of clients) c.disconnect();
  try {
    if (broker) assert.strictEqual(await broker.stop(), 0, 'the broker exits cleanly');
  } finally {
    if (broker) broker.cleanup();
    if (server) await server.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  }
  unhandled.assertNone();
});

/** The sample with its one change: the import line. */
function migrated(name) {
  const text = SAMPLES[name];
  return text.split(SEED_IMPORT).join(OUR_IMPORT);
}

/** A console whose output the test reads. */
function recordingConsole() {
  const lines = [];
  return {
    lines,
    log: (...args) => lines.push(['log', ...args]),
    error: (...args) => lines.push(['error', ...args]),
  };
}

/**
 * Runs a fragment sample as the body of an async function of `names`,
 * with the values in `scope`. Its import line, if any, stays at the top.
 */
async function runFragment(name, scope) {
  const text = migrated(name);
  const lines = text.split('\n');
  const imports = lines.filter((l) => l.startsWith('import '));
  const body = lines.filter((l) => !l.startsWith('import ')).join('\n');
  const names = Object.keys(scope);
  const file = path.join(work, `${name}.mjs`);
  fs.writeFileSync(file, `${imports.join('\n')}\nexport default async function (${names.join(', ')}) {\n${body}\n}\n`);
  const mod = await import(pathToFileURL(file).href);
  return mod.default(...names.map((n) => scope[n]));
}

function newClient() {
  const c = new ClusterDaemonClient({
    serverUrl: 'https://api.voltcloud.dev',
    controlSocketUrl: 'wss://api.voltcloud.dev/control',
    credentials: { teamClusterId: 'cluster-abc123', daemonPassword: 'password' },
    brokerSocket: broker.sock,
  });
  clients.push(c);
  return c;
}

async function connectedClient() {
  const c = newClient();
  await h.within(c.connect(), h.slack(10000), 'connect()');
  return c;
}

async function registered(command, present = true) {
  await h.waitFor(async () => {
    const st = await server.state();
    const d = st.connected.find((x) => x.registered);
    return d && d.handlers.includes(command) === present;
  }, h.slack(5000), `"${command}" ${present ? '' : 'no longer '}in the handler list at the server`);
}

test('the samples are the seed\'s own text', (t) => {
  const candidates = [path.join(h.TOP, '../shared/seed/daemon-cluster-client.txt'), path.join(h.TOP, '../../shared/seed/daemon-cluster-client.txt')];
  const doc = candidates.find((p) => fs.existsSync(p));
  if (!doc) {
    t.skip('the seed document is not beside this checkout (shared/seed/)');
    return;
  }
  const text = fs.readFileSync(doc, 'utf8');
  for (const [name, sample] of Object.entries(SAMPLES)) {
    assert.ok(text.includes(sample), `sample ${name} is not verbatim in ${doc}`);
  }
});

test('Quick Start: a service file, run as it is but for its import', async () => {
  const file = path.join(work, 'quick-start.mjs');
  fs.writeFileSync(file, `${migrated('quickStart')}\n`);
  assert.ok(fs.readFileSync(file, 'utf8').includes("import { ClusterDaemonClient } from '@volt/broker-client';"));
  const child = childProcess.spawn(process.execPath, [file], {
    env: { ...process.env, VOLT_BROKER_SOCKET: broker.sock },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((r) => child.on('exit', (code, sig) => r({ code, sig })));
  try {
    await registered('execute-plugin');
    const r = await server.serverRequest('execute-plugin', { pluginId: 'p-1' });
    assert.deepStrictEqual(r.data, { success: true });
    assert.strictEqual(r.success, true);
  } finally {
    child.kill('SIGTERM');
    const { sig } = await exited;
    assert.strictEqual(sig, 'SIGTERM', `the service ran until stopped: ${stderr}`);
  }
  assert.strictEqual(stderr, '');
});

test('connect(), isReady() and sendCommand(\'status\'), disconnect()', async () => {
  const client = newClient();
  await runFragment('connect', { client });
  assert.strictEqual(client.isReady(), true);
  const since = await server.lastSeq();
  await runFragment('isReady', { client });
  await server.waitEvent('request', (e) => e.command === 'status', h.slack(5000), since);
  await runFragment('disconnect', { client });
  assert.strictEqual(client.isReady(), false);
});

test('sendCommand samples: the requests reach the server, its answers come back', async () => {
  const client = await connectedClient();
  const since = await server.lastSeq();
  // The dev server knows neither command: COMMAND_REJECTED with its code is
  // its answer, carried back exactly as the seed's client would.
  let e = await h.rejection(runFragment('sendCommand', { client }), h.slack(5000), 'get-container-stats');
  assert.strictEqual(e.code, 'COMMAND_REJECTED');
  assert.strictEqual(e.serverCode, 'UnknownCommand');
  const ev = await server.waitEvent('request', (x) => x.command === 'get-container-stats', h.slack(5000), since);
  assert.deepStrictEqual(ev.payload, { containerId: 'container-123' });
  const payload = { job: 'reindex', blob: Buffer.from([1, 2]) };
  e = await h.rejection(runFragment('sendCommandTimeout', { client, payload }), h.slack(5000), 'long-operation');
  assert.strictEqual(e.code, 'COMMAND_REJECTED');
  const ev2 = await server.waitEvent('request', (x) => x.command === 'long-operation', h.slack(5000), since);
  assert.deepStrictEqual(ev2.payload, { job: 'reindex', blob: { $bin: 'AQI=' } });
});

test('emit sample: the message reaches the server', async () => {
  const client = await connectedClient();
  const since = await server.lastSeq();
  await runFragment('emit', { client, analysisId: 'analysis-7', timestep: 42 });
  const ev = await server.waitEvent('message_in', (x) => x.type === 'exposure-snapshot', h.slack(5000), since);
  assert.deepStrictEqual(ev.data, { analysisId: 'analysis-7', timestep: 42, status: 'complete' });
});

test('registerHandler and unregisterHandler samples: the server\'s requests are answered', async () => {
  const client = await connectedClient();
  const dir = h.tempDir('files');
  fs.writeFileSync(path.join(dir, 'a.txt'), 'a');
  fs.writeFileSync(path.join(dir, 'b.txt'), 'b');
  const runPlugin = async (pluginId, params) => ({ ran: pluginId, params });
  try {
    await runFragment('registerHandler', { client, runPlugin, fs });
    await registered('list-files');
    let r = await server.serverRequest('execute-plugin', { pluginId: 'p-9', params: { depth: 2 } });
    assert.deepStrictEqual(r.data, { ran: 'p-9', params: { depth: 2 } });
    r = await server.serverRequest('list-files', { path: dir });
    assert.deepStrictEqual(r.data.sort(), ['a.txt', 'b.txt']);
    // A directory that is not there: the handler throws, the server hears why.
    r = await server.serverRequest('list-files', { path: path.join(dir, 'missing') });
    assert.strictEqual(r.success, false);
    assert.strictEqual(r.error.code, 'HandlerError');
    assert.match(r.error.message, /ENOENT/);
    await runFragment('unregisterHandler', { client });
    await registered('execute-plugin', false);
    r = await server.serverRequest('execute-plugin', { pluginId: 'p-9' });
    assert.strictEqual(r.error.code, 'NoHandler');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('event listener samples: onMessage, onConnected, onDisconnected, onError', async () => {
  const client = newClient();
  const out = recordingConsole();
  for (const name of ['onMessage', 'onConnected', 'onDisconnected', 'onError']) {
    await runFragment(name, { client, console: out });
  }
  await h.within(client.connect(), h.slack(10000), 'connect()');
  assert.deepStrictEqual(out.lines, [['log', 'Daemon connected and registered']]);
  await h.waitFor(async () => (await broker.status()).clients.some((x) => x.subscriptions.length > 0), h.slack(5000), 'the subscription');
  await server.post('/_dev/message', { type: 'session.input', data: { keys: 'ls\n' } });
  await h.waitFor(() => out.lines.length === 2, h.slack(5000), 'the message');
  assert.deepStrictEqual(out.lines[1], ['log', 'session.input', { keys: 'ls\n' }]);
  client.emit({ type: '' });
  await h.waitFor(() => out.lines.length === 3, 2000, 'the error');
  assert.deepStrictEqual(out.lines[2].slice(0, 2), ['error', 'EmitFailed']);
  await server.post('/_dev/disconnect', { mode: 'transport' });
  await h.waitFor(() => out.lines.some((l) => l[1] === 'Disconnected:'), h.slack(5000), 'onDisconnected');
  const d = out.lines.find((l) => l[1] === 'Disconnected:');
  assert.strictEqual(typeof d[2], 'string');
  await h.waitFor(() => out.lines.filter((l) => l[1] === 'Daemon connected and registered').length === 2, h.slack(15000), 'onConnected again');
});

test('error handling sample: DaemonClientError from the package, its codes', async () => {
  const client = await connectedClient();
  const since = await server.lastSeq();
  await runFragment('errorHandling', { client });
  await server.waitEvent('request', (x) => x.command === 'some-command', h.slack(5000), since);
  // The same sample when the client is not ready takes the SOCKET_NOT_READY branch.
  client.disconnect();
  await runFragment('errorHandling', { client });
  // Whichever way it is imported, it is the class the client throws.
  const viaImport = await import(pathToFileURL(path.join(work, 'node_modules/@volt/broker-client/index.mjs')).href);
  assert.strictEqual(viaImport.DaemonClientError, require('..').DaemonClientError);
  const e = await h.rejection(client.sendCommand('x'), 1000, 'send when not connected');
  assert.ok(e instanceof viaImport.DaemonClientError);
});
