'use strict';
// getDaemonPassword() for a process the broker does not give the password
// to: a real broker, and a client process running as uid 65534 (nobody).
// connect() succeeds, the team cluster id is there, the password getter
// throws a clear PermissionDenied. Needs root to become another user (CI
// runs as root); it fails rather than pretends otherwise.

const test = require('node:test');
const assert = require('assert');
const childProcess = require('child_process');
const path = require('path');
const h = require('./helpers');

const NOBODY = 65534;
const PKG = path.resolve(__dirname, '..');

// The service, as nobody: connect, then say what the getters give.
const SCRIPT = `
const { ClusterDaemonClient } = require(${JSON.stringify(PKG)});
const c = new ClusterDaemonClient({
  serverUrl: 'x', controlSocketUrl: 'y',
  credentials: { teamClusterId: 'cluster-dev', daemonPassword: 'configured' },
  brokerSocket: process.env.SOCK,
});
c.connect().then(() => {
  const out = { uid: process.getuid(), ready: c.isReady(), team: c.getTeamClusterId() };
  try { out.password = c.getDaemonPassword(); } catch (e) { out.error = { name: e.name, code: e.code, message: e.message }; }
  process.stdout.write(JSON.stringify(out));
  c.disconnect();
}, (e) => { process.stdout.write(JSON.stringify({ connectError: e.message })); });
`;

test('as another user: connect() works, getDaemonPassword() throws PermissionDenied', async () => {
  assert.strictEqual(process.getuid(), 0, `this test must run as root (it switches to uid ${NOBODY})`);
  const server = await h.startDevServer();
  const broker = await h.startBroker(server, { broker: { mode: '0666' } });
  try {
    await broker.waitState('ready', 10000);
    const r = await new Promise((resolve) => {
      childProcess.execFile(process.execPath, ['-e', SCRIPT], {
        uid: NOBODY, gid: NOBODY, env: { ...process.env, SOCK: broker.sock }, timeout: h.slack(20000),
      }, (err, stdout, stderr) => resolve({ err, stdout, stderr }));
    });
    assert.ok(!r.err, `the child failed: ${r.err}\n${r.stderr}`);
    const out = JSON.parse(r.stdout);
    assert.strictEqual(out.uid, NOBODY);
    assert.strictEqual(out.ready, true, JSON.stringify(out));
    assert.strictEqual(out.team, 'cluster-dev');
    assert.strictEqual(out.password, undefined, 'no password for nobody');
    assert.strictEqual(out.error.name, 'DaemonClientError');
    assert.strictEqual(out.error.code, 'PermissionDenied');
    assert.match(out.error.message, /gives the daemon password only to root and its own user; this process runs as uid 65534/);
    await broker.waitLog('refused the daemon password', 5000);
  } finally {
    const code = await broker.stop();
    broker.cleanup();
    await server.stop();
    assert.strictEqual(code, 0, 'the broker exits cleanly');
  }
});
