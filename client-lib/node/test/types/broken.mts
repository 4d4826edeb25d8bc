// The control of types.test.js: tsc must reject this file, or the check
// of seed-usage.mts proves nothing.
import { ClusterDaemonClient } from '@volt/broker-client';

const client = new ClusterDaemonClient({ serverUrl: 'x', controlSocketUrl: 'y', credentials: { teamClusterId: 'a', daemonPassword: 'b' } });
const password: Promise<string> = client.getDaemonPassword();
export { password };
