// Type-checks against the published types (`npm run typecheck`): the shape a
// TypeScript application writes.
import { BridgeClient, type MessageFrame, type AckFrame } from "bridge-client";

const client = new BridgeClient({ url: "wss://bridge.example/ws", token: async () => "t" });
client.on("message", (message: MessageFrame) => {
  const seq: number | null = message.seq;
  console.log(message.from, seq, message.stream_id);
});
client.on("stream", (part) => console.log(part.index.toFixed(0), part.delta.length));
client.on("state", (state) => {
  if (state === "connected") console.log("up");
});
client.subscribe("room:42", (m) => console.log(m.topic), { since: 0 });
const reply = client.stream({ to: "alice" });
reply.write("Hel");
const ack: Promise<AckFrame> = reply.end("lo", { model: "m1" });
void ack;
client.read(3, { topic: "room:42" });
client.connect();
