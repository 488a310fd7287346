// Adviser review page. Every value from the server is shown with textContent (never innerHTML): questions,
// answers and sources were written by students and models and must not become markup.
"use strict";

const state = { key: sessionStorage.getItem("sagpt-adviser-key") || "",
                reviewer: sessionStorage.getItem("sagpt-reviewer") || "", current: null };
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.style.color = isError ? "#b3261e" : "";
}

async function api(path, options = {}) {
  const headers = Object.assign({ "X-Adviser-Key": state.key }, options.headers || {});
  if (options.body) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  if (!resp.ok) {
    let message = `HTTP ${resp.status}`;
    try { message = (await resp.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return resp;
}

async function loadQueue() {
  const list = $("queue");
  try {
    const data = await (await api(`/review/api/queue?status=${encodeURIComponent($("filter").value)}`)).json();
    list.replaceChildren();
    for (const item of data.items) {
      const li = el("li");
      li.dataset.id = item.id;
      li.appendChild(el("span", item.risk.toFixed(0), "risk-score"));
      li.appendChild(el("span", item.question.length > 140 ? item.question.slice(0, 140) + "…" : item.question));
      li.appendChild(el("div", `${item.status} · ${item.answer_mode} · ${item.risk_reasons.join("; ") || "no risk signal"}`,
                        "muted small"));
      li.addEventListener("click", () => openTurn(item.id));
      list.appendChild(li);
    }
    if (!data.items.length) list.appendChild(el("li", "Nothing here.", "muted"));
    setStatus(`${data.items.length} answer(s)`);
  } catch (e) { setStatus(`Could not load the queue: ${e.message}`, true); }
}

function link(url, text) {
  // Only real https links become clickable; anything else is shown as text.
  if (typeof url === "string" && /^https:\/\//i.test(url)) {
    const a = el("a", text || url);
    a.href = url; a.rel = "noopener noreferrer"; a.target = "_blank";
    return a;
  }
  return el("span", text || url);
}

function describeChange(c) {
  const parts = [c.action];
  if (c.claim) parts.push(`“${c.claim}”`);
  if (c.replacement) parts.push(`→ ${c.replacement}`);
  if (c.reason) parts.push(`(${c.reason})`);
  if (c.fact_id) parts.push(`[fact ${c.fact_id}]`);
  if (c.slot) parts.push(`slot: ${typeof c.slot === "string" ? c.slot : JSON.stringify(c.slot)}`);
  return parts.join(" ");
}

async function openTurn(id) {
  try {
    const t = await (await api(`/review/api/turns/${id}`)).json();
    state.current = t;
    for (const li of $("queue").children) li.classList.toggle("selected", li.dataset.id === String(id));
    $("stats").hidden = true; $("detail").hidden = false;
    $("history").replaceChildren(...t.history.map((m) => el("li", `${m.role}: ${m.content}`)));
    $("question").textContent = t.question;
    $("meta").textContent = `answer ${t.id} · ${t.created_at} · model ${t.model_id}` +
      (t.adapter_id ? ` + ${t.adapter_id}` : "") + ` · KB ${t.kb_version || "?"} · ${t.latency_ms} ms`;
    $("risk").replaceChildren(...t.risk_reasons.map((r) => el("li", r)));
    $("mode").textContent = t.answer_mode;
    $("answer").textContent = t.answer;
    $("raw").textContent = t.raw_text;
    const gate = t.gate_changes.filter((c) => c.action !== "cited");
    $("gate").replaceChildren(...(gate.length ? gate.map((c) => el("li", describeChange(c)))
                                              : [el("li", "none", "muted")]));
    $("sources").replaceChildren(...t.sources.map((s) => {
      const li = el("li");
      li.appendChild(el("strong", `[${s.index}] ${s.id}${s.cited ? " (cited)" : ""}: `));
      li.appendChild(el("span", `${s.statement || ""} `));
      li.appendChild(link(s.url, s.title || s.url));
      return li;
    }));
    $("fact").replaceChildren(...t.sources.map((s) => {
      const o = el("option", `[${s.index}] ${s.id}`); o.value = s.id; return o;
    }));
    $("fact-form").hidden = !t.sources.length;
    $("feedback").textContent = t.feedback === null ? "none" :
      `${t.feedback > 0 ? "👍" : "👎"} ${t.feedback_comment || ""}`;
    $("actions").replaceChildren(...(t.actions.length ? t.actions.map((a) =>
      el("li", `${a.created_at} ${a.reviewer}: ${a.action}${a.fact_id ? " " + a.fact_id : ""}${a.note ? " — " + a.note : ""}`))
      : [el("li", "not reviewed yet", "muted")]));
    $("corrected").value = t.answer;
  } catch (e) { setStatus(`Could not open answer ${id}: ${e.message}`, true); }
}

async function act(body) {
  if (!state.current) return;
  try {
    await api(`/review/api/turns/${state.current.id}/actions`,
              { method: "POST", body: JSON.stringify(Object.assign({ reviewer: state.reviewer }, body)) });
    const id = state.current.id;
    await loadQueue();
    await openTurn(id);
    setStatus(`Saved: ${body.action} on answer ${id}`);
  } catch (e) { setStatus(`Not saved: ${e.message}`, true); }
}

async function showStats() {
  try {
    const s = await (await api("/review/api/stats")).json();
    const rows = [["answers logged", s.answers_logged], ["answers reviewed", s.answers_reviewed],
      ["approved", s.approved], ["corrected or fact flagged", s.corrected],
      ["corrected share", s.corrected_share === null ? "–" :
        `${(100 * s.corrected_share).toFixed(0)}% (95% CI ${(100 * s.corrected_share_ci95[0]).toFixed(0)}–${(100 * s.corrected_share_ci95[1]).toFixed(0)}%)`],
      ["thumbs down / up", `${s.thumbs_down} / ${s.thumbs_up}`], ["still pending", s.pending],
      ["top failing topics", s.top_failing_topics.map((t) => `${t.topic} (${t.answers})`).join(", ") || "–"]];
    $("stats-list").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
    const blob = await (await api("/review/api/stats.png")).blob();
    $("stats-plot").src = URL.createObjectURL(blob);
    $("detail").hidden = true; $("stats").hidden = false;
  } catch (e) { setStatus(`Could not load stats: ${e.message}`, true); }
}

function init() {
  $("reviewer").value = state.reviewer;
  $("key").value = state.key;
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = $("key").value; state.reviewer = $("reviewer").value.trim();
    sessionStorage.setItem("sagpt-adviser-key", state.key);
    sessionStorage.setItem("sagpt-reviewer", state.reviewer);
    loadQueue();
  });
  $("filter").addEventListener("change", loadQueue);
  $("refresh").addEventListener("click", loadQueue);
  $("show-stats").addEventListener("click", showStats);
  $("close-stats").addEventListener("click", () => { $("stats").hidden = true; });
  $("approve").addEventListener("click", () => act({ action: "approve" }));
  $("edit-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act({ action: "edit", corrected_answer: $("corrected").value, note: $("edit-note").value });
  });
  $("fact-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const kind = document.querySelector("input[name=fact-kind]:checked").value;
    act({ action: kind, fact_id: $("fact").value, note: $("fact-note").value });
  });
  $("propose-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act({ action: "propose", note: $("p-note").value, proposal: {
      kind: $("p-kind").value, destination: $("p-destination").value.trim().toUpperCase(),
      topic: $("p-topic").value.trim(), statement: $("p-statement").value.trim(),
      source_url: $("p-url").value.trim(), source_title: $("p-title").value.trim() } });
  });
  if (state.key && state.reviewer) loadQueue();
}

document.addEventListener("DOMContentLoaded", init);
