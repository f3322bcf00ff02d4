// The demo page (/demo/): rooms, a bot, notifications, typing, unread counts,
// "seen" receipts and streamed replies, on the JavaScript client
// (/static/bridge/bridge.js). Everything shown comes over one WebSocket.
import { BridgeClient } from "/static/bridge/bridge.js";

const config = JSON.parse(document.getElementById("demo-config").textContent);
const $ = (id) => document.getElementById(id);
const TYPING_SHOWN_MS = 4000;
const TYPING_EVERY_MS = 2000;

let client = null;
let me = null;
// key -> {key, title, topic?, to?, items: Map(id -> item), order: [id], unread, readers: Map(user -> seq), typing: Map(user -> until), members: Set}
const conversations = new Map();
let active = null;
let lastTypingSent = 0;

// --- login -------------------------------------------------------------------

const saved = sessionStorage.getItem("bridge-demo-user");
if (saved) start(saved);

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  start($("user-id").value.trim());
});

$("leave").addEventListener("click", () => {
  sessionStorage.removeItem("bridge-demo-user");
  location.reload();
});

async function join(userId) {
  const reply = await fetch("/demo/join", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user_id: userId }),
  });
  const body = await reply.json();
  if (!reply.ok) throw new Error(body.message);
  return body;
}

async function start(userId) {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(userId)) {
    $("login-error").textContent = "Use letters, digits, _ . - (up to 64).";
    $("login-error").hidden = false;
    return;
  }
  let joined;
  try {
    joined = await join(userId);
  } catch (error) {
    $("login-error").textContent = error.message;
    $("login-error").hidden = false;
    return;
  }
  me = userId;
  sessionStorage.setItem("bridge-demo-user", userId);
  $("login").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  $("me").textContent = userId;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  client = new BridgeClient({
    url: `${scheme}//${location.host}/ws`,
    userId: config.authMode === "open" ? userId : undefined,
    // The first token came with the join; later ones (reconnects, refresh) anew.
    token: config.authMode === "open" ? undefined : async () => {
      const token = joined ? joined.token : (await join(userId)).token;
      joined = null;
      return token;
    },
  });
  for (const topic of config.rooms) {
    conversation(`room:${topic}`, `# ${topic.split(":")[1]}`, { topic });
  }
  conversation(`dm:${config.bot}`, `@${config.bot}`, { to: config.bot });
  conversation("inbox", "Inbox", {});
  wire();
  client.connect();
  for (const topic of config.rooms) client.subscribe(topic, null, { since: 0 });
  select(`room:${config.rooms[0]}`);
  renderSidebar();
}

// --- conversations -------------------------------------------------------------

function conversation(key, title, target) {
  if (!conversations.has(key)) {
    conversations.set(key, {
      key, title, ...target,
      items: new Map(), order: [], unread: 0,
      readers: new Map(), typing: new Map(), members: new Set(),
    });
  }
  return conversations.get(key);
}

function keyOfMessage(frame) {
  if (frame.topic && frame.to === null) return `room:${frame.topic}`;
  if (frame.from === config.bot) return `dm:${config.bot}`;
  return "inbox";
}

function add(key, item, { count = true } = {}) {
  const conv = conversations.get(key);
  if (!conv) return;
  const known = conv.items.get(item.id);
  if (known) {
    Object.assign(known, item); // a streamed reply's final message, a recall
  } else {
    conv.items.set(item.id, item);
    conv.order.push(item.id);
    if (count && !item.mine && key !== active) conv.unread += 1;
  }
  if (key === active) {
    renderMessages();
    markRead(conv);
  }
  renderSidebar();
}

function select(key) {
  active = key;
  const conv = conversations.get(key);
  conv.unread = 0;
  $("chat-title").textContent = conv.title;
  renderMessages();
  renderSidebar();
  renderTyping();
  markRead(conv);
  $("text").focus();
}

function markRead(conv) {
  if (document.hidden) return;
  const seqs = conv.order.map((id) => conv.items.get(id).seq).filter((s) => typeof s === "number");
  const highest = Math.max(0, ...seqs);
  if (!highest || highest <= (conv.readSeq || 0)) return;
  conv.readSeq = highest;
  if (conv.topic) client.read(highest, { topic: conv.topic });
  else client.read(highest);
}

document.addEventListener("visibilitychange", () => {
  if (active) markRead(conversations.get(active));
});

// --- the client's events -------------------------------------------------------------

function wire() {
  client.on("state", (state) => {
    const box = $("conn");
    box.dataset.state = state;
    $("conn-text").textContent =
      state === "connected" ? "connected" : state === "connecting" ? "reconnecting…" : "offline";
  });
  let connections = 0;
  client.on("connected", () => {
    connections += 1;
    if (connections > 1) {
      $("conn-text").textContent = "resumed";
      setTimeout(() => { if (client.state === "connected") $("conn-text").textContent = "connected"; }, 3000);
    }
  });
  client.on("message", (frame) => {
    if (frame.event === "notification" && frame.data && typeof frame.data === "object") {
      notify(frame);
    }
    const key = keyOfMessage(frame);
    add(key, {
      id: frame.id,
      seq: frame.seq,
      from: frame.from,
      text: textOf(frame),
      mine: frame.from === me,
      streaming: false,
      recalled: Boolean(frame.recalled),
      incomplete: Boolean(frame.incomplete),
      time: frame.timestamp,
    });
  });
  client.on("stream", (part) => {
    const key = part.topic ? `room:${part.topic}` : part.from === config.bot ? `dm:${config.bot}` : "inbox";
    const conv = conversations.get(key);
    if (!conv) return;
    const known = conv.items.get(part.id);
    if (known && !known.streaming) return; // the final message came first
    const text = (known ? known.text : "") + part.delta;
    add(key, { id: part.id, seq: null, from: part.from, text, mine: false, streaming: true }, { count: !known });
  });
  client.on("recall", (frame) => {
    for (const conv of conversations.values()) {
      const item = conv.items.get(frame.id);
      if (item) add(conv.key, { ...item, recalled: true, text: "message recalled" });
    }
  });
  client.on("signal", (frame) => {
    if (frame.event !== "typing") return;
    const key = frame.topic ? `room:${frame.topic}` : frame.from === config.bot ? `dm:${config.bot}` : null;
    const conv = key && conversations.get(key);
    if (!conv) return;
    conv.typing.set(frame.from, Date.now() + TYPING_SHOWN_MS);
    renderTyping();
    setTimeout(renderTyping, TYPING_SHOWN_MS + 50);
  });
  client.on("receipt", (frame) => {
    if (frame.topic) {
      const conv = conversations.get(`room:${frame.topic}`);
      if (!conv || frame.user_id === me) return;
      conv.readers.set(frame.user_id, frame.seq);
    } else {
      // Someone read personal messages this user sent (a bot, here).
      const conv = conversations.get(`dm:${frame.user_id}`);
      if (!conv) return;
      for (const id of frame.message_ids || []) conv.readers.set(`${frame.user_id}:${id}`, 1);
    }
    if (active) renderMessages();
  });
  client.on("subscribed", (frame) => {
    const conv = conversations.get(`room:${frame.topic}`);
    if (conv && typeof frame.unread === "number" && `room:${frame.topic}` !== active) {
      conv.unread = Math.max(conv.unread, frame.unread);
      renderSidebar();
    }
  });
  client.on("join", (frame) => {
    const conv = conversations.get(`room:${frame.topic}`);
    if (conv) { conv.members.add(frame.user_id); renderMembers(); }
  });
  client.on("leave", (frame) => {
    const conv = conversations.get(`room:${frame.topic}`);
    if (conv) { conv.members.delete(frame.user_id); renderMembers(); }
  });
  client.on("history_truncated", () => toast({ level: "info", title: "Older messages were not kept", body: "" }));
  client.on("error", (frame) => {
    if (frame.code === "rate_limited") toast({ level: "warning", title: "Slow down", body: frame.message });
  });
}

function textOf(frame) {
  if (frame.recalled) return "message recalled";
  const data = frame.data;
  if (data && typeof data === "object") {
    if (typeof data.text === "string") return data.text;
    if (typeof data.body === "string") return (data.title ? `${data.title}: ` : "") + data.body;
  }
  return typeof data === "string" ? data : JSON.stringify(data);
}

$("join-room").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("room-name").value.trim();
  if (!/^[A-Za-z0-9_.-]{1,40}$/.test(name)) return;
  $("room-name").value = "";
  const topic = `demo:${name}`;
  if (!conversations.has(`room:${topic}`)) {
    conversation(`room:${topic}`, `# ${name}`, { topic });
    client.subscribe(topic, null, { since: 0 });
  }
  select(`room:${topic}`);
});

// --- sending ---------------------------------------------------------------------------

$("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text || !active) return;
  const conv = conversations.get(active);
  if (!conv.topic && !conv.to) {
    toast({ level: "info", title: "The inbox is read-only", body: "Pushes from the HTTP API land here." });
    return;
  }
  input.value = "";
  const pending = `local-${Date.now()}-${Math.random()}`;
  add(active, { id: pending, seq: null, from: me, text, mine: true, streaming: false });
  try {
    const ack = await client.sendMessage(text, conv.topic ? { topic: conv.topic } : { to: conv.to });
    const item = conv.items.get(pending);
    conv.items.delete(pending);
    conv.order[conv.order.indexOf(pending)] = ack.id;
    conv.items.set(ack.id, { ...item, id: ack.id, seq: ack.seq ?? null });
    renderMessages();
  } catch (error) {
    const item = conv.items.get(pending);
    if (item) item.text += `  (not sent: ${error.message})`;
    renderMessages();
  }
});

$("text").addEventListener("input", () => {
  const conv = active && conversations.get(active);
  if (!conv || (!conv.topic && !conv.to)) return;
  const now = Date.now();
  if (now - lastTypingSent < TYPING_EVERY_MS) return;
  lastTypingSent = now;
  client.signal("typing", conv.topic ? { topic: conv.topic } : { to: conv.to });
});

// --- rendering -------------------------------------------------------------------------

function renderSidebar() {
  const rooms = [...conversations.values()].filter((c) => c.topic);
  const directs = [...conversations.values()].filter((c) => !c.topic);
  $("rooms").replaceChildren(...rooms.map(sidebarItem));
  $("directs").replaceChildren(...directs.map(sidebarItem));
}

function sidebarItem(conv) {
  const li = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.key = conv.key;
  button.className = conv.key === active ? "active" : "";
  const name = document.createElement("span");
  name.textContent = conv.title;
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.textContent = conv.unread ? String(conv.unread) : "";
  button.append(name, badge);
  button.addEventListener("click", () => select(conv.key));
  li.appendChild(button);
  return li;
}

function renderMessages() {
  const conv = conversations.get(active);
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const seenBy = lastSeen(conv);
  list.replaceChildren(
    ...conv.order.map((id) => {
      const item = conv.items.get(id);
      const li = document.createElement("li");
      li.className = "message" + (item.mine ? " mine" : "") + (item.streaming ? " streaming" : "") +
        (item.recalled ? " recalled" : "");
      li.dataset.id = id;
      if (item.seq !== null && item.seq !== undefined) li.dataset.seq = item.seq;
      const meta = document.createElement("div");
      meta.className = "meta";
      meta.textContent = (item.from || "system") + (item.incomplete ? " · incomplete" : "");
      const body = document.createElement("div");
      body.className = "body";
      body.textContent = item.text;
      li.append(meta, body);
      if (seenBy.has(id)) {
        const seen = document.createElement("div");
        seen.className = "seen";
        seen.textContent = "Seen by " + seenBy.get(id).join(", ");
        li.appendChild(seen);
      }
      return li;
    })
  );
  if (atBottom) list.scrollTop = list.scrollHeight;
  renderMembers();
}

/** message id -> readers, shown under this user's latest message each reader has seen. */
function lastSeen(conv) {
  const result = new Map();
  if (!conv.topic) return result;
  const mine = conv.order.map((id) => conv.items.get(id)).filter((i) => i.mine && typeof i.seq === "number");
  for (const [reader, seq] of conv.readers) {
    const seen = mine.filter((i) => i.seq <= seq).at(-1);
    if (!seen) continue;
    if (!result.has(seen.id)) result.set(seen.id, []);
    result.get(seen.id).push(reader);
  }
  return result;
}

function renderTyping() {
  const conv = active && conversations.get(active);
  if (!conv) return;
  const now = Date.now();
  const who = [...conv.typing].filter(([user, until]) => until > now && user !== me).map(([user]) => user);
  $("typing").textContent = who.length ? `${who.join(", ")} ${who.length === 1 ? "is" : "are"} typing…` : "";
}

function renderMembers() {
  const conv = active && conversations.get(active);
  $("members").textContent = conv && conv.members.size ? `here: ${[...conv.members].join(", ")}` : "";
}

function notify(frame) {
  const data = frame.data;
  const level = ["info", "success", "warning", "error", "urgent"].includes(data.level) ? data.level : "info";
  toast({ level, title: data.title || "Notification", body: data.body || "", url: data.action_url, autoClose: data.auto_close });
  const li = document.createElement("li");
  li.className = `notification level-${level}`;
  li.textContent = `${data.title || "Notification"}${data.body ? ": " + data.body : ""}`;
  $("notification-list").prepend(li);
}

function toast({ level, title, body, url, autoClose }) {
  const box = document.createElement("div");
  box.className = `toast level-${level}`;
  const strong = document.createElement("strong");
  strong.textContent = title;
  const text = document.createElement("span");
  text.textContent = body;
  box.append(strong, text);
  if (url) {
    const link = document.createElement("a");
    link.href = url;
    link.textContent = " Open";
    box.appendChild(link);
  }
  $("toasts").appendChild(box);
  const stay = level === "urgent" && !autoClose ? null : typeof autoClose === "number" ? autoClose : 6000;
  if (stay !== null) setTimeout(() => box.remove(), stay);
  else box.addEventListener("click", () => box.remove());
}
