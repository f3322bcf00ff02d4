// The admin's Live connections page, kept current over /ws/monitor
// (messaging/realtime/monitor.py): figures, instances, who connects and
// disconnects, and a Disconnect button that works without a reload
// (POST /api/users/<id>/disconnect with the staff session and its CSRF token).
(function () {
  "use strict";
  const config = window.BRIDGE_LIVE || {};
  const state = document.getElementById("live-state");
  const figures = document.getElementById("live-figures");
  const instances = document.querySelector("#live-instances tbody");
  const events = document.getElementById("live-events");
  const users = document.querySelector("#live-connections tbody");
  const countLine = document.getElementById("live-count");
  let retry = 500;
  // user id -> {connections, nodes}: each user's connection details, fetched
  // from GET /api/users/<id>/connections when the count changes.
  const details = new Map();
  users.querySelectorAll("tr[data-user]").forEach((row) => {
    details.set(row.dataset.user, {
      connections: Number(row.querySelector(".count").textContent),
      nodes: [...row.querySelector(".details").childNodes],
    });
  });

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function setState(text, kind) {
    state.textContent = text;
    state.className = kind || "";
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function renderFigures(frame) {
    const s = frame.stats;
    const items = [
      ["connections", s.total_connections],
      ["users online", frame.online_users],
      ["topics", s.topics],
      ["subscriptions", s.subscriptions],
      ["pushes / s", frame.pushes_per_second],
      ["pushed", s.messages_pushed],
      ["delivered", s.messages_delivered],
    ];
    figures.replaceChildren(
      ...items.map(([label, value]) => {
        const box = document.createElement("div");
        const strong = document.createElement("strong");
        strong.textContent = value;
        box.append(strong, label);
        return box;
      })
    );
    instances.replaceChildren(
      ...s.instances.map((i) => {
        const row = document.createElement("tr");
        cell(row, i.instance);
        cell(row, i.connections);
        cell(row, i.started_at || "");
        return row;
      })
    );
    const n = frame.online_users;
    countLine.textContent = n + " user" + (n === 1 ? "" : "s") + " online across every instance.";
  }

  function logChange(change) {
    const line = document.createElement("div");
    const time = new Date().toLocaleTimeString();
    line.textContent = time + "  " + change.user_id + " " + change.event +
      " (" + change.connections + " connection" + (change.connections === 1 ? "" : "s") + ")";
    line.className = "event-" + change.event;
    events.prepend(line);
    while (events.childElementCount > 200) events.lastChild.remove();
  }

  function userRow(user, fresh) {
    const row = document.createElement("tr");
    row.dataset.user = user.user_id;
    if (fresh) row.className = "fresh";
    const name = document.createElement("td");
    const link = document.createElement("a");
    link.href = config.streamUrl + "?stream=user:" + encodeURIComponent(user.user_id);
    link.textContent = user.user_id;
    name.appendChild(link);
    row.appendChild(name);
    const count = cell(row, user.connections);
    count.className = "count";
    const detailCell = cell(row, "");
    detailCell.className = "details";
    fillDetails(user, detailCell);
    const actions = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "disconnect-button";
    button.textContent = "Disconnect";
    button.addEventListener("click", () => disconnect(user.user_id, button));
    actions.appendChild(button);
    row.appendChild(actions);
    return row;
  }

  async function fillDetails(user, target) {
    const known = details.get(user.user_id);
    if (known && known.connections === user.connections) {
      target.replaceChildren(...known.nodes.map((node) => node.cloneNode(true)));
      return;
    }
    try {
      const reply = await fetch("/api/users/" + encodeURIComponent(user.user_id) + "/connections",
        { credentials: "same-origin" });
      if (!reply.ok) return;
      const body = await reply.json();
      const nodes = body.connections.map((c) => {
        const line = document.createElement("div");
        line.textContent = [c.instance, c.connected_at, c.last_seen, c.remote_addr,
          c.acked_seq === null ? "-" : c.acked_seq].join(" · ");
        return line;
      });
      details.set(user.user_id, { connections: user.connections, nodes });
      target.replaceChildren(...nodes.map((node) => node.cloneNode(true)));
    } catch (error) {
      // Details are a convenience: the row still shows the count.
    }
  }

  function renderUsers(frame) {
    if (!config.firstPage) return; // later pages stay as the server rendered them
    const fresh = new Set(frame.changes.filter((c) => c.event === "connected").map((c) => c.user_id));
    const rows = frame.users.map((user) => userRow(user, fresh.has(user.user_id)));
    if (rows.length === 0) {
      const row = document.createElement("tr");
      row.className = "nobody";
      const td = cell(row, "Nobody is connected.");
      td.colSpan = 4;
      rows.push(row);
    }
    users.replaceChildren(...rows);
  }

  async function disconnect(userId, button) {
    button.disabled = true;
    try {
      const reply = await fetch("/api/users/" + encodeURIComponent(userId) + "/disconnect", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), "Content-Type": "application/json" },
        body: "{}",
      });
      const body = await reply.json();
      if (!reply.ok) throw new Error(body.message || reply.status);
      logChange({ user_id: userId, event: "disconnected by you", connections: 0 });
    } catch (error) {
      button.disabled = false;
      alert("Could not disconnect " + userId + ": " + error.message);
    }
  }

  // Server-rendered Disconnect forms also go through the API, without a reload.
  document.querySelectorAll("form.disconnect").forEach((form) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      disconnect(form.querySelector("input[name=user_id]").value, form.querySelector("[type=submit]"));
    });
  });

  function open() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/ws/monitor");
    socket.onopen = () => { retry = 500; setState("live", "live"); };
    socket.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      if (frame.type === "error") {
        setState(frame.message, "down");
        return;
      }
      if (frame.type !== "monitor") return;
      setState("live", "live");
      renderFigures(frame);
      frame.changes.forEach(logChange);
      renderUsers(frame);
    };
    socket.onclose = (event) => {
      if (event.code === 4401 || event.code === 4403) {
        setState("not allowed: log in as staff", "down");
        return;
      }
      setState("reconnecting…", "down");
      setTimeout(open, retry + Math.random() * retry);
      retry = Math.min(retry * 2, 20000);
    };
  }
  open();
})();
