// FleetPrompt chat: sends a turn to /api/chat and renders the Vercel AI UI message stream (v6) as it arrives.
// The server keeps the history; this page only sends the new message or an approval answer.
"use strict";

(function () {
  const chat = document.getElementById("chat");
  if (!chat) return;
  const conversationId = chat.dataset.conversationId;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const list = document.getElementById("messages");
  const form = document.getElementById("composer");
  const input = document.getElementById("message");
  const send = document.getElementById("send");
  const status = document.getElementById("status");

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function messageItem(role) {
    const item = el("li", "message " + role);
    item.appendChild(el("div", "role", role === "user" ? "You" : "Assistant"));
    list.appendChild(item);
    return item;
  }

  function badge(state) {
    return el("span", "badge status-" + state, state);
  }

  function directiveLine(data) {
    const line = el("div", "directive");
    line.dataset.directiveId = data.directive_id;
    line.appendChild(document.createTextNode("Directive "));
    const link = el("a", "", data.type);
    link.href = data.url;
    line.appendChild(link);
    line.appendChild(document.createTextNode(" "));
    line.appendChild(badge(data.status));
    if (data.error) line.appendChild(el("span", "error", " " + data.error));
    return line;
  }

  function showDirective(data) {
    const fresh = directiveLine(data);
    const existing = document.querySelectorAll('.directive[data-directive-id="' + data.directive_id + '"]');
    if (existing.length) {
      existing.forEach((node) => node.replaceWith(fresh.cloneNode(true)));
      return;
    }
    const host = (current && current.lastTool) || (current && current.item);
    if (host) host.appendChild(fresh);
  }

  function approvalButtons(toolCallId, toolName) {
    const box = el("div", "approval");
    box.dataset.toolCallId = toolCallId;
    box.appendChild(el("span", "", "This action waits for your approval. "));
    const approve = el("button", "approve", "Approve");
    const deny = el("button", "deny secondary", "Deny");
    approve.type = deny.type = "button";
    approve.addEventListener("click", () => answer(toolCallId, toolName, true, box));
    deny.addEventListener("click", () => answer(toolCallId, toolName, false, box));
    box.appendChild(approve);
    box.appendChild(deny);
    return box;
  }

  let current = null; // the assistant message being streamed: {item, text, tools: {id: node}, lastTool}

  function toolNode(id, name) {
    if (!current.tools[id]) {
      const node = el("div", "tool");
      node.dataset.toolCallId = id;
      const head = el("div", "tool-head");
      head.appendChild(el("code", "", name || "tool"));
      head.appendChild(document.createTextNode(" "));
      head.appendChild(badge("calling"));
      node.appendChild(head);
      current.item.appendChild(node);
      current.tools[id] = node;
      current.text = null;
    }
    current.lastTool = current.tools[id];
    return current.tools[id];
  }

  function setToolState(node, state, detail) {
    const head = node.querySelector(".tool-head");
    head.querySelector(".badge").replaceWith(badge(state));
    if (detail !== undefined) {
      const pre = el("pre", state === "error" ? "error" : "", typeof detail === "string" ? detail : JSON.stringify(detail, null, 2));
      const box = el("details");
      box.appendChild(el("summary", "", "Details"));
      box.appendChild(pre);
      node.appendChild(box);
    }
  }

  function handle(chunk) {
    switch (chunk.type) {
      case "text-start":
        current.text = el("div", "text", "");
        current.item.appendChild(current.text);
        break;
      case "text-delta":
        if (!current.text) { current.text = el("div", "text", ""); current.item.appendChild(current.text); }
        current.text.textContent += chunk.delta;
        break;
      case "text-end":
        current.text = null;
        break;
      case "tool-input-start":
      case "tool-input-available":
        toolNode(chunk.toolCallId, chunk.toolName);
        break;
      case "tool-output-available":
        setToolState(toolNode(chunk.toolCallId), "done", chunk.output);
        break;
      case "tool-output-error":
        setToolState(toolNode(chunk.toolCallId), "error", chunk.errorText);
        break;
      case "tool-output-denied":
        setToolState(toolNode(chunk.toolCallId), "denied");
        break;
      case "tool-approval-request": {
        const node = toolNode(chunk.toolCallId);
        setToolState(node, "approval-requested");
        node.appendChild(approvalButtons(chunk.toolCallId, node.querySelector("code").textContent));
        break;
      }
      case "data-directive":
        showDirective(chunk.data);
        break;
      case "error":
        current.item.appendChild(el("div", "error", "Error: " + chunk.errorText));
        break;
      default:
        break;
    }
  }

  async function stream(body) {
    send.disabled = true;
    status.textContent = "Thinking…";
    current = { item: messageItem("assistant"), text: null, tools: {}, lastTool: null };
    try {
      const response = await fetch("/api/chat", {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": csrf },
        body: JSON.stringify(body),
      });
      if (!response.ok) {
        let message = response.statusText;
        try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
        current.item.appendChild(el("div", "error", message));
        return false;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          for (const line of event.split("\n")) {
            if (!line.startsWith("data: ")) continue;
            const data = line.slice(6);
            if (data === "[DONE]") continue;
            handle(JSON.parse(data));
          }
        }
      }
      return true;
    } catch (error) {
      current.item.appendChild(el("div", "error", "The connection failed: " + error));
      return false;
    } finally {
      send.disabled = false;
      status.textContent = "";
      list.lastElementChild && list.lastElementChild.scrollIntoView({ block: "end" });
    }
  }

  async function answer(toolCallId, toolName, approved, box) {
    box.querySelectorAll("button").forEach((b) => (b.disabled = true));
    const ok = await stream({
      trigger: "submit-message",
      id: conversationId,
      messages: [{
        id: "answer-" + toolCallId,
        role: "assistant",
        parts: [{
          type: "tool-" + toolName,
          toolCallId: toolCallId,
          state: "approval-responded",
          input: {},
          approval: { id: toolCallId, approved: approved },
        }],
      }],
    });
    if (ok) {
      const node = box.closest(".tool");
      box.remove();
      if (node) setToolState(node, approved ? "approved" : "denied");
    }
    else box.querySelectorAll("button").forEach((b) => (b.disabled = false));
  }

  // Pending approvals rendered by the server get live buttons.
  document.querySelectorAll(".approval[data-tool-call-id]").forEach((box) => {
    const fresh = approvalButtons(box.dataset.toolCallId, box.dataset.tool);
    box.replaceWith(fresh);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    const item = messageItem("user");
    item.appendChild(el("div", "text", text));
    if (window.history && window.location.pathname !== "/chat/" + conversationId) {
      window.history.replaceState(null, "", "/chat/" + conversationId);
    }
    await stream({
      trigger: "submit-message",
      id: conversationId,
      messages: [{ id: "u-" + Date.now(), role: "user", parts: [{ type: "text", text: text }] }],
    });
  });
})();
