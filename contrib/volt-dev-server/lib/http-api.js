'use strict';
// Plain HTTP routes served beside socket.io: the enrollment endpoint of the
// contract, and the /_dev/ control API that tests and demos drive.

const crypto = require('crypto');
const { DISCONNECT_MODES } = require('./volt');

// Control requests may carry base64 binaries bigger than one socket.io
// packet, but a runaway client must not fill the heap.
const MAX_BODY = 64 * 1024 * 1024;
const MAX_WAIT_MS = 120 * 1000;

const STATUS_CODES = {
  400: 'BadRequest', 401: 'InvalidToken', 403: 'Forbidden', 404: 'NotFound',
  409: 'Conflict', 429: 'TooManyRequests', 500: 'InternalError',
  502: 'BadGateway', 503: 'ServiceUnavailable', 504: 'GatewayTimeout',
};

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isCount = (v) => Number.isInteger(v) && v >= 0;

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new HttpError(413, 'request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// Empty bodies are allowed on control routes ({}), since `curl -X POST` of
// /_dev/reset or /_dev/disconnect should just work.
async function readJson(req, { allowEmpty }) {
  const text = await readBody(req);
  if (allowEmpty && text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `bad JSON: ${e.message}`);
  }
}

function validEnrollStatus(s) {
  return s === 'hang' || s === 'close' || (Number.isInteger(s) && s >= 100 && s <= 599);
}

function createHandler({ state, volt, cfg }) {
  // ---- POST /api/daemon/enroll -------------------------------------------
  async function enroll(req, res) {
    let body;
    try {
      body = await readJson(req, { allowEmpty: false });
    } catch (e) {
      state.count('enrollmentsRefused');
      state.record('enroll', { status: e.status, error: e.message });
      return sendJson(res, e.status, { error: { code: 'BadRequest', message: e.message } });
    }
    const b = isObj(body) ? body : {};
    const ev = {
      teamClusterId: b.teamClusterId, hostname: b.hostname, version: b.version,
      passwordGiven: typeof b.daemonPassword === 'string',
    };

    // Scripted outcomes come first, so a test can get e.g. 503 then 200.
    const forced = state.nextEnrollStatus();
    if (forced === 'hang') {
      // Never answer: the client's own timeout has to fire. The connection
      // is destroyed at shutdown by closeAllConnections().
      state.record('enroll', { ...ev, forced, status: null });
      return undefined;
    }
    if (forced === 'close') {
      state.record('enroll', { ...ev, forced, status: null });
      req.socket.destroy();
      return undefined;
    }
    const okStatus = forced === 201 ? 201 : 200;
    if (forced !== null && forced !== 200 && forced !== 201) {
      state.count('enrollmentsRefused');
      state.record('enroll', { ...ev, forced, status: forced });
      const code = STATUS_CODES[forced] || 'DevServerForced';
      return sendJson(res, forced, {
        error: { code, message: `forced status ${forced} (dev server behavior)` },
      });
    }

    const refuse = (status, code, message) => {
      state.count('enrollmentsRefused');
      state.record('enroll', { ...ev, status, error: message });
      return sendJson(res, status, { error: { code, message } });
    };
    if (!isObj(body)) return refuse(400, 'BadRequest', 'body must be a JSON object');
    for (const f of ['hostname', 'version']) {
      if (typeof b[f] !== 'string' || !b[f]) return refuse(400, 'BadRequest', `${f} must be a non-empty string`);
    }
    if (typeof b.enrollmentToken !== 'string' || !state.tokens.has(b.enrollmentToken)) {
      return refuse(401, 'InvalidToken', 'enrollment token is unknown or already used');
    }
    if (b.teamClusterId !== state.credentials.teamClusterId) {
      return refuse(401, 'InvalidToken', 'teamClusterId does not match the token');
    }

    state.tokens.delete(b.enrollmentToken); // single use
    const rotated = cfg.rotate;
    if (rotated) state.credentials.daemonPassword = crypto.randomBytes(18).toString('base64url');
    state.count('enrollments');
    state.record('enroll', { ...ev, status: okStatus, rotated });
    return sendJson(res, okStatus, {
      teamClusterId: state.credentials.teamClusterId,
      daemonPassword: state.credentials.daemonPassword,
    });
  }

  // ---- /_dev/ control API ------------------------------------------------
  function getState() {
    return {
      connected: volt.list(),
      credentials: { teamClusterId: state.credentials.teamClusterId },
      counters: { ...state.counters },
      config: {
        pingInterval: cfg.pingInterval, pingTimeout: cfg.pingTimeout,
        maxPayload: cfg.maxPayload, namespace: cfg.namespace, path: cfg.path,
        tls: cfg.tls,
      },
      behavior: state.publicBehavior(),
      pendingServerRequests: volt.pending.size,
    };
  }

  async function getEvents(url) {
    const since = Number(url.searchParams.get('since') || 0);
    const wait = Math.min(Number(url.searchParams.get('wait') || 0), MAX_WAIT_MS);
    if (!Number.isFinite(since) || !Number.isFinite(wait)) throw new HttpError(400, 'since and wait must be numbers');
    const kindParam = url.searchParams.get('kind');
    const kinds = kindParam ? new Set(kindParam.split(',').map((s) => s.trim()).filter(Boolean)) : null;
    const events = await state.waitEvents(since, kinds, wait);
    return { events, lastSeq: state.seq };
  }

  async function postServerRequest(body) {
    const { command, payload, socketId } = body;
    const timeoutMs = body.timeoutMs === undefined ? 10000 : body.timeoutMs;
    if (typeof command !== 'string') throw new HttpError(400, 'command must be a string');
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new HttpError(400, 'timeoutMs must be a positive number');
    if (body.count !== undefined && !(Number.isInteger(body.count) && body.count >= 1 && body.count <= 10000)) {
      throw new HttpError(400, 'count must be an integer in 1..10000');
    }
    const target = volt.pickTarget(socketId);
    if (!target) return [409, { error: 'no daemon connected' }];

    if (body.count === undefined) {
      const r = await volt.serverRequest(target, command, payload, timeoutMs);
      if (r.timeout) return [504, { error: 'timeout', requestId: r.requestId, elapsedMs: r.elapsedMs }];
      if (r.shutdown) return [503, { error: 'server shutting down' }];
      return [200, { requestId: r.requestId, response: r.response, elapsedMs: r.elapsedMs }];
    }
    // Fired together (not one after another) to exercise the daemon's
    // concurrent dispatch; each result says whether it timed out.
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: body.count },
      () => volt.serverRequest(target, command, payload, timeoutMs)));
    return [200, {
      results,
      answered: results.filter((r) => r.response !== undefined).length,
      timedOut: results.filter((r) => r.timeout).length,
      elapsedMs: Date.now() - started,
    }];
  }

  function postBehavior(body) {
    const known = ['enrollStatuses', 'registerRefuse', 'registerSilent', 'registerHold', 'connectRefuse',
      'heartbeat', 'credentials', 'tokens', 'rotate'];
    const unknown = Object.keys(body).filter((k) => !known.includes(k));
    if (unknown.length) throw new HttpError(400, `unknown behavior keys: ${unknown.join(', ')}`);
    // Validate everything before changing anything, so a 400 leaves the
    // behaviour as it was.
    if (body.enrollStatuses !== undefined
        && !(Array.isArray(body.enrollStatuses) && body.enrollStatuses.every(validEnrollStatus))) {
      throw new HttpError(400, 'enrollStatuses must be an array of HTTP statuses, "hang" or "close"');
    }
    for (const k of ['registerRefuse', 'registerSilent', 'registerHold', 'connectRefuse']) {
      if (body[k] !== undefined && !isCount(body[k])) throw new HttpError(400, `${k} must be a non-negative integer`);
    }
    if (body.heartbeat !== undefined && !['ok', 'fail', 'never'].includes(body.heartbeat)) {
      throw new HttpError(400, 'heartbeat must be "ok", "fail" or "never"');
    }
    const c = body.credentials;
    if (c !== undefined && !(isObj(c)
        && ['teamClusterId', 'daemonPassword'].every((k) => c[k] === undefined || typeof c[k] === 'string'))) {
      throw new HttpError(400, 'credentials must be {teamClusterId?: string, daemonPassword?: string}');
    }
    if (body.tokens !== undefined && !(Array.isArray(body.tokens) && body.tokens.every((t) => typeof t === 'string'))) {
      throw new HttpError(400, 'tokens must be an array of strings');
    }
    if (body.rotate !== undefined && typeof body.rotate !== 'boolean') throw new HttpError(400, 'rotate must be a boolean');

    if (body.enrollStatuses !== undefined) state.behavior.enrollStatuses = [...body.enrollStatuses];
    for (const k of ['registerRefuse', 'registerSilent', 'registerHold', 'connectRefuse', 'heartbeat']) {
      if (body[k] !== undefined) state.behavior[k] = body[k];
    }
    if (c !== undefined) {
      if (c.teamClusterId !== undefined) state.credentials.teamClusterId = c.teamClusterId;
      if (c.daemonPassword !== undefined) state.credentials.daemonPassword = c.daemonPassword;
    }
    if (body.tokens !== undefined) state.tokens = new Set(body.tokens);
    if (body.rotate !== undefined) cfg.rotate = body.rotate;
    return state.publicBehavior();
  }

  async function route(req, res, url) {
    const p = url.pathname;
    const method = req.method;
    const need = (m) => {
      if (method !== m) throw new HttpError(405, `${p} takes ${m}`);
    };
    const json = () => readJson(req, { allowEmpty: true }).then((b) => {
      if (!isObj(b)) throw new HttpError(400, 'body must be a JSON object');
      return b;
    });

    if (p === '/api/daemon/enroll') { need('POST'); return enroll(req, res); }
    if (!p.startsWith('/_dev/')) throw new HttpError(404, 'not found');
    switch (p) {
      case '/_dev/state': need('GET'); return sendJson(res, 200, getState());
      case '/_dev/events': need('GET'); return sendJson(res, 200, await getEvents(url));
      case '/_dev/credentials':
        // The password is kept out of /_dev/state and the log; a test that
        // checks rotation or persistence asks for it here explicitly.
        need('GET');
        return sendJson(res, 200, { ...state.credentials, tokens: [...state.tokens] });
      case '/_dev/server-request': {
        need('POST');
        const [status, out] = await postServerRequest(await json());
        return sendJson(res, status, out);
      }
      case '/_dev/message': {
        need('POST');
        const b = await json();
        if (typeof b.type !== 'string') throw new HttpError(400, 'type must be a string');
        return sendJson(res, 200, { sent: volt.sendMessage(b.type, b.data) });
      }
      case '/_dev/emit': {
        need('POST');
        const b = await json();
        if (typeof b.event !== 'string') throw new HttpError(400, 'event must be a string');
        const args = b.args === undefined ? [] : b.args;
        if (!Array.isArray(args)) throw new HttpError(400, 'args must be an array');
        try {
          return sendJson(res, 200, { sent: volt.emitRaw(b.event, args) });
        } catch (e) {
          throw new HttpError(400, e.message); // reserved event names
        }
      }
      case '/_dev/disconnect': {
        need('POST');
        const b = await json();
        const mode = b.mode === undefined ? 'namespace' : b.mode;
        if (!DISCONNECT_MODES.includes(mode)) throw new HttpError(400, `mode must be one of ${DISCONNECT_MODES.join(', ')}`);
        return sendJson(res, 200, { disconnected: volt.disconnect(mode, b.socketId), mode });
      }
      case '/_dev/behavior': {
        if (method === 'GET') return sendJson(res, 200, state.publicBehavior());
        need('POST');
        return sendJson(res, 200, postBehavior(await json()));
      }
      case '/_dev/release-registrations':
        need('POST');
        await json();
        return sendJson(res, 200, { released: volt.releaseRegistrations() });
      case '/_dev/reset':
        need('POST');
        await json();
        state.reset();
        return sendJson(res, 200, { reset: true, lastSeq: state.seq });
      default:
        throw new HttpError(404, 'not found');
    }
  }

  return function handler(req, res) {
    const url = new URL(req.url, 'http://localhost');
    route(req, res, url).catch((e) => {
      if (res.headersSent || res.destroyed) return;
      const status = e instanceof HttpError ? e.status : 500;
      sendJson(res, status, { error: e.message });
    });
  };
}

module.exports = { createHandler };
