// Unit tests of bridge.js with Node's test runner and a fake WebSocket:
// backoff bounds and reset, close-code policy, resume URLs, duplicates dropped,
// acks and their errors, token refresh, positions kept in storage.
import { test, mock } from "node:test";
import assert from "node:assert/strict";
import { Backoff, BridgeClient, Positions } from "../src/bridge.js";

class FakeSocket {
  static opened = [];
  constructor(url) {
    this.url = new URL(url);
    this.readyState = 1;
    this.sent = [];
    this.closedWith = null;
    FakeSocket.opened.push(this);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close(code) {
    this.closedWith = code;
  }
  // The server's side:
  frame(frame) {
    this.onmessage({ data: JSON.stringify(frame) });
  }
  serverClose(code) {
    this.readyState = 3;
    this.onclose({ code });
  }
}

function memoryStorage() {
  const items = new Map();
  return { getItem: (k) => items.get(k) ?? null, setItem: (k, v) => items.set(k, v), items };
}

function connected(overrides = {}) {
  return { type: "connected", connection_id: "c", user_id: "alice", server_time: "", heartbeat_interval: 30, last_seq: 0, read_seq: 0, unread: 0, ...overrides };
}

function message(seq, extra = {}) {
  return { type: "message", id: `m${seq}`, seq, event: "message", from: "ci_bot", to: "alice", data: { n: seq }, timestamp: "", mentions: [], ...extra };
}

async function flush() {
  await new Promise((resolve) => setImmediate(resolve));
}

function client(options = {}) {
  FakeSocket.opened = [];
  return new BridgeClient({ url: "ws://bridge.test/ws", userId: "alice", WebSocket: FakeSocket, storage: memoryStorage(), ...options });
}

test("backoff: full jitter within [min, min * 2^n] capped at max, reset after", () => {
  const highest = new Backoff({ minMs: 500, maxMs: 20_000, random: () => 1 });
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map(() => highest.next()), [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000]);
  highest.reset();
  assert.equal(highest.next(), 500);
  const lowest = new Backoff({ minMs: 500, maxMs: 20_000, random: () => 0 });
  assert.equal(lowest.next(), 500); // never below the minimum
  const middle = new Backoff({ minMs: 500, maxMs: 20_000, random: () => 0.5 });
  middle.next();
  middle.next();
  assert.equal(middle.next(), 1000); // half of 2,000
});

test("positions admit each (stream, seq) once and only forward", () => {
  const positions = new Positions();
  assert.equal(positions.admit("user", 1), true);
  assert.equal(positions.admit("user", 1), false);
  assert.equal(positions.admit("user", 0), false);
  assert.equal(positions.admit("topic:room:1", 1), true);
  assert.equal(positions.admit("user", null), true); // live-only
  assert.deepEqual(positions.toJSON(), { user: 1, "topic:room:1": 1 });
});

test("messages are handed over once; resume asks for what follows", async () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    const c = client();
    const seen = [];
    c.on("message", (m) => seen.push(m.seq));
    c.connect();
    await flush();
    const first = FakeSocket.opened[0];
    assert.equal(first.url.searchParams.get("last_seq"), null); // nothing seen yet
    first.frame(connected());
    first.frame(message(1));
    first.frame(message(2));
    first.frame(message(2)); // a duplicate
    first.serverClose(1006);
    mock.timers.tick(20_000);
    await flush();
    const second = FakeSocket.opened[1];
    assert.equal(second.url.searchParams.get("last_seq"), "2");
    second.frame(connected());
    second.frame(message(2)); // replayed again by the server: dropped
    second.frame(message(3));
    assert.deepEqual(seen, [1, 2, 3]);
    c.disconnect();
  } finally {
    mock.timers.reset();
  }
});

test("no reconnect after 4403 or 4400", async () => {
  for (const code of [4403, 4400]) {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const c = client();
      c.connect();
      await flush();
      FakeSocket.opened[0].serverClose(code);
      mock.timers.tick(60_000);
      await flush();
      assert.equal(FakeSocket.opened.length, 1, `reconnected after ${code}`);
      assert.equal(c.state, "disconnected");
    } finally {
      mock.timers.reset();
    }
  }
});

test("after 4401 only a new token reconnects", async () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    let token = "t1";
    const c = client({ token: () => token });
    c.connect();
    await flush();
    FakeSocket.opened[0].serverClose(4401);
    mock.timers.tick(20_000);
    await flush();
    assert.equal(FakeSocket.opened.length, 1); // the same token again: no retry
    assert.equal(c.state, "disconnected");

    token = "t2";
    const d = client({ token: () => token });
    d.connect();
    await flush();
    token = "t3";
    FakeSocket.opened[0].serverClose(4401);
    mock.timers.tick(20_000);
    await flush();
    assert.equal(FakeSocket.opened.length, 2);
    assert.equal(FakeSocket.opened[1].url.searchParams.get("token"), "t3");
    d.disconnect();
  } finally {
    mock.timers.reset();
  }
});

test("retry_after_ms from going_away is waited for", async () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    const c = client({ backoff: { random: () => 0 } });
    c.connect();
    await flush();
    const socket = FakeSocket.opened[0];
    socket.frame(connected());
    socket.frame({ type: "error", code: "going_away", message: "", retry_after_ms: 7000 });
    socket.serverClose(1001);
    mock.timers.tick(6999);
    await flush();
    assert.equal(FakeSocket.opened.length, 1);
    mock.timers.tick(1);
    await flush();
    assert.equal(FakeSocket.opened.length, 2);
    c.disconnect();
  } finally {
    mock.timers.reset();
  }
});

test("a silent connection is dead after heartbeat_interval + 10 s", async () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    const c = client({ backoff: { random: () => 0 } });
    c.connect();
    await flush();
    FakeSocket.opened[0].frame(connected({ heartbeat_interval: 30 }));
    mock.timers.tick(39_999);
    assert.equal(c.state, "connected");
    mock.timers.tick(1);
    assert.equal(c.state, "connecting");
    mock.timers.tick(500);
    await flush();
    assert.equal(FakeSocket.opened.length, 2);
    c.disconnect();
  } finally {
    mock.timers.reset();
  }
});

test("pings are answered; acks resolve and refusals reject", async () => {
  const c = client();
  c.connect();
  await flush();
  const socket = FakeSocket.opened[0];
  socket.frame(connected());
  socket.frame({ type: "ping", timestamp: "" });
  assert.deepEqual(socket.sent.at(-1), { type: "pong" });

  const sent = c.sendMessage("hi", { to: "ci_bot" });
  const frame = socket.sent.at(-1);
  assert.equal(frame.type, "message");
  socket.frame({ type: "ack", ref: frame.ref, id: "x", recipients: ["ci_bot"] });
  assert.equal((await sent).id, "x");

  const refused = c.sendMessage("hi", { to: "bob" });
  socket.frame({ type: "error", code: "forbidden", message: "no", ref: socket.sent.at(-1).ref });
  await assert.rejects(refused, (error) => error.code === "forbidden");
  c.disconnect();
});

test("topics resume with since, and streams end with an ack", async () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    const c = client();
    const inRoom = [];
    c.connect();
    await flush();
    let socket = FakeSocket.opened[0];
    socket.frame(connected());
    c.subscribe("room:1", (m) => inRoom.push(m.seq));
    assert.deepEqual(socket.sent.at(-1), { type: "subscribe", topic: "room:1" });
    socket.frame({ type: "subscribed", topic: "room:1", seq: 4, recovered: true });
    socket.frame(message(5, { topic: "room:1", to: null }));
    socket.serverClose(1006);
    mock.timers.tick(20_000);
    await flush();
    socket = FakeSocket.opened[1];
    socket.frame(connected());
    assert.deepEqual(socket.sent.at(-1), { type: "subscribe", topic: "room:1", since: 5 });
    socket.frame(message(5, { topic: "room:1", to: null })); // replayed: dropped
    socket.frame(message(6, { topic: "room:1", to: null }));
    assert.deepEqual(inRoom, [5, 6]);

    const reply = c.stream({ to: "alice", streamId: "s1" });
    reply.write("Hel");
    const done = reply.end("lo", { model: "m" });
    const [part, final] = socket.sent.slice(-2);
    assert.deepEqual(part, { type: "stream", stream_id: "s1", to: "alice", delta: "Hel" });
    assert.equal(final.final, true);
    assert.deepEqual(final.data, { model: "m" });
    socket.frame({ type: "ack", ref: final.ref, id: "m", recipients: ["alice"] });
    assert.equal((await done).id, "m");
    c.disconnect();
  } finally {
    mock.timers.reset();
  }
});

test("token_expiring asks the provider and sends refresh", async () => {
  let calls = 0;
  const c = client({ token: () => `t${++calls}` });
  c.connect();
  await flush();
  const socket = FakeSocket.opened[0];
  socket.frame(connected({ expires_at: "2026-12-03T10:00:00.000Z" }));
  socket.frame({ type: "token_expiring", expires_at: "2026-12-03T10:00:00.000Z" });
  await flush();
  assert.deepEqual(socket.sent.at(-1), { type: "refresh", token: "t2" });
  c.disconnect();
});

test("positions survive a reload through storage", async () => {
  const storage = memoryStorage();
  const first = client({ storage });
  first.connect();
  await flush();
  FakeSocket.opened[0].frame(connected());
  FakeSocket.opened[0].frame(message(9));
  first.disconnect();

  const again = client({ storage });
  again.connect();
  await flush();
  assert.equal(FakeSocket.opened[0].url.searchParams.get("last_seq"), "9");
  again.disconnect();
});

test("a handler that throws does not stop delivery", async () => {
  const c = client();
  const seen = [];
  const failures = [];
  c.on("message", () => {
    throw new Error("boom");
  });
  c.on("message", (m) => seen.push(m.seq));
  c.on("handler_error", (e) => failures.push(e.error.message));
  c.connect();
  await flush();
  const socket = FakeSocket.opened[0];
  socket.frame(connected());
  socket.frame(message(1));
  socket.frame(message(2));
  assert.deepEqual(seen, [1, 2]);
  assert.deepEqual(failures, ["boom", "boom"]);
  c.disconnect();
});
