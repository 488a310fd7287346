// StudyAbroadGPT chat page: streams answers from /v1/chat/completions (fetch + ReadableStream, SSE frames),
// renders them as safe Markdown, shows the sources behind the numbered citations and the fact-check note.
"use strict";

const $ = (sel) => document.querySelector(sel);
const history = [];          // the conversation sent with every request (OpenAI messages)
let busy = false;
let feedbackOn = false;      // the server logs answers for adviser review: offer 👍/👎 under each answer
// Groups this page's turns in the server's review log (and lets a student ask for its deletion).
const conversationId = (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
  : Date.now().toString(36) + Math.random().toString(36).slice(2);

async function init() {
  const key = localStorage.getItem("sagpt-api-key") || "";
  $("#apikey").value = key;
  $("#apikey").addEventListener("change", (e) => localStorage.setItem("sagpt-api-key", e.target.value.trim()));
  try {
    const health = await (await fetch("/health")).json();
    $("#model").textContent = health.model + (health.rag ? "" : " · grounding off on this server");
    $("#apikey").hidden = !health.auth;
    feedbackOn = !!health.feedback;
    if (!health.rag) { $("#rag").checked = false; $("#rag").disabled = true; }
  } catch (err) {
    $("#model").textContent = "server unreachable";
  }
  $("#ask").addEventListener("submit", (e) => { e.preventDefault(); ask(); });
  $("#question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); ask(); }
  });
  $("#log").addEventListener("click", onCitationClick);
}

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  if (role === "user") div.textContent = text;
  $("#log").appendChild(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

function renderAnswer(div, markdown) {
  div.querySelector(".body").innerHTML = SafeMarkdown.render(markdown);
}

function describeChange(c) {
  const esc = SafeMarkdown.escapeHtml;
  // c.text is the server's own one-line description (GateChange.describe), the same the terminal chat prints.
  if (c.text && c.action !== "cited" && c.action !== "dropped_citation" && c.action !== "added_key_fact") return esc(c.text) + ".";
  if (c.action === "corrected") return "Corrected “" + esc(c.claim) + "” to the official value " + esc(c.replacement) + (c.citation ? " [" + esc(String(c.citation)) + "]" : "") + ".";
  if (c.action === "removed") return "Removed “" + esc(c.claim) + "”: it contradicts the official source.";
  if (c.action === "marked_unverified") return "Marked “" + esc(c.claim) + "” as unverified: no official source here confirms it.";
  if (c.action === "added_caveat") return "Added a reminder to check the official source (information as of " + esc(c.as_of) + ").";
  return null;
}

const MODE_LABEL = { generate: "Answered by the model, checked by the fact gate", compose: "Composed from the official facts", out_of_scope: "No official information: honest answer" };

function showMode(div, gate) {
  if (!gate || !gate.mode) return;
  const m = document.createElement("div");
  m.className = "answer-mode";
  m.textContent = (MODE_LABEL[gate.mode] || gate.mode) + (gate.fallback_reason ? " (" + gate.fallback_reason + ")" : "");
  div.appendChild(m);
}

function showGate(div, gate) {
  if (!gate || !gate.changed) return;
  const items = gate.changes.map(describeChange).filter(Boolean);
  const note = document.createElement("div");
  note.className = "gate-note";
  note.setAttribute("role", "note");
  note.innerHTML = "<strong>Fact check changed this answer.</strong><ul>" + items.map((i) => "<li>" + i + "</li>").join("") + "</ul>";
  div.appendChild(note);
}

function showSources(sources) {
  const list = $("#source-list");
  list.innerHTML = "";
  $("#sources-empty").hidden = sources.length > 0;
  const esc = SafeMarkdown.escapeHtml;
  for (const s of sources) {
    const li = document.createElement("li");
    li.id = "src-" + s.index;
    li.value = s.index;
    li.className = s.cited ? "cited" : "uncited";
    const url = /^https?:\/\//.test(s.url) ? s.url : "#";
    li.innerHTML = '<a href="' + esc(url) + '" target="_blank" rel="noopener noreferrer">' + esc(s.title) + "</a>" +
      (s.policy_sensitive ? '<span class="badge">changes often</span>' : "") +
      '<div class="src-meta">' + esc(s.country) + " · " + esc(s.topic.replace(/_/g, " ")) + " · as of " + esc(s.as_of) + "</div>" +
      "<div>" + esc(s.statement) + "</div>";
    list.appendChild(li);
  }
}

function addFeedback(div, id) {
  // 👍 sends at once; 👎 asks what was wrong first (optional). Both go to the adviser review queue.
  const box = document.createElement("div");
  box.className = "feedback";
  const up = document.createElement("button"), down = document.createElement("button");
  up.type = down.type = "button";
  up.textContent = "👍"; up.title = "Helpful"; up.className = "thumb up";
  down.textContent = "👎"; down.title = "Wrong or unhelpful"; down.className = "thumb down";
  const note = document.createElement("input");
  note.type = "text"; note.placeholder = "What was wrong? (optional)"; note.maxLength = 2000; note.hidden = true;
  note.className = "feedback-comment";
  const send = document.createElement("button");
  send.type = "button"; send.textContent = "Send"; send.hidden = true; send.className = "feedback-send";
  const said = document.createElement("span");
  said.className = "muted small feedback-status";
  async function post(rating, comment) {
    const headers = { "Content-Type": "application/json" };
    const key = $("#apikey").value.trim();
    if (key) headers["Authorization"] = "Bearer " + key;
    try {
      const r = await fetch("/v1/feedback", { method: "POST", headers,
        body: JSON.stringify({ id, rating, comment: comment || null }) });
      said.textContent = r.ok ? "Thanks — an adviser reviews answers marked 👎." : "Feedback not saved.";
      if (r.ok) { up.disabled = down.disabled = send.disabled = true; note.hidden = send.hidden = true; }
    } catch (_) { said.textContent = "Feedback not saved."; }
  }
  up.addEventListener("click", () => post(1, ""));
  down.addEventListener("click", () => { note.hidden = send.hidden = false; note.focus(); });
  send.addEventListener("click", () => post(-1, note.value.trim()));
  box.append(up, down, note, send, said);
  div.appendChild(box);
}

function onCitationClick(e) {
  const a = e.target.closest("a.cite");
  if (!a) return;
  e.preventDefault();
  const msg = a.closest(".msg");
  if (msg && msg._sources) showSources(msg._sources);
  const li = document.getElementById("src-" + a.dataset.cite);
  if (!li) return;
  li.scrollIntoView({ behavior: "smooth", block: "nearest" });
  li.classList.add("flash");
  setTimeout(() => li.classList.remove("flash"), 1200);
}

async function ask() {
  const question = $("#question").value.trim();
  if (!question || busy) return;
  busy = true;
  $("#send").disabled = true;
  $("#question").value = "";
  addMessage("user", question);
  history.push({ role: "user", content: question });
  const div = addMessage("assistant");
  div.innerHTML = '<div class="body"></div>';
  div.classList.add("streaming");
  let raw = "";
  let final = null;
  try {
    const headers = { "Content-Type": "application/json", "X-Conversation-ID": conversationId };
    const key = $("#apikey").value.trim();
    if (key) headers["Authorization"] = "Bearer " + key;
    const resp = await fetch("/v1/chat/completions", {
      method: "POST", headers,
      body: JSON.stringify({ messages: history, stream: true, rag: $("#rag").checked }),
    });
    if (!resp.ok) {
      let message = resp.status + " " + resp.statusText;
      try { message = (await resp.json()).error.message; } catch (_) { /* keep the status line */ }
      if (resp.status === 401) $("#apikey").hidden = false;
      throw new Error(message);
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {      // one SSE event per blank-line-terminated block
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of block.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          const event = JSON.parse(data);
          if (event.error) throw new Error(event.error.message);
          const delta = (event.choices && event.choices[0] && event.choices[0].delta) || {};
          if (event.gate || event.sources) { final = event; continue; }
          if (delta.content) { raw += delta.content; renderAnswer(div, raw); }
        }
      }
    }
    div.classList.remove("streaming");
    if (final) {
      const gate = final.gate || {};
      // The gate ran on the whole answer: show its corrected version instead of the raw stream.
      const tail = (final.choices[0].delta || {}).content || "";
      const content = gate.content || raw + tail;
      renderAnswer(div, content);
      div._sources = final.sources || [];
      showSources(div._sources);
      showGate(div, gate);
      showMode(div, gate);
      if (feedbackOn && final.id) addFeedback(div, final.id);
      history.push({ role: "assistant", content });
    } else {
      history.push({ role: "assistant", content: raw });
    }
    div.dataset.done = "1";
  } catch (err) {
    div.classList.remove("streaming");
    div.classList.add("error");
    div.querySelector(".body").textContent = "Error: " + err.message;
    div.dataset.done = "error";
    history.pop();
  } finally {
    busy = false;
    $("#send").disabled = false;
    $("#question").focus();
  }
}

init();
