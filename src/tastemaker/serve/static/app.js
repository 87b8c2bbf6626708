// The tastemaker page: plain JavaScript over the JSON API (no build step, no CDN).
// Every text from the server goes into the page through textContent, never as markup.
"use strict";

const $ = (id) => document.getElementById(id);
const WEIGHTS = [[1, 4], [1, 3], [1, 2], [2, 3], [1, 1], [3, 2], [2, 1], [3, 1], [4, 1]];
const K = 12;
const state = {
  mode: "user",       // "user": a known user; "build": a history clicked together here
  user: "",
  built: [],          // items of the built history, in click order
  usersOffset: 0,
  studio: null,       // {item, keywords: {preference: Map, item: Map}, parent, steps}
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function setStatus(text, error = false) {
  const box = $("status");
  box.textContent = text;
  box.className = error ? "error" : "";
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const key = $("api-key").value.trim();
  if (key) headers.Authorization = "Bearer " + key;
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401 || response.status === 403) $("key-box").classList.remove("hidden");
    const message = data && data.error ? data.error + (data.fix ? " (" + data.fix + ")" : "") : "HTTP " + response.status;
    throw new Error(message);
  }
  return data;
}

const rows = (data, ...names) => {
  if (Array.isArray(data)) return data;
  for (const name of names) if (data && Array.isArray(data[name])) return data[name];
  return [];
};
const fmt = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(3));
const model = () => $("model").value;
const eventId = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());

// The item's poster, or a box saying what it is (its title; "no poster" where a caption has it).
function poster(item, cls = "poster", label = null) {
  if (item.image_url) return el("img", { class: cls, src: item.image_url, alt: item.title || item.item_id, loading: "lazy" });
  return el("div", { class: cls + " no-poster", text: label || item.title || item.item_id });
}

// --- models and users --------------------------------------------------------------------

async function loadModels() {
  const models = rows(await api("GET", "/models"), "models");
  const select = $("model");
  select.replaceChildren(...models.map((m) => el("option", {
    value: m.name, text: m.name + (m.fold_in ? "" : " (known users only)"), selected: m.default ? "selected" : null,
  })));
}

async function loadUsers() {
  const data = await api("GET", `/users?limit=50&offset=${state.usersOffset}`);
  const users = rows(data, "users", "items");
  for (const u of users) {
    const n = u.history_length ?? u.n_items ?? u.count;
    $("user").append(el("option", { value: u.user_id, text: n === undefined ? u.user_id : `${u.user_id} (${n} items)` }));
  }
  state.usersOffset += users.length;
  if (users.length < 50) $("more-users").classList.add("hidden");
}

// --- history -----------------------------------------------------------------------------

function showHistory(items, total) {
  $("history").replaceChildren(...items.map((item) => el("figure", { class: "thumb", title: item.title || item.item_id, "data-item": item.item_id },
    poster(item, "thumb-img"), el("figcaption", { text: item.title || item.item_id }))));
  $("history-count").textContent = total === undefined ? "" : `(${total})`;
}

async function refreshHistory() {
  if (state.mode === "build") {
    showHistory(state.built.slice().reverse(), state.built.length);
    $("clear-history").classList.toggle("hidden", state.built.length === 0);
    return;
  }
  if (!state.user) return showHistory([], undefined);
  const data = await api("GET", `/users/${encodeURIComponent(state.user)}`);
  const items = rows(data, "history", "items");
  showHistory(items.slice(0, 24), data.history_length ?? items.length);
}

async function addToHistory(item) {
  if (state.mode === "build") {
    if (!state.built.some((i) => i.item_id === item.item_id)) state.built.push(item);
  } else {
    if (!state.user) return setStatus("choose a user first", true);
    const now = Math.floor(Date.now() / 1000);
    await api("POST", "/feedback", { events: [{ event_id: eventId(), user_id: state.user, item_id: item.item_id, rating: 5, timestamp: now }] });
    setStatus(`liked "${item.title || item.item_id}" (stored)`);
  }
  await refresh();
}

// --- recommendations ---------------------------------------------------------------------

function recCard(item) {
  const explanation = el("p", { class: "why muted" });
  const card = el("article", { class: "card", "data-item": item.item_id },
    poster(item, "poster", "no poster"),
    el("h4", { text: item.title || item.item_id }),
    el("p", { class: "score muted", text: "score " + fmt(item.score) }),
    explanation,
    el("div", { class: "actions" },
      el("button", { class: "small like", text: "Like", onclick: () => addToHistory(item).catch(fail) }),
      el("button", { class: "small studio-open", text: "Studio", onclick: () => openStudio(item).catch(fail) })));
  if (state.mode === "user" && state.user) {
    api("GET", `/users/${encodeURIComponent(state.user)}/explanations/${encodeURIComponent(item.item_id)}`)
      .then((e) => {
        // Which method wrote it (statistical, template, llm-grounded) and, for a language
        // model, whether every attribute it asserts is the item's own.
        const checked = e.faithfulness ? (e.faithfulness.faithful ? ", checked" : ", unsupported claims") : "";
        const by = `${e.method}${e.model ? " · " + e.model : ""}${checked}`;
        explanation.replaceChildren(e.text + " ", el("span", { class: "method", text: `(${by})` }));
        explanation.title = `${e.text} (${by})`;
      })
      .catch(() => { explanation.textContent = ""; });
  }
  return card;
}

async function refreshRecs() {
  let data;
  if (state.mode === "build") {
    if (!state.built.length) return $("recs").replaceChildren(el("p", { class: "muted", text: "Click items on the left to build a history." }));
    data = await api("POST", "/recommendations", { items: state.built.map((i) => i.item_id), k: K, model: model(), exclude_seen: true });
    $("recs-for").textContent = `for a history of ${state.built.length} items (${data.model})`;
  } else {
    if (!state.user) return $("recs").replaceChildren(el("p", { class: "muted", text: "Choose a user, or build a history." }));
    data = await api("GET", `/users/${encodeURIComponent(state.user)}/recommendations?k=${K}&exclude_seen=true&model=${encodeURIComponent(model())}`);
    $("recs-for").textContent = `for user ${state.user} (${data.model})`;
  }
  $("recs").replaceChildren(...rows(data, "items").map(recCard));
}

async function refresh() {
  await Promise.all([refreshHistory(), refreshRecs()]);
}

// --- search (building a history) ---------------------------------------------------------

let searchTimer = null;
async function search() {
  const query = $("search").value.trim();
  const path = query ? `/items?query=${encodeURIComponent(query)}&k=18` : "/popular?k=18";
  const items = rows(await api("GET", path), "items");
  $("search-results").replaceChildren(...items.map((item) => el("button", {
    class: "pick-item", title: item.title || item.item_id, "data-item": item.item_id,
    onclick: () => addToHistory(item).catch(fail),
  }, poster(item, "thumb-img"), el("span", { text: item.title || item.item_id }))));
}

// --- the generation studio ---------------------------------------------------------------

async function poll(jobId) {
  for (;;) {
    const job = await api("GET", `/generations/${jobId}`);
    $("progress").value = job.progress;
    $("progress-stage").textContent = `${job.stage} (${Math.round(job.progress * 100)}%)`;
    if (job.status === "done") return job;
    if (job.status === "failed") throw new Error(job.error ? job.error.error + " (" + job.error.fix + ")" : "generation failed");
    await new Promise((r) => setTimeout(r, 400));
  }
}

async function runJob(body) {
  $("progress-box").classList.remove("hidden");
  $("generate").disabled = true;
  try {
    const submitted = await api("POST", "/generations", body);
    return await poll(submitted.job_id);
  } finally {
    $("generate").disabled = false;
  }
}

function chips(container, kind) {
  const keywords = state.studio.keywords[kind];
  container.replaceChildren(...[...keywords.entries()].map(([word, on]) => el("button", {
    class: "chip" + (on ? " on" : ""), "aria-pressed": on ? "true" : "false", text: word,
    onclick: () => { keywords.set(word, !keywords.get(word)); chips(container, kind); },
  })));
}

function showKeywords(result) {
  state.studio.keywords = {
    preference: new Map(result.preference_keywords.map((k) => [k, true])),
    item: new Map(result.item_keywords.map((k) => [k, true])),
  };
  chips($("pref-keywords"), "preference");
  chips($("item-keywords"), "item");
}

// Whose history a job reads: the chosen user's, or the items clicked together here.
function studioUser() {
  if (state.mode === "user") return state.user ? { user_id: state.user } : null;
  return state.built.length ? { history: state.built.map((i) => i.item_id) } : null;
}

async function openStudio(item) {
  const who = studioUser();
  $("studio").classList.remove("hidden");
  $("studio-target").textContent = `for ${state.mode === "user" ? "user " + state.user : "this history"} and "${item.title || item.item_id}"`;
  const img = $("studio-poster");
  img.classList.toggle("hidden", !item.image_url);
  if (item.image_url) img.src = item.image_url;
  state.studio = { item, keywords: { preference: new Map(), item: new Map() }, parent: null, steps: [] };
  $("candidates").replaceChildren();
  $("steps").replaceChildren();
  $("studio").scrollIntoView({ behavior: "smooth" });
  if (!who) {
    $("studio-message").textContent = "Generation reads a history: choose a user or click some items.";
    return;
  }
  $("studio-message").textContent = "finding keywords…";
  const job = await runJob({ ...who, item_id: item.item_id, dry_run: true });
  showKeywords(job.result);
  state.studio.parent = job.job_id;
  $("studio-message").textContent = "Toggle keywords, set the weights, then Generate.";
}

function addKeyword(kind) {
  const word = $("new-keyword").value.trim();
  if (!word || !state.studio) return;
  state.studio.keywords[kind].set(word, true);
  chips($(kind === "preference" ? "pref-keywords" : "item-keywords"), kind);
  $("new-keyword").value = "";
}

function weights() {
  return WEIGHTS[Number($("weight").value)];
}

async function generate() {
  const s = state.studio;
  const who = studioUser();
  if (!s || !who) return;
  const on = (kind) => [...s.keywords[kind].entries()].filter(([, v]) => v).map(([k]) => k);
  const body = {
    ...who, item_id: s.item.item_id, preference_keywords: on("preference"), item_keywords: on("item"),
    weights: [weights()], seed: Number($("seed").value) || 0, parent: s.parent,
  };
  $("studio-message").textContent = "generating…";
  const job = await runJob(body);
  s.parent = job.job_id;
  showCandidates(job);
  addStep(job);
  $("studio-message").textContent = job.result.notes.join(" · ") || "Pick the image you like best.";
}

function showCandidates(job) {
  const best = job.result.best;
  $("candidates").replaceChildren(...job.result.candidates.map((c) => el("figure", {
    class: "candidate" + (c.index === best ? " best" : ""), "data-index": c.index,
  },
    c.image_url ? el("img", { src: c.image_url, alt: "candidate " + c.index }) : el("div", { class: "no-poster", text: c.prompt }),
    el("figcaption", {},
      el("span", { text: `d_p ${fmt(c.d_p)} · d_t ${fmt(c.d_t)} · z ${fmt(c.z)}` }),
      el("span", { class: "muted", text: `w ${c.weights.join(":")} · seed ${c.seed}${c.index === best ? " · best z" : ""}` }),
      el("button", { class: "small pick", text: "Pick", onclick: () => pick(job, c.index).catch(fail) })))));
}

async function pick(job, index) {
  await api("POST", `/generations/${job.job_id}/choice`, { index });
  for (const node of $("candidates").children) node.classList.toggle("chosen", Number(node.dataset.index) === index);
  const step = document.querySelector(`#steps li[data-job="${job.job_id}"] .picked`);
  if (step) step.textContent = ` · picked ${index}`;
  setStatus(`picked candidate ${index}`);
}

function addStep(job) {
  const r = job.result;
  $("steps").append(el("li", { "data-job": job.job_id },
    el("span", { text: `w ${job.request.weights[0].join(":")} · ${r.preference_keywords.length} preference + ${r.item_keywords.length} item keywords → ${r.candidates.length} images` }),
    el("span", { class: "picked" }),
    el("div", { class: "muted prompt", text: r.prompts.join(" | ") })));
}

// --- wiring ------------------------------------------------------------------------------

function fail(error) {
  setStatus(error.message || String(error), true);
  if (state.studio) $("studio-message").textContent = "";
}

function setMode(mode) {
  state.mode = mode;
  $("tab-user").classList.toggle("active", mode === "user");
  $("tab-build").classList.toggle("active", mode === "build");
  $("pane-user").classList.toggle("hidden", mode !== "user");
  $("pane-build").classList.toggle("hidden", mode !== "build");
  $("clear-history").classList.add("hidden");
  if (mode === "build") search().catch(fail);
  refresh().catch(fail);
}

function start() {
  const saved = sessionStorage.getItem("tastemaker-key");
  if (saved) $("api-key").value = saved;
  $("api-key").addEventListener("change", () => sessionStorage.setItem("tastemaker-key", $("api-key").value));
  $("tab-user").addEventListener("click", () => setMode("user"));
  $("tab-build").addEventListener("click", () => setMode("build"));
  $("user").addEventListener("change", () => { state.user = $("user").value; refresh().catch(fail); });
  $("more-users").addEventListener("click", () => loadUsers().catch(fail));
  $("model").addEventListener("change", () => refreshRecs().catch(fail));
  $("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => search().catch(fail), 250); });
  $("clear-history").addEventListener("click", () => { state.built = []; refresh().catch(fail); });
  $("weight").addEventListener("input", () => { $("weight-label").textContent = weights().join(":"); });
  $("add-pref").addEventListener("click", () => addKeyword("preference"));
  $("add-item").addEventListener("click", () => addKeyword("item"));
  $("generate").addEventListener("click", () => generate().catch(fail));
  Promise.all([loadModels(), loadUsers()]).then(refresh).catch(fail);
}

start();
