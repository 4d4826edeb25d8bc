// ES module entry: the same classes as index.js (one copy of each, so
// instanceof DaemonClientError holds whichever way it was imported).
import cjs from './index.js';

export const { ClusterDaemonClient, DaemonClientError, resolveSocketPath } = cjs;
export default cjs;
