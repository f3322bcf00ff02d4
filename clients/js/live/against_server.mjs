// The client in Node against a real Bridge (run by tests/e2e/test_js_client_node.py):
//   node live/against_server.mjs <http base> <ws base> <user id> <topic>
// Prints one JSON line: what the application saw.
import WebSocket from "ws";
import { BridgeClient } from "../src/bridge.js";

const [http, ws, user, topic] = process.argv.slice(2);
const seen = [];
const inTopic = [];
const states = [];
let connects = 0;

function push(body) {
  return fetch(`${http}/sse/push`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }).then((reply) => {
    if (reply.status !== 202) throw new Error(`push: ${reply.status}`);
  });
}

async function until(check, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const client = new BridgeClient({ url: `${ws}/ws`, userId: user, WebSocket, storage: null });
client.on("state", (state) => states.push(state));
client.on("connected", () => { connects += 1; });
client.on("message", (m) => { if (!m.topic) seen.push(m.seq); });
client.connect();
await until(() => client.state === "connected", "connected");
client.subscribe(topic, (m) => inTopic.push(m.data), { since: 0 });
await until(() => client.topics.get(topic)?.subscribed, "subscribed");

for (let n = 0; n < 5; n++) await push({ user_id: user, message: `a${n}` });
await push({ topic, data: "t1" });
await until(() => seen.length === 5 && inTopic.length === 1, "the first pushes");

// An operator closes every connection of the user (4000): the client comes
// back by itself, resuming; pushes sent meanwhile arrive once, in order.
await fetch(`${http}/api/users/${user}/disconnect`, { method: "POST" });
for (let n = 0; n < 5; n++) await push({ user_id: user, message: `b${n}` });
await push({ topic, data: "t2" });
await until(() => connects === 2, "the reconnect");
await until(() => seen.length === 10 && inTopic.length === 2, "the resumed pushes");

const ack = await client.sendMessage("hi from node", { topic });
client.disconnect();
console.log(JSON.stringify({ seen, inTopic, connects, ackSeq: ack.seq, states }));
process.exit(0);
