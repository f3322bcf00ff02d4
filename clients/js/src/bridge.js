// Bridge browser and Node client (SPEC.md §2, §5, §8-§11). No dependencies.
//
//   import { BridgeClient } from "/static/bridge/bridge.js";
//   const client = new BridgeClient({ url: "wss://bridge.example/ws", token: () => fetchToken() });
//   client.on("message", (m) => console.log(m.from, m.data));
//   client.connect();
//
// What it takes care of: answering pings, reconnecting with exponential
// backoff and full jitter on the close codes SPEC §11 says to retry (and not
// on 4400/4403; on 4401 only with a new token), the server's retry_after_ms,
// a dead connection (no frame for heartbeat_interval + 10 s), resuming the
// personal stream with last_seq and every topic with since, never handing the
// application the same (stream, seq) twice, refreshing the token before it
// expires (§10), and in browsers reconnecting at once when the network comes
// back and keeping positions across a page reload (sessionStorage).

export const RETRY_CODES = new Set([1001, 1006, 1011, 1013, 4008, 4429]);
export const FATAL_CODES = new Set([4400, 4403]);
const TOKEN_EXPIRED = 4401;
const DEAD_AFTER_EXTRA_MS = 10_000;

/** Exponential backoff with full jitter: a delay uniform in [0, min(max, min * 2^attempt)]. */
export class Backoff {
  constructor({ minMs = 500, maxMs = 20_000, random = Math.random } = {}) {
    this.minMs = minMs;
    this.maxMs = maxMs;
    this.random = random;
    this.attempt = 0;
  }

  next() {
    const ceiling = Math.min(this.maxMs, this.minMs * 2 ** this.attempt);
    this.attempt += 1;
    return Math.max(this.minMs, Math.round(this.random() * ceiling));
  }

  reset() {
    this.attempt = 0;
  }
}

/** Per-stream positions: the last seq handed to the application. */
export class Positions {
  constructor(saved = {}) {
    this.seqs = new Map(Object.entries(saved));
  }

  /** True (and remembered) when `seq` is new for `stream`; false for a duplicate or an old one. */
  admit(stream, seq) {
    if (seq === null || seq === undefined) return true; // live-only: nothing to order
    const last = this.seqs.get(stream);
    if (last !== undefined && seq <= last) return false;
    this.seqs.set(stream, seq);
    return true;
  }

  get(stream) {
    return this.seqs.get(stream);
  }

  toJSON() {
    return Object.fromEntries(this.seqs);
  }
}

const PERSONAL = "user";

export class BridgeClient {
  /**
   * @param {object} options
   * @param {string} options.url  the /ws URL (ws:// or wss://)
   * @param {string} [options.userId]  open mode, or to check the token's user
   * @param {string|(() => string|Promise<string>)} [options.token]  a token, or a provider called on every (re)connect and refresh
   * @param {Function} [options.WebSocket]  a WebSocket implementation (Node < 22, tests)
   * @param {Storage|null} [options.storage]  where positions survive a reload (sessionStorage in browsers)
   * @param {number} [options.ackTimeoutMs]
   * @param {number} [options.stableAfterMs]  a connection this old resets the backoff
   */
  constructor(options) {
    this.options = { ackTimeoutMs: 10_000, stableAfterMs: 10_000, ...options };
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    this.backoff = new Backoff(options.backoff);
    this.storage = options.storage !== undefined ? options.storage : defaultStorage();
    this.storageKey = `bridge:${options.url}:${options.userId || ""}`;
    this.positions = new Positions(this._load());
    this.topics = new Map(); // topic -> {handler, subscribed}
    this.pendingAcks = new Map(); // ref -> {resolve, reject, timer}
    this.handlers = new Map();
    this.state = "disconnected";
    this.socket = null;
    this.nextRef = 1;
    this.stopped = true;
    this.timers = { reconnect: null, dead: null, stable: null, refresh: null };
    this.heartbeatMs = 30_000;
    this.expiresAt = null;
    this._onOnline = () => this._reconnectNow();
  }

  // --- events ------------------------------------------------------------------

  /** Listen to `state`, `connected`, `message`, `stream`, `signal`, `read`, `receipt`,
   *  `recall`, `subscribed`, `unsubscribed`, `join`, `leave`, `history_truncated`,
   *  `error`, `token_expiring`, `refreshed`, `closed`. Returns an unsubscribe function. */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(handler);
    return () => this.handlers.get(type).delete(handler);
  }

  _emit(type, payload) {
    for (const handler of this.handlers.get(type) || []) {
      try {
        handler(payload);
      } catch (error) {
        // An application handler that throws never stops the client.
        if (type !== "handler_error") this._emit("handler_error", { type, error });
      }
    }
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", state);
  }

  // --- connecting ---------------------------------------------------------------

  connect() {
    this.stopped = false;
    if (typeof globalThis.addEventListener === "function") {
      globalThis.addEventListener("online", this._onOnline);
    }
    this._open();
  }

  /** Close for good (no reconnect). */
  disconnect() {
    this.stopped = true;
    this._clearTimers();
    if (typeof globalThis.removeEventListener === "function") {
      globalThis.removeEventListener("online", this._onOnline);
    }
    if (this.socket) this.socket.close(1000);
    this._setState("disconnected");
  }

  async _open() {
    if (this.stopped) return;
    this._setState("connecting");
    let token = null;
    try {
      token = await this._token();
    } catch (error) {
      this._emit("error", { code: "token_provider", message: String(error) });
      this._scheduleReconnect();
      return;
    }
    if (this.refusedToken !== undefined && token === this.refusedToken) {
      // SPEC §11: after 4401, reconnect only with a new token.
      this.stopped = true;
      this._setState("disconnected");
      this._emit("error", { code: "token_expired", message: "the token provider gave the refused token again" });
      return;
    }
    this.refusedToken = undefined;
    this.currentToken = token;
    const url = new URL(this.options.url);
    if (this.options.userId) url.searchParams.set("user_id", this.options.userId);
    if (token) url.searchParams.set("token", token);
    const last = this.positions.get(PERSONAL);
    if (last !== undefined) url.searchParams.set("last_seq", String(last));
    const socket = new this.WebSocket(url.toString());
    this.socket = socket;
    socket.onmessage = (event) => this._onFrame(socket, event.data);
    socket.onclose = (event) => this._onClose(socket, event.code, event.reason);
    socket.onerror = () => {}; // onclose follows
  }

  async _token() {
    const { token } = this.options;
    if (typeof token === "function") return await token();
    return token || null;
  }

  _onClose(socket, code) {
    if (socket !== this.socket) return;
    this.socket = null;
    clearTimeout(this.timers.dead);
    clearTimeout(this.timers.stable);
    clearTimeout(this.timers.refresh);
    for (const [ref, pending] of this.pendingAcks) {
      clearTimeout(pending.timer);
      pending.reject(new Error(`connection closed (${code}) before the ack of ${ref}`));
    }
    this.pendingAcks.clear();
    this._emit("closed", { code });
    if (this.stopped) return;
    if (FATAL_CODES.has(code)) {
      this.stopped = true;
      this._setState("disconnected");
      return;
    }
    if (code === TOKEN_EXPIRED) {
      if (typeof this.options.token !== "function") {
        // A fixed token cannot be renewed: reconnecting would be refused again.
        this.stopped = true;
        this._setState("disconnected");
        return;
      }
      this.refusedToken = this.currentToken;
    }
    const hint = this.retryAfterMs || 0;
    this.retryAfterMs = 0;
    this._scheduleReconnect(hint);
  }

  _scheduleReconnect(atLeastMs = 0) {
    this._setState("connecting");
    clearTimeout(this.timers.reconnect);
    const delay = Math.max(this.backoff.next(), atLeastMs);
    this.timers.reconnect = setTimeout(() => this._open(), delay);
  }

  _reconnectNow() {
    if (this.stopped || this.state === "connected") return;
    clearTimeout(this.timers.reconnect);
    this._open();
  }

  _clearTimers() {
    for (const timer of Object.values(this.timers)) clearTimeout(timer);
  }

  _armDeadTimer() {
    clearTimeout(this.timers.dead);
    this.timers.dead = setTimeout(() => {
      // No frame (not even a ping) for too long: the connection is dead.
      if (this.socket) this.socket.close(4000);
      this._onClose(this.socket, 1006);
    }, this.heartbeatMs + DEAD_AFTER_EXTRA_MS);
  }

  // --- frames in -------------------------------------------------------------------

  _onFrame(socket, raw) {
    if (socket !== this.socket) return;
    this._armDeadTimer();
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    switch (frame.type) {
      case "connected":
        return this._onConnected(frame);
      case "ping":
        return this._send({ type: "pong" });
      case "message":
        return this._onMessage(frame);
      case "ack":
        return this._settleAck(frame.ref, frame, null);
      case "error":
        return this._onError(frame);
      case "subscribed":
        return this._onSubscribed(frame);
      case "unsubscribed":
        if (frame.reason !== "client") this.topics.delete(frame.topic);
        return this._emit("unsubscribed", frame);
      case "token_expiring":
        return this._refresh(frame);
      default:
        // stream, signal, read, receipt, recall, join, leave, history_truncated,
        // refreshed, pong: handed over as they are.
        return this._emit(frame.type, frame);
    }
  }

  _onConnected(frame) {
    this.heartbeatMs = (frame.heartbeat_interval || 30) * 1000;
    this.expiresAt = frame.expires_at || null;
    this._armDeadTimer();
    this._setState("connected");
    clearTimeout(this.timers.stable);
    this.timers.stable = setTimeout(() => this.backoff.reset(), this.options.stableAfterMs);
    this._emit("connected", frame);
    for (const [topic, entry] of this.topics) {
      entry.subscribed = false;
      this._subscribeFrame(topic);
    }
  }

  _onMessage(frame) {
    const stream = frame.topic && frame.to === null ? `topic:${frame.topic}` : PERSONAL;
    if (!this.positions.admit(stream, frame.seq)) return; // a duplicate
    this._save();
    if (frame.topic && frame.to === null) {
      const entry = this.topics.get(frame.topic);
      if (entry && entry.handler) {
        try {
          entry.handler(frame);
        } catch (error) {
          this._emit("handler_error", { type: "message", error });
        }
      }
    }
    this._emit("message", frame);
  }

  _onError(frame) {
    if (frame.ref && this.pendingAcks.has(frame.ref)) {
      return this._settleAck(frame.ref, null, frame);
    }
    if (frame.retry_after_ms && (frame.code === "going_away" || frame.code === "rate_limited")) {
      this.retryAfterMs = frame.retry_after_ms;
    }
    this._emit("error", frame);
  }

  _onSubscribed(frame) {
    const entry = this.topics.get(frame.topic);
    if (entry) entry.subscribed = true;
    const replaying = entry && entry.since !== undefined && entry.since !== null;
    if (this.positions.get(`topic:${frame.topic}`) === undefined && frame.seq !== null && !replaying) {
      this.positions.admit(`topic:${frame.topic}`, frame.seq);
      this._save();
    }
    this._emit("subscribed", frame);
  }

  async _refresh(frame) {
    this._emit("token_expiring", frame);
    if (typeof this.options.token !== "function") return;
    try {
      const token = await this.options.token();
      this._send({ type: "refresh", token });
    } catch (error) {
      this._emit("error", { code: "token_provider", message: String(error) });
    }
  }

  // --- frames out ------------------------------------------------------------------

  _send(frame) {
    if (!this.socket || this.socket.readyState !== 1) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  _withAck(frame) {
    const ref = frame.ref || `r${this.nextRef++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingAcks.delete(ref);
        reject(new Error(`no ack for ${ref} within ${this.options.ackTimeoutMs} ms`));
      }, this.options.ackTimeoutMs);
      this.pendingAcks.set(ref, { resolve, reject, timer });
      if (!this._send({ ...frame, ref })) {
        clearTimeout(timer);
        this.pendingAcks.delete(ref);
        reject(new Error("not connected"));
      }
    });
  }

  _settleAck(ref, ack, error) {
    const pending = this.pendingAcks.get(ref);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.pendingAcks.delete(ref);
    if (error) {
      const failure = new Error(error.message);
      failure.code = error.code;
      failure.retryAfterMs = error.retry_after_ms;
      pending.reject(failure);
    } else {
      pending.resolve(ack);
    }
  }

  /** A `message` frame (§2, §8): `{to}` a bot, or `{topic}`; resolves with the `ack`. */
  sendMessage(text, { to, topic, data } = {}) {
    const frame = { type: "message", text };
    if (to) frame.to = to;
    if (topic) frame.topic = topic;
    if (data) frame.data = data;
    return this._withAck(frame);
  }

  /** A live-only `signal` (§9), e.g. typing. No reply unless refused (an `error` event). */
  signal(event, { to, topic, data } = {}) {
    const frame = { type: "signal", event };
    if (to) frame.to = to;
    if (topic) frame.topic = topic;
    if (data) frame.data = data;
    return this._send(frame);
  }

  /** Mark read up to `seq` (§9), in the personal stream or a topic. */
  read(seq, { topic } = {}) {
    return this._send(topic ? { type: "read", topic, seq } : { type: "read", seq });
  }

  /** A message sent in parts (§9): `const s = client.stream({to: "alice"}); s.write("Hel"); await s.end()`. */
  stream({ to, topic, streamId } = {}) {
    const id = streamId || `s${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
    const target = to ? { to } : { topic };
    return {
      streamId: id,
      write: (delta) => this._send({ type: "stream", stream_id: id, ...target, delta }),
      end: (delta = "", data = undefined) => {
        const frame = { type: "stream", stream_id: id, ...target, delta, final: true };
        if (data) frame.data = data;
        return this._withAck(frame);
      },
    };
  }

  /** Subscribe to a topic (§8); recovers from the last seq seen after every reconnect.
   *  `since` (first subscription only): also replay the kept messages after it (0: all). */
  subscribe(topic, handler, { since } = {}) {
    this.topics.set(topic, { handler, subscribed: false, since });
    this._subscribeFrame(topic);
  }

  _subscribeFrame(topic) {
    const frame = { type: "subscribe", topic };
    const seen = this.positions.get(`topic:${topic}`);
    const entry = this.topics.get(topic);
    const since = seen !== undefined ? seen : entry && entry.since;
    if (since !== undefined && since !== null) frame.since = since;
    this._send(frame);
  }

  unsubscribe(topic) {
    this.topics.delete(topic);
    this._send({ type: "unsubscribe", topic });
  }

  // --- positions across reloads -------------------------------------------------------

  _load() {
    try {
      const saved = this.storage && this.storage.getItem(this.storageKey);
      return saved ? JSON.parse(saved) : {};
    } catch {
      return {};
    }
  }

  _save() {
    try {
      if (this.storage) this.storage.setItem(this.storageKey, JSON.stringify(this.positions));
    } catch {
      // Storage full or denied: positions still live in memory.
    }
  }
}

function defaultStorage() {
  try {
    return typeof sessionStorage === "undefined" ? null : sessionStorage;
  } catch {
    return null;
  }
}
